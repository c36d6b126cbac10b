"""The progressive refresher keeps its renders under its share of the load's time (a fake clock, no sleeps)."""

from __future__ import annotations

import asyncio

from app_helpers import FakeBuffer

from webviewer.app.views import ProgressiveRefresher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CostlyViews:
    """Pushing a pane costs fake time: 3D 150 ms, a 2D pane 10 ms; the first preview ``first_cost_s`` more."""

    def __init__(self, clock: Clock, first_cost_s: float = 0.0) -> None:
        self.clock = clock
        self.first_cost_s = first_cost_s
        self.pushed: list[tuple[str, ...]] = []
        self.previews = 0
        self.frames: list[bool] = []  # set_progressive_frames calls

    def set_progressive_frames(self, on: bool) -> None:
        self.frames.append(on)

    def show_preview(self, volume, *, first: bool) -> None:
        self.previews += 1
        if first:  # the pipeline is built once
            self.clock.now += self.first_cost_s

    def push(self, panes) -> None:
        self.pushed.append(tuple(panes))
        self.clock.now += sum(0.15 if p == "3d" else 0.01 for p in panes)


def make(interval_s: float = 0.5, max_duty: float = 0.1, first_cost_s: float = 0.0):
    clock = Clock()
    views = CostlyViews(clock, first_cost_s)
    refresher = ProgressiveRefresher(views, interval_s=interval_s, clock=clock, max_duty=max_duty)
    buffer = FakeBuffer(10)
    buffer.placed = 3
    refresher._buffer = buffer
    return refresher, views, clock


async def test_the_first_refresh_shows_the_axial_pane_alone_the_next_every_pane():
    refresher, views, clock = make()
    await refresher._refresh()
    assert views.pushed == [("axial",)]
    assert refresher.first_slice_s is not None and refresher.refreshes == 1
    assert refresher._gap == 0.5  # 10 ms of rendering: the interval
    clock.now += 0.5
    await refresher._refresh()
    assert views.pushed[1:] == [("axial",), ("3d",), ("sagittal", "coronal")]  # the 3D pane before the others
    # 2D cost 30 ms in half of a 10 % share -> 0.6 s; 3D cost 150 ms -> the 3D pane waits 3 s
    assert abs(refresher._gap - 0.6) < 1e-9
    assert abs(refresher._gap_3d - 3.0) < 1e-9
    assert abs(refresher.render_s - 0.19) < 1e-9


async def test_a_costly_first_refresh_does_not_delay_the_other_panes():
    """Building the panes' pipelines made the first refresh cost 100-200 ms: with that cost as the refresh's
    share the next refresh came 2-4 s later, after a seed-size load had ended, and the 3D pane stayed black."""
    refresher, views, clock = make(first_cost_s=0.2)
    await refresher._refresh()
    assert refresher.render_s > 0 and refresher._gap == 0.5
    clock.now += 0.5
    await refresher._refresh()
    assert ("3d",) in views.pushed and refresher.refreshes_3d == 1


async def test_the_panes_send_smaller_frames_from_the_first_refresh_until_the_refresher_stops():
    refresher, views, clock = make()
    await refresher._refresh()
    assert views.frames == [True] and views.pushed == [("axial",)]
    clock.now += 0.5
    await refresher._refresh()
    assert views.frames == [True]  # switched once per load
    await refresher.stop()
    assert views.frames == [True, False]  # full size again before the finished volume's frames


async def test_the_3d_pane_waits_until_its_cost_fits_the_share():
    refresher, views, clock = make()
    await refresher._refresh()
    clock.now += 0.5
    await refresher._refresh()
    clock.now += 0.6
    views.pushed.clear()
    await refresher._refresh()
    assert ("3d",) not in views.pushed and refresher.refreshes_3d == 1
    clock.now += 3.0
    views.pushed.clear()
    await refresher._refresh()
    assert ("3d",) in views.pushed and refresher.refreshes_3d == 2


async def test_render_time_stays_within_the_duty_share_over_a_long_load():
    refresher, views, clock = make()
    start = clock.now
    for _ in range(40):  # the load keeps placing slices: refresh whenever the refresher allows
        await refresher._refresh()
        clock.now = max(clock.now, refresher._last + refresher._gap)
    elapsed = clock.now - start
    assert refresher.refreshes == 40
    assert refresher.render_s / elapsed <= 0.1 + 0.18 / elapsed  # the first full refresh is the only overshoot


def test_interval_zero_turns_the_progressive_display_off():
    refresher, views, _ = make(interval_s=0)
    refresher.on_buffer(FakeBuffer(4), 2)  # no running loop needed: it returns before scheduling
    assert refresher._buffer is not None and refresher._handle is None and refresher.first_placed_ms is None


class DraftRenderer:
    """The renderer calls ViewLogic makes for a finished volume, with the 3D pane's draft switch."""

    def __init__(self) -> None:
        self.fast_3d = False
        self.switches: list[bool] = []

    def set_volume(self, volume, *, reset=True):
        self.fast_3d = False

    def set_fast_3d(self, fast: bool) -> None:
        self.fast_3d = fast
        self.switches.append(fast)

    def set_window_preset(self, name):
        pass

    def set_vr_preset(self, name):
        pass

    def slice_info(self, pane):
        return 0, 1

    def orientation_labels(self, pane):
        return {}


async def test_a_finished_volume_shows_a_draft_3d_first_and_full_quality_once_no_load_runs():
    from app_helpers import FakeVolume
    from trame.app import get_server

    from webviewer.app.views import ViewLogic

    state = get_server("test-draft-3d", client_type="vue3").state
    state.update({"wl_preset": "auto", "vr_preset": "ct-bone", "has_volume": False, "labels": {}, "wl_text": ""})
    state.ready()
    renderer = DraftRenderer()
    views = ViewLogic(state, renderer)
    pushed: list = []
    views.push = lambda panes=None: pushed.append(tuple(panes or ("all",)))
    views.upgrade_delay_s = 0.0
    running = [True]
    views.busy = lambda: running[0]
    views.show_volume(FakeVolume(FakeBuffer(4).full), draft_3d=True)
    assert renderer.fast_3d is True and pushed == [("all",)]
    for _ in range(5):  # a load runs: the upgrade keeps waiting
        await asyncio.sleep(0)
    assert renderer.fast_3d is True and views.upgrades == 0
    running[0] = False
    for _ in range(5):
        await asyncio.sleep(0)
    assert renderer.fast_3d is False and views.upgrades == 1 and pushed[-1] == ("3d",)
    assert renderer.switches == [True, False]
