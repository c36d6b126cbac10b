"""Binds the four panes' state (slices, window/level, VR preset) to the FourPaneRenderer and pushes images."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from webviewer.app.frames import FramePacer
from webviewer.app.image_delivery import (
    INTERACTIVE_QUALITY,
    PROGRESSIVE_QUALITY,
    PROGRESSIVE_RATIO,
    STILL_QUALITY,
    animating,
    set_view_quality,
)
from webviewer.app.ports import Renderer
from webviewer.app.state import PANES, SLICE_PANES

log = logging.getLogger(__name__)


class ViewLogic:
    """Owns the renderer and the remote views; every VTK call stays on the event-loop thread."""

    def __init__(self, state: Any, renderer: Renderer) -> None:
        self.state = state
        self.renderer = renderer
        self.views: dict[str, Any] = {}
        self._syncing = False
        #: True while a load's progressive display runs: still frames are smaller (:meth:`set_progressive_frames`)
        self.progressive_frames = False
        #: seconds without a load before the 3D pane's full-quality frame is rendered
        self.upgrade_delay_s = 2.0
        #: returns True while a load runs (set by the app); the full-quality 3D frame waits for it to end
        self.busy: Callable[[], bool] = lambda: False
        self.upgrades = 0
        self._upgrade: asyncio.TimerHandle | None = None
        #: slider and wheel steps: one pane per step, stale frames dropped, full quality when the scrolling stops
        self.pacer = FramePacer(self._push_pane, self._set_quality, held=self._animating)
        if hasattr(renderer, "on_change"):
            renderer.on_change = self._on_renderer_change

    # -- images -----------------------------------------------------------------------------------------
    def push(self, panes: tuple[str, ...] | list[str] | None = None) -> None:
        """Render the given panes (all by default) now and send their images to the browser."""
        panes = list(panes or PANES)
        self.pacer.rendered(panes)  # a frame of them still waiting in the pacer would be stale
        for pane in panes:
            self._push_pane(pane)

    def _push_pane(self, pane: str) -> None:
        view = self.views.get(pane)
        if view is not None:
            # trame renders the window and encodes the image; each pane's StartEvent hook brings its
            # pipeline (3D input, clipping range) up to date first
            view.update()

    def _set_quality(self, pane: str, interactive: bool) -> None:
        view = self.views.get(pane)
        if view is None:
            return
        if interactive:
            quality, ratio = INTERACTIVE_QUALITY, 1.0
        elif self.progressive_frames:
            quality, ratio = PROGRESSIVE_QUALITY, PROGRESSIVE_RATIO
        else:
            quality, ratio = STILL_QUALITY, 1.0
        set_view_quality(getattr(view, "server", None), pane, quality, ratio)

    def set_progressive_frames(self, on: bool) -> None:
        """While a load fills the panes (``on``), their still frames are rendered at ``PROGRESSIVE_RATIO`` of the
        pane's size and JPEG quality ``PROGRESSIVE_QUALITY``: a quarter of the pixels to render, encode, send and
        decode, on cores the load needs. Off: full size and quality again, before the finished volume's frames."""
        if on == self.progressive_frames:
            return
        self.progressive_frames = on
        for pane in self.views:
            self._set_quality(pane, interactive=False)

    def _animating(self) -> bool:
        view = next(iter(self.views.values()), None)
        return animating(getattr(view, "server", None))

    def scroll(self, pane: str) -> None:
        """One step of scrolling a 2D pane: its frame at interactive quality as soon as one can be made (steps in
        between are merged), the other 2D panes' crosshairs and its full-quality frame when the scrolling stops."""
        self.pacer.request((pane,), interactive=True, deferred=[p for p in SLICE_PANES if p != pane])

    @property
    def interacting(self) -> bool:
        """True while the user scrolls or drags a 2D pane (the progressive refresh leaves the 3D pane alone)."""
        return self.pacer.active

    # -- volume -----------------------------------------------------------------------------------------
    def show_volume(self, volume: Any, *, reset: bool = True, draft_3d: bool = False, push: bool = True) -> None:
        """Show a finished volume (or None) in every pane.

        ``draft_3d``: the 3D pane first shows its draft quality (~0.1 s) and renders its full quality
        (shading gradients, 1-3 s of the event loop) only once the session is idle (:meth:`upgrade_3d_when_idle`).
        ``push=False``: the panes are updated but not rendered; the caller pushes them."""
        self._cancel_upgrade()
        self.renderer.set_volume(volume, reset=reset)
        draft = draft_3d and volume is not None and hasattr(self.renderer, "set_fast_3d")
        if draft:
            self.renderer.set_fast_3d(True)
        self.apply_presets()
        self.sync_state(has_volume=volume is not None)
        if push:
            self.push()
        if draft:
            self.upgrade_3d_when_idle()

    def upgrade_3d_when_idle(self) -> None:
        """Render the 3D pane at full quality after ``upgrade_delay_s`` without a load (re-armed while one runs)."""
        self._cancel_upgrade()
        self._upgrade = asyncio.get_running_loop().call_later(self.upgrade_delay_s, self._upgrade_3d)

    def _upgrade_3d(self) -> None:
        self._upgrade = None
        if self.busy():
            self.upgrade_3d_when_idle()
            return
        if getattr(self.renderer, "fast_3d", False) and self.state.has_volume:
            self.renderer.set_fast_3d(False)
            self.upgrades += 1
            self.push(("3d",))

    def _cancel_upgrade(self) -> None:
        if self._upgrade is not None:
            self._upgrade.cancel()
            self._upgrade = None

    def show_preview(self, volume: Any, *, first: bool) -> None:
        """Show a partial volume while it fills: the axial pane at the middle placed slice."""
        if first:
            self.renderer.set_volume(volume, reset=True)
            self.apply_presets()
        else:
            self.renderer.volume_modified(volume)
        _, count = self.renderer.slice_info("axial")
        self.renderer.set_slice("axial", max(0, count // 2))
        self.sync_state(has_volume=True)

    def apply_presets(self) -> None:
        self.renderer.set_window_preset(self.state.wl_preset)
        self.renderer.set_vr_preset(self.state.vr_preset)

    # -- state <-> renderer -------------------------------------------------------------------------------
    def sync_state(self, *, has_volume: bool | None = None) -> None:
        """Copy slice indices, counts, orientation letters and window/level from the renderer into state."""
        self._syncing = True
        try:
            with self.state:
                if has_volume is not None:
                    self.state.has_volume = has_volume
                labels = {}
                for pane in SLICE_PANES:
                    index, count = self.renderer.slice_info(pane)
                    self.state[f"slice_{pane}"] = int(index)
                    self.state[f"count_{pane}"] = max(1, int(count))
                    labels[pane] = dict(self.renderer.orientation_labels(pane))
                labels["3d"] = dict(self.renderer.orientation_labels("3d")) if _has_3d_labels(self.renderer) else {}
                self.state.labels = labels
                self.state.wl_text = self._wl_text()
        finally:
            self._syncing = False

    def _sync_slice(self, pane: str) -> None:
        self._syncing = True
        try:
            with self.state:
                self.state[f"slice_{pane}"] = int(self.renderer.slice_info(pane)[0])
        finally:
            self._syncing = False

    def _wl_text(self) -> str:
        wl = getattr(self.renderer, "window_level", None)
        if callable(wl):
            wl = wl()
        if not wl:
            return ""
        width, level = wl
        return f"W {width:.0f} / L {level:.0f}"

    def set_slice(self, pane: str, index: int) -> None:
        if self._syncing or not self.state.has_volume:
            return
        self.renderer.set_slice(pane, int(index))
        self.scroll(pane)

    def set_window_preset(self, name: str) -> None:
        self.renderer.set_window_preset(name)
        with self.state:
            self.state.wl_text = self._wl_text()
        if self.state.has_volume:
            self.push(SLICE_PANES)

    def set_vr_preset(self, name: str) -> None:
        self.renderer.set_vr_preset(name)
        if self.state.has_volume:
            self.push(("3d",))

    def _on_renderer_change(self, kind: str) -> None:
        """The mouse changed something in a pane: sync state; re-render what changed.

        ``slice`` (wheel): that pane as a scroll step; ``window`` (drag): the three 2D panes at interactive quality;
        ``cursor`` (click): the three 2D panes; ``camera`` (a rotate, pan or zoom ended): the remote view already
        sent that pane's frame, only its orientation letters change."""
        pane = getattr(self.renderer, "changed_pane", None)
        if kind == "slice" and pane in SLICE_PANES:  # a wheel step: only that slider's number changed
            self._sync_slice(pane)
            self.scroll(pane)
            return
        self.sync_state()
        if kind == "window":
            self.pacer.request(SLICE_PANES, interactive=True)
        elif kind != "camera":
            self.pacer.request(SLICE_PANES)


def _has_3d_labels(renderer: Any) -> bool:
    try:
        renderer.orientation_labels("3d")
    except (KeyError, ValueError):
        return False
    return True


class ProgressiveRefresher:
    """Refreshes the panes from a filling SliceBuffer: the first slice at once, then never more often than the
    load can afford.

    Every progressive frame takes CPU the load needs (its worker, the app and the browser share the cores), so it
    slows the load down. The refresher measures what its renders cost and keeps them under ``max_duty`` of the wall
    time, half for the 2D panes and half for the 3D pane: after 2D renders that took ``c`` seconds the next refresh
    waits ``max(interval_s, c / (max_duty / 2))``.
    The first refresh shows the axial pane alone (the first frames of a pane build its pipeline), and the next
    comes ``interval_s`` later whatever the first cost, so a seed-size load shows all four panes, the 3D pane
    coarse and unshaded (30-70 ms a frame on llvmpipe), while it runs; after that the 3D pane is refreshed only
    when its own cost fits its half.
    From the first refresh until :meth:`stop` the panes send half-size frames at JPEG quality 70
    (:meth:`ViewLogic.set_progressive_frames`): on 2 cores shared with the browser that took the display's cost
    from +22-66 % of a seed-size PoC2 load to +5-15 % (docs/benchmarks.md).
    """

    def __init__(self, views: ViewLogic, *, interval_s: float = 0.5, clock: Callable[[], float] = time.perf_counter,
                 max_duty: float = 0.1):
        self.views = views
        self.interval_s = interval_s
        self.max_duty = max_duty
        self.clock = clock
        self.t0 = clock()
        self.first_slice_s: float | None = None
        self.first_placed_ms: float | None = None
        self.first_pushed_ms: float | None = None
        self.refreshes = 0
        self.refreshes_3d = 0
        #: seconds of rendering spent by the progressive refreshes (for the results' details and the tests)
        self.render_s = 0.0
        self._buffer: Any = None
        self._last = float("-inf")
        self._gap = interval_s
        self._last_3d = float("-inf")
        self._gap_3d = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._stopped = False

    def start(self) -> None:
        self.t0 = self.clock()

    def on_buffer(self, buffer: Any, placed: int = 1) -> None:
        """Called by the load observer whenever slices were placed."""
        if self._stopped or placed <= 0 or self.interval_s <= 0:  # interval 0: no progressive display
            return
        self._buffer = buffer
        if self.first_placed_ms is None:
            self.first_placed_ms = time.time() * 1000.0
        if self._handle is not None or (self._task is not None and not self._task.done()):
            return  # a refresh is already due; it will show the newest slices
        delay = max(0.0, self._last + self._gap - self.clock())
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(delay, self._spawn)

    def _spawn(self) -> None:
        self._handle = None
        if not self._stopped:
            self._task = asyncio.ensure_future(self._refresh())

    def _push(self, panes: tuple[str, ...]) -> float:
        t = self.clock()
        self.views.push(panes)
        spent = self.clock() - t
        self.render_s += spent
        return spent

    async def _refresh(self) -> None:
        await asyncio.sleep(0.01)  # let pending state updates leave before the blocking render
        buffer = self._buffer
        if self._stopped or buffer is None:
            return
        try:
            await self._refresh_from(buffer)
        finally:  # a buffer in the load process keeps the shown slots in place until the frames are rendered
            done = getattr(buffer, "preview_done", None)
            if done is not None:
                done()

    async def _refresh_from(self, buffer: Any) -> None:
        t = self.clock()
        volume = buffer.preview_volume()
        if inspect.isawaitable(volume):  # the load process sorts and answers over its pipe
            volume = await volume
        if volume is None or self._stopped:
            return
        first = self.refreshes == 0
        if first:
            self.views.set_progressive_frames(True)
        self.views.show_preview(volume, first=first)
        cost = self.clock() - t
        await asyncio.sleep(0)  # slice numbers out first
        cost += self._push(("axial",))
        if first:
            self.first_slice_s = self.clock() - self.t0
            self.first_pushed_ms = time.time() * 1000.0
        # yield between panes: trame-vtk re-polls a still-encoding image on the loop, so the axial picture
        # leaves before the slower panes
        if first:  # the axial image alone; its cost (the pipeline built once, the preview's first round trip)
            self._finish_refresh(0.0)  # is not what refreshes cost: the other panes follow one interval later
            return
        # the 3D pane next (it shows the volume growing), unless the user scrolls a 2D pane (the 3D frame would
        # slow the scrolled pane down) or its cost does not fit its share yet
        if self.clock() - self._last_3d >= self._gap_3d and not getattr(self.views, "interacting", False):
            await asyncio.sleep(0.03)
            if self._stopped:
                return
            cost_3d = self._push(("3d",))
            self.refreshes_3d += 1
            self._last_3d = self.clock()
            self._gap_3d = cost_3d / (self.max_duty / 2)
        await asyncio.sleep(0.03)
        if self._stopped:
            return
        cost += self._push(("sagittal", "coronal"))
        self._finish_refresh(cost)

    def _finish_refresh(self, cost: float) -> None:
        self.refreshes += 1
        self._last = self.clock()
        self._gap = max(self.interval_s, cost / (self.max_duty / 2))

    async def stop(self) -> None:
        """No more refreshes; wait for one in flight."""
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._task is not None and not self._task.done():
            try:
                await self._task
            except Exception:  # a failed preview must not hide the load's own outcome
                log.exception("progressive refresh failed")
        self._buffer = None
        self.views.set_progressive_frames(False)  # the finished (or restored) volume's frames at full size
