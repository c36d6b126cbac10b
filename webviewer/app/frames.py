"""FramePacer: which panes to render while the user scrolls, drags or a load refreshes them, and when.

A slider or wheel step asks for a frame of the pane it moved. Steps that come faster than frames can be made are
merged: a pane waiting for its frame is rendered once, at the newest state (stale frames are dropped, never
queued). The moved pane is sent at interactive JPEG quality while the steps keep coming; the panes that only
changed their crosshair wait. ``settle_s`` after the last step, the moved panes and the waiting ones get one
full-quality frame each. Every render stays on the event-loop thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

#: frames at most this often per pace (trame-slicer's focused rate is 30 fps)
MIN_GAP_S = 1 / 30
#: the interaction ends this long after its last step; then the full-quality frames follow
SETTLE_S = 0.3


class FramePacer:
    """Coalesces pane refreshes into frames: ``push(pane)`` renders and sends a pane, ``quality(pane, interactive)``
    switches its JPEG quality (``None``: one quality), ``held()`` postpones the end of an interaction."""

    def __init__(self, push: Callable[[str], None], quality: Callable[[str, bool], None] | None = None, *,
                 min_gap_s: float = MIN_GAP_S, settle_s: float = SETTLE_S,
                 clock: Callable[[], float] = time.monotonic, held: Callable[[], bool] = lambda: False) -> None:
        self.push = push
        self.quality = quality
        #: True while the frames would not reach the browser (trame-vtk animates a view): the end waits
        self.held = held
        self.min_gap_s = min_gap_s
        self.settle_s = settle_s
        self.clock = clock
        self.pending: list[str] = []  # panes of the next frame, in request order
        self.interacting: set[str] = set()  # panes at interactive quality
        self.deferred: set[str] = set()  # panes that changed but wait for the end of the interaction
        self.frames = 0  # pane frames rendered
        self.dropped = 0  # requests merged into a frame already due (a stale frame never rendered)
        self._last = float("-inf")
        self._frame_handle: asyncio.TimerHandle | None = None
        self._settle_handle: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        """True while an interaction runs (its full-quality frames not yet sent)."""
        return bool(self.interacting) or self._settle_handle is not None

    def request(self, panes: Iterable[str], *, interactive: bool = False, deferred: Iterable[str] = ()) -> None:
        """Ask for a frame of ``panes``; ``interactive``: a step of an interaction (low quality, then a
        full-quality frame after ``settle_s``); ``deferred``: panes to refresh only when the interaction ends."""
        for pane in panes:
            if pane in self.pending:
                self.dropped += 1
            else:
                self.pending.append(pane)
            if interactive and pane not in self.interacting:
                self.interacting.add(pane)
                if self.quality is not None:
                    self.quality(pane, True)
        self.deferred.update(p for p in deferred if p not in self.interacting)
        if interactive or self.deferred:
            self._arm_settle()
        self._schedule()

    def rendered(self, panes: Iterable[str]) -> None:
        """``panes`` were just rendered outside the pacer: a frame of them waiting here would be stale."""
        for pane in panes:
            if pane in self.pending:
                self.pending.remove(pane)
                self.dropped += 1

    def cancel(self) -> None:
        """Forget every waiting frame and restore the full quality (e.g. the volume went away)."""
        self._cancel_handles()
        self.pending.clear()
        self.deferred.clear()
        for pane in sorted(self.interacting):
            if self.quality is not None:
                self.quality(pane, False)
        self.interacting.clear()

    def _schedule(self) -> None:
        if self._frame_handle is None and self.pending:
            delay = max(0.0, self._last + self.min_gap_s - self.clock())
            self._frame_handle = asyncio.get_running_loop().call_later(delay, self._frame)

    def _frame(self) -> None:
        self._frame_handle = None
        panes, self.pending = self.pending, []
        self._last = self.clock()
        for pane in panes:
            self.push(pane)
            self.frames += 1

    def _arm_settle(self) -> None:
        if self._settle_handle is not None:
            self._settle_handle.cancel()
        self._settle_handle = asyncio.get_running_loop().call_later(self.settle_s, self._settle)

    def _settle(self) -> None:
        """The interaction ended: full quality back, one frame of every pane it moved or left waiting."""
        self._settle_handle = None
        if self.held():
            self._arm_settle()
            return
        moved = sorted(self.interacting)
        for pane in moved:
            if self.quality is not None:
                self.quality(pane, False)
        self.interacting.clear()
        waiting, self.deferred = sorted(self.deferred), set()
        for pane in [*moved, *waiting]:
            if pane not in self.pending:
                self.pending.append(pane)
        self._schedule()

    def _cancel_handles(self) -> None:
        for handle in (self._frame_handle, self._settle_handle):
            if handle is not None:
                handle.cancel()
        self._frame_handle = self._settle_handle = None
