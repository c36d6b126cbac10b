"""Loads on their own loop thread: results, errors, observer calls on the app's loop, cancel and shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from webviewer.app.load_thread import LoadThread


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_progress(self, event):
        self.calls.append(("progress", threading.current_thread().name))

    def on_slices_placed(self, buffer, placed):
        self.calls.append(("placed", threading.current_thread().name))


async def fake_load(url, mode, *, observer=None, seen=None):
    seen["thread"] = threading.current_thread().name
    observer.on_progress("downloading")
    observer.on_slices_placed(object(), 1)
    observer.on_volume_allocated(object())  # the recorder has no such method: nothing happens
    await asyncio.sleep(0)
    return f"{url}:{mode}"


@pytest.fixture
def load_thread():
    lt = LoadThread(name="test-load-thread")
    yield lt
    lt.close()
    assert not lt.alive


async def test_the_load_runs_on_its_own_thread_and_observer_calls_come_back(load_thread):
    seen: dict = {}
    rec = Recorder()
    result = await load_thread.run(fake_load, "u", "stream-dicom", observer=rec, seen=seen)
    assert result == "u:stream-dicom"
    assert seen["thread"] == "test-load-thread"
    await asyncio.sleep(0)  # the posted observer calls run on this loop
    here = threading.current_thread().name
    assert rec.calls == [("progress", here), ("placed", here)]


async def test_an_engine_error_reaches_the_caller(load_thread):
    async def failing(url, mode, *, observer=None):
        raise ValueError("broken ZIP")

    with pytest.raises(ValueError, match="broken ZIP"):
        await load_thread.run(failing, "u", "batch")
    assert await load_thread.run(fake_load, "u", "batch", observer=Recorder(), seen={}) == "u:batch"


class EndlessLoad:
    """A load that runs until cancelled; ``started`` and ``cleaned`` tell the test where it is."""

    def __init__(self, cleanup_s: float = 0.0) -> None:
        self.started, self.cleaned = threading.Event(), threading.Event()
        self.cleanup_s = cleanup_s

    async def __call__(self, url, mode, *, observer=None):
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            if self.cleanup_s:
                await asyncio.sleep(self.cleanup_s)  # the engine's cleanup takes a moment
            self.cleaned.set()


async def test_cancel_cancels_the_load_and_waits_for_its_cleanup(load_thread):
    endless = EndlessLoad(cleanup_s=0.05)
    started, cleaned = endless.started, endless.cleaned
    task = asyncio.ensure_future(load_thread.run(endless, "u", "batch"))
    await asyncio.to_thread(started.wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()  # run() returned only after the load's finally block


async def test_close_cancels_a_running_load_and_stops_the_thread():
    lt = LoadThread(name="test-load-close")
    endless = EndlessLoad()
    started, cleaned = endless.started, endless.cleaned
    task = asyncio.ensure_future(lt.run(endless, "u", "batch"))
    await asyncio.to_thread(started.wait)
    await asyncio.to_thread(lt.close)
    assert cleaned.is_set() and not lt.alive
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(t.name == "test-load-close" for t in threading.enumerate())
