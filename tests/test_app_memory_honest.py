"""Honest memory in the app over the real engine (on its load thread) and the real CT API: PoC2's figure is never
below its volume, the previous volume is gone before a load's baseline, and cancelled loads leave nothing behind."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import uuid
import weakref

import pytest
from app_helpers import FakeRenderer, write_memory_ct
from trame.app import get_server

from webviewer.api.app import start_api_server
from webviewer.api.catalog import Catalog
from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp
from webviewer.loading import load as engine_load

CT = "memory-ct"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_memory_ct(tmp_path_factory.mktemp("honest-memory"), CT, seed=11)


@pytest.fixture
async def api(data_dir):
    runner, url = await start_api_server(Catalog.from_data_dir(data_dir))
    yield url
    await runner.cleanup()


class Spy:
    """The engine's load, wrapped: what the session held when each load began; an event once it is under way."""

    def __init__(self, app_ref: list) -> None:
        self.app_ref = app_ref
        self.at_start: list[dict] = []
        self.previous: weakref.ref | None = None
        self.under_way = threading.Event()
        self.events: list = []

    async def __call__(self, url, mode, *, options=None, observer=None):
        app = self.app_ref[0]
        self.events.append("load")
        gc.collect()
        self.at_start.append({"renderer_volume": app.renderer.volume,
                              "previous_alive": self.previous is not None and self.previous() is not None})
        spy = self

        class Signal:
            def __getattr__(self, name):
                method = getattr(observer, name)

                def call(*args):
                    spy.under_way.set()
                    return method(*args)

                return call

        result = await engine_load(url, mode, options=options, observer=Signal())
        self.previous = weakref.ref(result.volume)
        return result


async def make_app(api, spy=None, *, threaded: bool = True):
    server = get_server(f"test-honest-{uuid.uuid4().hex}", client_type="vue3")
    holder: list = []
    app = WebViewerApp(server, catalog_source=CatalogSource(api_url=api), renderer=FakeRenderer(),
                       memory_poll_s=0, load_fn=spy, threaded_load=threaded)
    holder.append(app)
    if spy is not None:
        spy.app_ref = holder
    app.state.ready()
    await app.refresh_catalog()
    return app


async def test_poc2_memory_is_never_below_its_volume_and_batch_holds_more(api):
    app = await make_app(api)
    try:
        for mode in ("stream-dicom", "batch", "stream-dicom", "stream-files", "stream-dicom"):
            app.ctrl.load(CT, mode, "unlimited")
            await app.loader.task
            assert app.state.load_state == "finished", app.state.error_message
        rows = app.state.runs
        poc2 = [r for r in rows if r["mode"] == "stream-dicom"]
        assert len(poc2) == 3
        for r in rows:
            assert r["memory"]["volume_mb"] == pytest.approx(r["volume_mb"], abs=0.1)
            assert r["memory"]["method"] in ("vmhwm", "sampled") and not r["memory"]["shared"]
        for r in poc2:
            assert r["peak_mb"] >= r["volume_mb"], r
            assert set(r["progressive"]) == {"refreshes", "refreshes_3d", "render_s"}
        batch = next(r for r in rows if r["mode"] == "batch")
        assert batch["peak_mb"] > max(r["peak_mb"] for r in poc2)
        assert batch["memory"]["zip_mb"] > 0 and batch["memory"]["files_mb"] > 0
    finally:
        app.loader.close()


async def test_the_previous_volume_is_gone_before_the_next_load_starts(api):
    spy = Spy([])
    app = await make_app(api, spy)
    try:
        app.ctrl.compare(CT, "unlimited", 1)  # three runs; only the last is registered
        await app.loader.task
        assert app.state.load_state == "finished", app.state.error_message
        assert len(spy.at_start) == 3
        for seen in spy.at_start:  # the panes were cleared and the unregistered previous volume freed
            assert seen["renderer_volume"] is None
            assert seen["previous_alive"] is False
        assert len(app.state.runs) == 3 and len(app.state.contents) == 1
    finally:
        app.loader.close()


async def test_the_emptied_panes_are_pushed_once_the_next_load_has_started(api):
    """The black frames of the emptied panes are not on the path from the Load click to the first image: the load
    starts first (here on the loop: its start is recorded before it yields), then the panes are pushed."""
    spy = Spy([])
    app = await make_app(api, spy, threaded=False)
    events = spy.events
    real_push = app.views.push
    app.views.push = lambda panes=None: (events.append(("push", bool(app.state.has_volume), panes)),
                                         frames.append(app.views.progressive_frames), real_push(panes))
    frames: list[bool] = []
    try:
        for _ in range(2):
            app.ctrl.load(CT, "stream-dicom", "unlimited")
            await app.loader.task
            assert app.state.load_state == "finished", app.state.error_message
        second = events.index("load", events.index("load") + 1)
        assert ("push", False, None) not in events[:second]  # not before the second load started
        assert events[second + 1] == ("push", False, None)  # then: the emptied panes, once the load was under way
        pushes = [e for e in events if e != "load"]
        # the black frames at the load's small progressive size; the finished volume's at full size
        assert frames[pushes.index(("push", False, None))] is True
        assert events[-1][1] is True and frames[-1] is False
    finally:
        app.loader.close()


async def test_twenty_cancelled_loads_leave_no_thread_buffer_or_shared_memory(api):
    spy = Spy([])
    app = await make_app(api, spy)
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    threads_before = set(threading.enumerate())
    try:
        for _ in range(20):
            spy.under_way.clear()
            task = app.loader.start(CT, "stream-dicom", "unlimited")
            await asyncio.to_thread(spy.under_way.wait, 60)
            assert spy.under_way.is_set()
            app.ctrl.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert app.state.load_state == "cancelled"
        assert app.state.contents == [] and app.loader.current_volume is None
        gc.collect()
        assert spy.previous is None  # no load finished
        load_threads = [t for t in set(threading.enumerate()) - threads_before if t.name == "webviewer-load"]
        assert load_threads == [app.loader.load_thread._thread]  # one per session, reused
        if os.path.isdir("/dev/shm"):
            assert set(os.listdir("/dev/shm")) - shm_before == set()
    finally:
        app.loader.close()
    assert not app.loader.load_thread.alive
