"""Load states, progress events and the observer; throttled and marshalled onto the event loop thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from webviewer.loading.metrics import current_rss

if TYPE_CHECKING:
    from webviewer.loading.volume import SliceBuffer

log = logging.getLogger(__name__)


class LoadState(StrEnum):
    DOWNLOADING = "downloading"
    READY = "ready"
    DECOMPRESSING = "decompressing"
    DICOM_LOADING = "dicom loading"
    FINISHED = "finished"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES = frozenset({LoadState.FINISHED, LoadState.ERROR, LoadState.CANCELLED})


@dataclass
class ProgressEvent:
    state: LoadState
    bytes_downloaded: int
    bytes_total: int | None
    rate_bytes_per_s: float
    files_extracted: int
    files_parsed: int
    slices_placed: int
    slices_total: int | None
    elapsed_s: float
    rss_bytes: int


class LoadObserver:
    """Receives a load's progress. Every method is called on the event loop thread; all are no-ops here."""

    def on_progress(self, event: ProgressEvent) -> None:
        """At most ~10 per second; every state change is delivered."""

    def on_volume_allocated(self, buffer: SliceBuffer) -> None:
        """Once, when the first slice sits in the PoC2 slice buffer (its shape is then known)."""

    def on_slices_placed(self, buffer: SliceBuffer, placed: int) -> None:
        """Throttled ~10 per second; the first slice is reported at once, the last count always."""


class ProgressReporter:
    """Counters of one load, updated from any thread, turned into throttled observer calls on the loop."""

    def __init__(
        self,
        observer: LoadObserver | None,
        loop: asyncio.AbstractEventLoop,
        *,
        min_interval_s: float = 0.1,
        clock=time.perf_counter,
    ) -> None:
        self.observer = observer or LoadObserver()
        self.loop = loop
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self.t0 = clock()
        self.state = LoadState.DOWNLOADING
        self.bytes_downloaded = 0
        self.bytes_total: int | None = None
        self.files_extracted = 0
        self.files_parsed = 0
        self.slices_placed = 0
        self.slices_total: int | None = None
        self._last_emit = float("-inf")
        self._rate_t = self.t0
        self._rate_bytes = 0
        self._rate = 0.0
        self._last_slices_t = float("-inf")
        self._slices_reported = 0
        self._allocated_reported = False
        self._closed = False
        self.events_sent = 0

    # -- counters -------------------------------------------------------------------------------------
    def reset_counters(self) -> None:
        """Start counting afresh (a fallback restarts the download)."""
        with self._lock:
            self.bytes_downloaded = self.files_extracted = self.files_parsed = self.slices_placed = 0
            self._rate_bytes = 0
            self._rate_t = self._clock()
            self._slices_reported = 0

    def add_bytes(self, n: int) -> None:
        self.bytes_downloaded += n  # only the loop thread downloads
        self.tick()

    def tick(self) -> None:
        """Emit a progress event if the throttle interval has passed."""
        if self._clock() - self._last_emit >= self.min_interval_s:
            self.emit(force=False)

    # -- events ---------------------------------------------------------------------------------------
    def set_state(self, state: LoadState) -> None:
        """Change state; a state change is always delivered."""
        self.state = LoadState(state)
        self.emit(force=True)

    def emit(self, force: bool = True) -> None:
        with self._lock:
            now = self._clock()
            if self._closed or (not force and now - self._last_emit < self.min_interval_s):
                return
            dt = now - self._rate_t
            if dt >= 0.05:
                self._rate = (self.bytes_downloaded - self._rate_bytes) / dt
                self._rate_t, self._rate_bytes = now, self.bytes_downloaded
            self._last_emit = now
            event = ProgressEvent(
                state=self.state,
                bytes_downloaded=self.bytes_downloaded,
                bytes_total=self.bytes_total,
                rate_bytes_per_s=max(0.0, self._rate),
                files_extracted=self.files_extracted,
                files_parsed=self.files_parsed,
                slices_placed=self.slices_placed,
                slices_total=self.slices_total,
                elapsed_s=now - self.t0,
                rss_bytes=current_rss(),
            )
            if event.state in TERMINAL_STATES:
                self._closed = True
            self.events_sent += 1
        self._call(self.observer.on_progress, event)

    def slices_placed_changed(self, buffer: Any, placed: int, force: bool = False) -> None:
        """Report placed slices: first at once, then at most every interval; ``force`` for the last count."""
        with self._lock:
            self.slices_placed = placed
            if self._closed or placed == self._slices_reported:
                return
            now = self._clock()
            first = self._slices_reported == 0
            if not (force or first or now - self._last_slices_t >= self.min_interval_s):
                return
            self._last_slices_t = now
            self._slices_reported = placed
            allocate = not self._allocated_reported
            self._allocated_reported = True
        if allocate:
            self._call(self.observer.on_volume_allocated, buffer)
        self._call(self.observer.on_slices_placed, buffer, placed)
        self.tick()

    def _call(self, fn, *args) -> None:
        """Run ``fn`` on the loop thread, in order (FIFO through call_soon[_threadsafe])."""
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
            self.loop.call_soon_threadsafe(self._safe, fn, *args)

    @staticmethod
    def _safe(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("load observer %r failed", fn)
