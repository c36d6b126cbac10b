"""Loads in the session's worker process: the same volume bit for bit as in-process, the engine's errors with their
types, cancel, crash and session end clean up the worker, and nothing of its shared memory is left behind."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import textwrap

import numpy as np
import psutil
import pytest
from realdata import real_series_dir

from webviewer.api.app import start_api_server
from webviewer.api.catalog import Catalog
from webviewer.api.samples import SeriesSpec, write_series, zip_folder
from webviewer.app.load_process import LoadProcess
from webviewer.errors import ArchiveError, WebViewerError
from webviewer.loading import load as engine_load

MODES = ("batch", "stream-files", "stream-dicom")
CT = "process-ct"


def memfds(pid: int | str = "self") -> int:
    """Memfd segments of a process: open descriptors plus mappings (0 when it holds no shared volume)."""
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds += "memfd:webviewer-volume" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    with open(f"/proc/{pid}/maps") as f:
        maps = sum("memfd:webviewer-volume" in line for line in f)
    return fds + maps


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("load-process")
    write_series(base / "tiny", SeriesSpec(rows=64, columns=64, slices=48, seed=5, description="Tiny"))
    write_series(base / "slow", SeriesSpec(rows=128, columns=128, slices=60, seed=6, description="Slow"))
    (base / "api").mkdir()
    zip_folder(base / "slow", base / "api" / f"{CT}.zip")
    zip_folder(base / "tiny", base / "tiny.zip")
    (base / "broken.zip").write_bytes(b"PK\x03\x04" + os.urandom(2000))
    return base


@pytest.fixture
async def slow_url(data):
    """An archive paced at 1 Mbit/s: a load is under way for seconds, long enough to cancel or kill it."""
    runner, url = await start_api_server(Catalog.from_data_dir(data / "api"))
    yield f"{url}/api/cts/{CT}/archive?rate=1mbit"
    await runner.cleanup()


@pytest.fixture
def process():
    lp = LoadProcess(cancel_timeout_s=30)
    lp.start()
    yield lp
    pid = lp.pid
    lp.close()
    assert not lp.alive and not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


class UnderWay:
    """Observer that sets an event at the load's first progress event (the worker is loading)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.placed = 0

    def on_progress(self, event) -> None:
        if event.bytes_downloaded > 0:
            self.event.set()

    def on_slices_placed(self, buffer, placed) -> None:
        self.placed = placed


@pytest.mark.parametrize("source", ["tiny.zip", "real"])
async def test_a_volume_loaded_in_the_worker_is_bit_identical_to_an_in_process_load(data, process, source):
    path = real_series_dir("slicer-cthead-64px") if source == "real" else data / source
    pid = process.pid
    gc.collect()
    before = memfds()  # volumes of other tests' sessions still referenced
    for mode in MODES:
        got = await process.run(None, path, mode)
        want = await engine_load(path, mode)
        assert got.volume.hu.dtype == want.volume.hu.dtype and got.volume.hu.shape == want.volume.hu.shape
        assert np.array_equal(got.volume.hu, want.volume.hu), mode
        assert got.volume.spacing == want.volume.spacing and got.volume.origin == want.volume.origin
        assert np.array_equal(got.volume.direction, want.volume.direction)
        assert [w.code for w in got.warnings] == [w.code for w in want.warnings]
        assert got.mode.value == mode and got.metrics.volume_bytes == want.volume.nbytes
        # the worker's own peak (above its idle baseline) covers the volume it built in shared memory
        assert got.metrics.peak_above_baseline_bytes >= got.volume.nbytes
        assert not got.volume.hu.flags.owndata  # a view of the shared pages, not a copy
    assert process.pid == pid  # one worker, reused
    del got
    gc.collect()
    assert memfds() == before and memfds(pid) == 0  # the last volume gone: its memory is given back


async def test_an_engine_error_comes_back_with_its_type_and_message_and_the_worker_survives(data, process):
    pid = process.pid
    with pytest.raises(ArchiveError) as in_worker:
        await process.run(None, data / "broken.zip", "batch")
    with pytest.raises(ArchiveError) as in_process:
        await engine_load(data / "broken.zip", "batch")
    assert str(in_worker.value) == str(in_process.value)
    assert process.pid == pid and process.alive and memfds(pid) == 0
    assert (await process.run(None, data / "tiny.zip", "stream-dicom")).volume.hu.shape == (48, 64, 64)


async def test_a_crashed_worker_fails_its_load_clearly_and_the_next_load_gets_a_fresh_one(data, process, slow_url):
    old = process.pid
    seen = UnderWay()
    task = asyncio.ensure_future(process.run(None, slow_url, "stream-dicom", observer=seen))
    await seen.event.wait()
    os.kill(old, signal.SIGKILL)
    with pytest.raises(WebViewerError, match="load process died"):
        await task
    assert process.pid != old and not psutil.pid_exists(old)
    assert (await process.run(None, data / "tiny.zip", "batch")).volume.hu.shape == (48, 64, 64)


async def test_twenty_cancelled_loads_leave_no_shared_memory_and_no_growing_memory(data, process, slow_url):
    shm_before = set(os.listdir("/dev/shm"))
    pid = process.pid
    gc.collect()
    before = memfds()
    worker_rss = []
    for _ in range(20):
        seen = UnderWay()
        task = asyncio.ensure_future(process.run(None, slow_url, "stream-dicom", observer=seen))
        await seen.event.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert process.pid == pid  # the worker confirmed the cancel: not killed
        assert memfds(pid) == 0 and memfds() == before
        parts = process.worker_rss()
        worker_rss.append(parts["anon"] + parts["file"] + parts["shmem"])
    assert set(os.listdir("/dev/shm")) == shm_before
    assert worker_rss[-1] <= worker_rss[4] * 1.1 + (4 << 20), worker_rss  # settled after a few loads, not growing
    assert (await process.run(None, data / "tiny.zip", "stream-dicom")).volume.hu.shape == (48, 64, 64)


async def test_cancel_kills_a_worker_that_does_not_confirm_and_starts_a_fresh_one(data, slow_url):
    lp = LoadProcess(cancel_timeout_s=0.5)
    lp.start()
    try:
        old = lp.pid
        seen = UnderWay()
        task = asyncio.ensure_future(lp.run(None, slow_url, "stream-dicom", observer=seen))
        await seen.event.wait()
        os.kill(old, signal.SIGSTOP)  # a worker that hangs: it never answers the cancel
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert lp.pid != old and lp.alive and not psutil.pid_exists(old)
        assert (await lp.run(None, data / "tiny.zip", "batch")).volume.hu.shape == (48, 64, 64)
    finally:
        lp.close()


HELPER = textwrap.dedent("""
    import asyncio, sys
    from webviewer.app.load_process import LoadProcess

    class Seen:
        def __init__(self, lp): self.lp, self.said = lp, False
        def on_progress(self, event):
            if event.bytes_downloaded and not self.said:
                self.said = True
                print(self.lp.pid, flush=True)

    async def main():
        lp = LoadProcess()
        await lp.run(None, sys.argv[1], "stream-dicom", observer=Seen(lp))

    asyncio.run(main())
""")


async def test_the_worker_dies_with_its_session_process_even_when_that_is_killed(slow_url):
    helper = await asyncio.create_subprocess_exec(sys.executable, "-c", HELPER, slow_url,
                                                  stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(helper.stdout.readline(), 60)
    worker = psutil.Process(int(line))
    assert worker.ppid() == helper.pid
    helper.kill()  # SIGKILL: no cleanup code of the session runs
    await helper.wait()
    await asyncio.to_thread(worker.wait, 60)  # end of file on its socket (or the parent-death signal)
    assert not worker.is_running()


async def test_a_worker_that_cannot_start_gives_a_clear_error_and_the_app_keeps_going(data):
    lp = LoadProcess(initializers=("webviewer.no_such_module:init",))
    try:
        with pytest.raises(WebViewerError, match="load process could not start"):
            await lp.run(None, data / "tiny.zip", "batch")
        assert not lp.alive
        lp.initializers = ()
        assert (await lp.run(None, data / "tiny.zip", "batch")).volume.hu.shape == (48, 64, 64)
    finally:
        lp.close()
