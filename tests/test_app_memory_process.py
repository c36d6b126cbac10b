"""Honest memory with loads in the session's worker process (the default): PoC2's figure is never below its
volume, the previous content is off the panes and out of memory before the next load's baseline, and the
session's end stops the worker."""

from __future__ import annotations

import gc
import uuid

import psutil
import pytest
from app_helpers import FakeRenderer, write_memory_ct
from test_app_load_process import memfds
from trame.app import get_server

from webviewer.api.app import start_api_server
from webviewer.api.catalog import Catalog
from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp
from webviewer.app.load_process import LoadProcess

CT = "memory-process-ct"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_memory_ct(tmp_path_factory.mktemp("memory-process"), CT, seed=12)


@pytest.fixture
async def app(data_dir):
    runner, url = await start_api_server(Catalog.from_data_dir(data_dir))
    server = get_server(f"test-memory-process-{uuid.uuid4().hex}", client_type="vue3")
    app = WebViewerApp(server, catalog_source=CatalogSource(api_url=url), renderer=FakeRenderer(), memory_poll_s=0)
    app.state.ready()
    await app.refresh_catalog()
    app.loader.load_thread.start()  # as the server's ready hook does
    yield app
    app.loader.close()
    await runner.cleanup()


async def test_loads_run_in_a_worker_process_by_default_and_poc2_memory_is_never_below_its_volume(app):
    assert isinstance(app.loader.load_thread, LoadProcess)
    for mode in ("stream-dicom", "batch", "stream-dicom", "stream-files", "stream-dicom"):
        app.ctrl.load(CT, mode, "unlimited")
        await app.loader.task
        assert app.state.load_state == "finished", app.state.error_message
    rows = app.state.runs
    poc2 = [r for r in rows if r["mode"] == "stream-dicom"]
    assert len(poc2) == 3
    for r in rows:
        details = r["memory"]
        assert details["volume_mb"] == pytest.approx(r["volume_mb"], abs=0.1)
        assert r["peak_mb"] == pytest.approx(details["engine_mb"] + details["app_mb"], abs=0.11)
        assert details["engine_mb"] >= r["volume_mb"]  # the worker wrote every voxel: its pages are its peak
    for r in poc2:
        assert r["peak_mb"] >= r["volume_mb"], r
    batch = next(r for r in rows if r["mode"] == "batch")
    assert batch["peak_mb"] > max(r["peak_mb"] for r in poc2)
    assert batch["memory"]["zip_mb"] > 0 and batch["memory"]["files_mb"] > 0


async def test_the_previous_content_is_gone_before_the_next_load_starts(app):
    process = app.loader.load_thread
    run = process.run
    at_start: list[dict] = []
    gc.collect()
    before = memfds()  # the volumes of earlier tests' sessions that are still referenced

    async def spy(*args, **kwargs):  # what the session holds when the load is handed to the worker
        at_start.append({"renderer_volume": app.renderer.volume, "mapped": memfds(),
                         "worker_mapped": memfds(process.pid)})
        return await run(*args, **kwargs)

    process.run = spy
    app.ctrl.compare(CT, "unlimited", 1)  # three runs; only the last is registered
    await app.loader.task
    assert app.state.load_state == "finished", app.state.error_message
    assert len(at_start) == 3
    for seen in at_start:  # the panes were cleared and the unregistered previous volume unmapped everywhere
        assert seen == {"renderer_volume": None, "mapped": before, "worker_mapped": 0}
    assert len(app.state.runs) == 3 and len(app.state.contents) == 1
    assert memfds() == before + 2  # the one content on screen: one mapping (and the dup of its fd Python's mmap keeps)
    (content,) = app.state.contents
    app.ctrl.unload(content["id"])
    assert memfds() == before and app.loader.current_volume is None


async def test_the_session_end_stops_the_worker(app):
    pid = app.loader.load_thread.pid
    app.ctrl.load(CT, "stream-dicom", "unlimited")
    await app.loader.task
    app.loader.close()  # what trame's server_exited runs
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
