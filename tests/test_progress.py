"""Progress: throttling (no state change dropped), slice notifications, delivery on the loop thread."""

from __future__ import annotations

import asyncio
import threading

from tests.pipeline_helpers import RecordingObserver
from webviewer.loading.progress import LoadState, ProgressReporter


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def drain() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_throttle_keeps_every_state_change():
    clock, obs = FakeClock(), RecordingObserver()
    rep = ProgressReporter(obs, asyncio.get_running_loop(), min_interval_s=0.1, clock=clock)
    rep.set_state(LoadState.DOWNLOADING)
    for _ in range(1000):  # 1000 chunks within 50 ms: throttled away
        clock.t += 0.00005
        rep.add_bytes(10)
    rep.set_state(LoadState.READY)
    rep.set_state(LoadState.DICOM_LOADING)
    clock.t += 0.2
    rep.add_bytes(5)  # interval passed: delivered
    rep.set_state(LoadState.FINISHED)
    rep.add_bytes(1)  # after a terminal state nothing more is sent
    await drain()
    assert [e.state for e in obs.events] == [
        LoadState.DOWNLOADING,
        LoadState.READY,
        LoadState.DICOM_LOADING,
        LoadState.DICOM_LOADING,
        LoadState.FINISHED,
    ]
    assert obs.events[1].bytes_downloaded == 10_000
    assert obs.events[-1].bytes_downloaded == 10_005
    assert obs.events[-1].elapsed_s > 0.2
    assert all(e.rss_bytes > 0 for e in obs.events)


async def test_rate_at_most_ten_per_second_of_fake_time():
    clock, obs = FakeClock(), RecordingObserver()
    rep = ProgressReporter(obs, asyncio.get_running_loop(), min_interval_s=0.1, clock=clock)
    for _ in range(2000):  # 2 s of fake time, an update every ms
        clock.t += 0.001
        rep.add_bytes(1)
    await drain()
    assert 15 <= len(obs.events) <= 21
    assert obs.events[-1].rate_bytes_per_s > 0


async def test_slices_placed_first_at_once_then_throttled_last_forced():
    clock, obs = FakeClock(), RecordingObserver()
    rep = ProgressReporter(obs, asyncio.get_running_loop(), min_interval_s=0.1, clock=clock)
    buf = object()
    for n in range(1, 51):
        clock.t += 0.001
        rep.slices_placed_changed(buf, n)
    rep.slices_placed_changed(buf, 50, force=True)
    await drain()
    assert obs.placed[0] == 1
    assert obs.placed[-1] == 50
    assert len(obs.placed) == 2
    assert obs.allocated == 1


async def test_calls_from_a_worker_arrive_on_the_loop_thread_in_order():
    obs = RecordingObserver()
    loop = asyncio.get_running_loop()
    rep = ProgressReporter(obs, loop, min_interval_s=0.0)

    def worker():
        for n in range(1, 30):
            rep.files_parsed = n
            rep.emit(force=True)
            rep.slices_placed_changed(None, n, force=True)

    await asyncio.to_thread(worker)
    rep.set_state(LoadState.FINISHED)
    await drain()
    assert obs.threads == {threading.get_ident()}
    parsed = [e.files_parsed for e in obs.events]
    assert parsed == sorted(parsed)
    assert obs.placed == list(range(1, 30))
    assert obs.events[-1].state == LoadState.FINISHED


async def test_observer_exception_does_not_break_the_reporter(caplog):
    class Bad(RecordingObserver):
        def on_progress(self, event):
            raise RuntimeError("ui bug")

    rep = ProgressReporter(Bad(), asyncio.get_running_loop())
    rep.set_state(LoadState.DOWNLOADING)
    rep.set_state(LoadState.ERROR)
    await drain()
    assert "ui bug" in caplog.text


def test_state_strings():
    assert [s.value for s in LoadState] == [
        "downloading",
        "ready",
        "decompressing",
        "dicom loading",
        "finished",
        "error",
        "cancelled",
    ]
    assert LoadState("dicom loading") is LoadState.DICOM_LOADING
