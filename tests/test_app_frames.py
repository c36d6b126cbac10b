"""Scrolling renders only what changed: one pane per step, stale steps merged, full quality when it stops."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from webviewer.app.frames import FramePacer


class Recorder:
    """The pacer's two callbacks; ``still`` is set when a pane gets its quality back."""

    def __init__(self) -> None:
        self.pushed: list[str] = []
        self.quality: list[tuple[str, bool]] = []
        self.still = asyncio.Event()
        self.pushed_event = asyncio.Event()

    def push(self, pane: str) -> None:
        self.pushed.append(pane)
        self.pushed_event.set()

    def set_quality(self, pane: str, interactive: bool) -> None:
        self.quality.append((pane, interactive))
        if not interactive:
            self.still.set()


async def until(predicate, event: asyncio.Event) -> None:
    """Wait (on the recorder's events, never a fixed sleep) until ``predicate()`` holds."""
    while not predicate():
        event.clear()
        await asyncio.wait_for(event.wait(), timeout=30)


async def test_steps_faster_than_frames_are_merged_into_one_frame_of_the_newest_state():
    rec = Recorder()
    pacer = FramePacer(rec.push, rec.set_quality, settle_s=60)
    for _ in range(5):  # five slider steps arrive before the loop could render one
        pacer.request(("axial",), interactive=True, deferred=("sagittal", "coronal"))
    await until(lambda: rec.pushed, rec.pushed_event)
    assert rec.pushed == ["axial"]
    assert pacer.dropped == 4 and pacer.frames == 1
    assert rec.quality == [("axial", True)]  # interactive quality once, for the moved pane only
    pacer.cancel()


async def test_a_scroll_step_renders_only_the_scrolled_pane_then_full_quality_and_the_crosshairs_when_it_stops():
    rec = Recorder()
    pacer = FramePacer(rec.push, rec.set_quality, min_gap_s=0.0, settle_s=0.05)
    pacer.request(("axial",), interactive=True, deferred=("sagittal", "coronal"))
    await until(lambda: rec.pushed, rec.pushed_event)
    assert rec.pushed == ["axial"] and pacer.active
    await asyncio.wait_for(rec.still.wait(), timeout=30)
    await until(lambda: len(rec.pushed) == 4, rec.pushed_event)
    assert rec.quality == [("axial", True), ("axial", False)]
    assert rec.pushed == ["axial", "axial", "coronal", "sagittal"]  # the full-quality frame, then the crosshairs
    assert not pacer.active


async def test_the_end_of_an_interaction_waits_while_trame_vtk_would_drop_the_frames():
    rec = Recorder()
    held = [True]
    checks = asyncio.Event()

    def is_held() -> bool:
        checks.set()
        return held[0]

    pacer = FramePacer(rec.push, rec.set_quality, min_gap_s=0.0, settle_s=0.01, held=is_held)
    pacer.request(("axial",), interactive=True, deferred=("coronal",))
    for _ in range(3):  # the settle comes back while the view still animates
        checks.clear()
        await asyncio.wait_for(checks.wait(), timeout=30)
    assert rec.quality == [("axial", True)] and pacer.active
    held[0] = False
    await asyncio.wait_for(rec.still.wait(), timeout=30)
    await until(lambda: len(rec.pushed) == 3, rec.pushed_event)
    assert rec.pushed == ["axial", "axial", "coronal"] and not pacer.active


async def test_a_pane_rendered_outside_the_pacer_drops_its_waiting_frame():
    rec = Recorder()
    pacer = FramePacer(rec.push, rec.set_quality, settle_s=60)
    pacer.request(("axial", "coronal"))
    pacer.rendered(["axial"])
    await until(lambda: rec.pushed, rec.pushed_event)
    assert rec.pushed == ["coronal"] and pacer.dropped == 1
    pacer.cancel()


async def test_cancel_forgets_waiting_frames_and_restores_the_quality():
    rec = Recorder()
    pacer = FramePacer(rec.push, rec.set_quality, min_gap_s=60, settle_s=60)
    pacer.request(("axial",), interactive=True, deferred=("coronal",))
    pacer.cancel()
    assert rec.quality == [("axial", True), ("axial", False)]
    assert not pacer.active and pacer.pending == []


# -- the app's views over the real four-pane renderer ---------------------------------------------------------
def small_volume():
    """A 24x32x40 (z, y, x) block with a brighter cube inside: enough for every pane to show something."""
    from webviewer.loading.volume import CTVolume

    hu = np.full((24, 32, 40), -1000, dtype=np.int16)
    hu[6:18, 8:24, 10:30] = 300
    return CTVolume(hu, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), None)


class RenderingView:
    """Stands in for a VtkRemoteView: ``update()`` renders its window, as trame-vtk's push does."""

    def __init__(self, window) -> None:
        self.window = window

    def update(self) -> None:
        self.window.Render()


@pytest.fixture
def logic():
    from trame.app import get_server

    from webviewer.app.views import ViewLogic
    from webviewer.rendering import FourPaneRenderer

    renderer = FourPaneRenderer(size=(96, 96))
    state = get_server("test-frames", client_type="vue3").state
    state.update({"wl_preset": "auto", "vr_preset": "CT-Bone", "has_volume": False, "labels": {}, "wl_text": "",
                  **{f"slice_{p}": 0 for p in ("axial", "sagittal", "coronal")},
                  **{f"count_{p}": 1 for p in ("axial", "sagittal", "coronal")}})
    state.ready()
    views = ViewLogic(state, renderer)
    views.views = {pane: RenderingView(window) for pane, window in renderer.render_windows.items()}
    renderer.set_volume(small_volume())
    views.sync_state(has_volume=True)
    renders = dict.fromkeys(renderer.PANES, 0)
    for pane, window in renderer.render_windows.items():
        window.AddObserver("StartEvent", lambda *_, p=pane: renders.__setitem__(p, renders[p] + 1))
    yield views, renderer, renders
    views.pacer.cancel()
    renderer.close()


async def test_wheel_steps_in_the_axial_pane_render_the_axial_pane_only_until_the_wheel_stops(logic):
    views, renderer, renders = logic
    done = asyncio.Event()
    views.pacer.settle_s = 60  # the wheel keeps turning for this test
    iren = renderer.slice_views["axial"].interactor
    start = renderer.slice_info("axial")[0]
    views._push_pane = lambda pane, push=views._push_pane: (push(pane), done.set())
    views.pacer.push = views._push_pane
    for _ in range(3):
        iren.MouseWheelForwardEvent()
    await asyncio.wait_for(done.wait(), timeout=30)
    assert renderer.slice_info("axial")[0] == start + 3
    assert views.state.slice_axial == start + 3
    assert renders == {"axial": 1, "3d": 0, "sagittal": 0, "coronal": 0}  # three steps, one frame, one pane
    views.pacer._settle()  # the wheel stopped: the full-quality axial frame and the two crosshair panes
    done.clear()
    while sum(renders.values()) < 4:
        done.clear()
        await asyncio.wait_for(done.wait(), timeout=30)
    assert renders == {"axial": 2, "3d": 0, "sagittal": 1, "coronal": 1}


async def test_the_slider_moves_one_pane_and_window_drags_refresh_every_2d_pane(logic):
    views, renderer, renders = logic
    views.pacer.settle_s = 60
    views.set_slice("coronal", 3)
    assert renderer.slice_info("coronal")[0] == 3
    assert views.pacer.pending == ["coronal"] and views.interacting
    views.pacer.cancel()
    renderer.notify("window", "axial")
    assert sorted(views.pacer.pending) == ["axial", "coronal", "sagittal"]
    views.pacer.cancel()
    renderer.notify("camera")  # the remote view sent that pane itself; only letters change
    assert views.pacer.pending == []


async def test_while_a_2d_pane_is_scrolled_during_a_load_the_progressive_refresh_leaves_the_3d_pane_alone():
    from app_helpers import FakeBuffer

    from webviewer.app.views import ProgressiveRefresher

    class Views:
        interacting = True

        def __init__(self) -> None:
            self.pushed: list[tuple[str, ...]] = []

        def show_preview(self, volume, *, first: bool) -> None:
            pass

        def set_progressive_frames(self, on: bool) -> None:
            pass

        def push(self, panes) -> None:
            self.pushed.append(tuple(panes))

    views = Views()
    refresher = ProgressiveRefresher(views, interval_s=0.5, clock=lambda: 100.0)
    buffer = FakeBuffer(10)
    buffer.placed = 3
    refresher._buffer = buffer
    await refresher._refresh()
    await refresher._refresh()
    assert views.pushed == [("axial",), ("axial",), ("sagittal", "coronal")] and refresher.refreshes_3d == 0
    views.interacting = False
    await refresher._refresh()
    assert views.pushed[-3:] == [("axial",), ("3d",), ("sagittal", "coronal")] and refresher.refreshes_3d == 1
