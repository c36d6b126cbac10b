"""What the app is given: the interfaces of its collaborators, so each can be injected (tests pass fakes).

``core.main`` wires the real ones: ``app.catalog.CatalogSource`` (or ``orthanc.catalog.OrthancCatalogSource``),
``rendering.FourPaneRenderer``, ``loading.registry.ContentRegistry`` and ``loading.load``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol


class Catalog(Protocol):
    """The CTs the picker offers and the URL each one loads from (resolved on the server, never sent by a page)."""

    @property
    def base_url(self) -> str | None: ...

    def set_base_url(self, url: str) -> None: ...

    async def refresh(self) -> list[dict[str, Any]]: ...

    def entries(self) -> list[dict[str, Any]]: ...

    def get(self, ct_id: str | None) -> dict[str, Any] | None: ...

    def applies_network(self, ct_id: str | None) -> bool: ...

    def archive_url(self, ct_id: str, network: str) -> str: ...

    def load_options(self, ct_id: str | None) -> Mapping[str, Any]:
        """Extra LoadOptions for an entry (Orthanc's credentials); empty for the CT API."""
        ...


class Renderer(Protocol):
    """The four panes (``rendering.FourPaneRenderer``)."""

    render_windows: dict[str, Any]
    on_change: Callable[[str], None] | None

    def set_volume(self, volume: Any, *, reset: bool = True) -> None: ...

    def volume_modified(self, volume: Any, *, slice_index: int | None = None) -> None: ...

    def set_window_preset(self, name: str) -> None: ...

    def set_vr_preset(self, name: str) -> None: ...

    def slice_info(self, pane: str) -> tuple[int, int]: ...

    def set_slice(self, pane: str, index: int) -> None: ...

    def orientation_labels(self, pane: str) -> dict[str, str]: ...

    def set_fast_3d(self, fast: bool) -> None: ...


class Registry(Protocol):
    """The session's loaded contents within its memory budget (``loading.registry.ContentRegistry``)."""

    on_screen: str | None

    def add(self, result: Any, *, source: str | None = None, on_screen: bool = True) -> Any: ...

    def list(self) -> list[Any]: ...

    def get(self, content_id: str) -> Any | None: ...

    def remove(self, content_id: str) -> bool: ...

    def make_room(self, incoming_bytes: int, *, extra_bytes: int = 0) -> list[Any]: ...

    def enforce(self, *, extra_bytes: int = 0) -> list[Any]: ...


#: ``loading.load``: (source, mode, *, options, observer) -> LoadResult
LoadFn = Callable[..., Awaitable[Any]]
