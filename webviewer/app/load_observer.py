"""The engine's observer calls of one load, forwarded to the app's LoadLogic and progressive refresher."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webviewer.loading.metrics import rss_parts
from webviewer.loading.progress import LoadObserver

if TYPE_CHECKING:
    from webviewer.app.loader import LoadLogic
    from webviewer.app.views import ProgressiveRefresher


class SessionObserver(LoadObserver):
    """Forwards the engine's callbacks (on the loop thread) to the LoadLogic."""

    def __init__(self, logic: LoadLogic, refresher: ProgressiveRefresher) -> None:
        self.logic = logic
        self.refresher = refresher
        #: the app process's own memory (anon + file: the shared volume pages are the worker's) at the start
        #: and its peak while the load runs (render copies of the progressive frames)
        self.app_start = self.app_peak = _app_private_rss()

    def sample_app(self) -> int:
        """The app process's growth since the load started, at its peak so far."""
        self.app_peak = max(self.app_peak, _app_private_rss())
        return self.app_peak - self.app_start

    def on_progress(self, event: Any) -> None:
        self.sample_app()
        self.logic.on_progress(event)

    def on_volume_allocated(self, buffer: Any) -> None:
        self.refresher.on_buffer(buffer, max(1, getattr(buffer, "placed", 1)))

    def on_slices_placed(self, buffer: Any, placed: int) -> None:
        self.refresher.on_buffer(buffer, placed)


def _app_private_rss() -> int:
    parts = rss_parts()
    return parts["anon"] + parts["file"]
