"""The app keeps a session's contents within its memory budget (fake engine and renderer, real registry)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import numpy as np
import pytest
from app_helpers import FakeCatalog, FakeEngine, FakeEntry, FakeRenderer, FakeVolume
from trame.app import get_server

from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp, _budget_mb
from webviewer.app.memory import render_copy_bytes
from webviewer.errors import LimitExceededError
from webviewer.loading.budget import ContentBudget
from webviewer.loading.registry import ContentRegistry

SLICE = 16 * 16 * 2  # the fake engine's slices are 16x16 int16


class Options:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


@dataclass
class SizedEntry(FakeEntry):
    """A catalog entry that knows its dimensions (as our CT API's does)."""

    rows: int = 16
    columns: int = 16

    def to_json(self) -> dict:
        return {**super().to_json(), "rows": self.rows, "columns": self.columns}


@pytest.fixture
def make_app():
    def factory(budget_bytes: int, engine: FakeEngine | None = None):
        server = get_server(f"test-budget-{uuid.uuid4().hex}", client_type="vue3")
        catalog = FakeCatalog([SizedEntry("small", "Small", 8),
                               SizedEntry("huge", "Huge", 400, rows=512, columns=512),
                               FakeEntry("unsized", "Unsized", 8)])
        source = CatalogSource(catalog=catalog, api_url="http://127.0.0.1:9")
        engine = engine or FakeEngine(8)
        registry = ContentRegistry(ContentBudget(budget_bytes))
        app = WebViewerApp(server, catalog_source=source, renderer=FakeRenderer(), registry=registry,
                           load_fn=engine, options_factory=Options, memory_poll_s=0)
        app.loader.refresh_interval_s = 0.03
        app.state.ready()
        return app, engine
    return factory


async def load(app, ct="small", mode="batch"):
    await app.refresh_catalog()
    assert app.ctrl.load(ct, mode, "unlimited") is None
    if app.loader.task is not None:
        await asyncio.gather(app.loader.task, return_exceptions=True)


def ids(app) -> list[str]:
    return [c["id"] for c in app.state.contents]


async def test_twenty_loads_keep_the_one_on_screen_and_its_predecessor(make_app):
    app, _ = make_app(10**9)
    seen = []
    for i in range(20):
        await load(app, mode=("batch", "stream-files", "stream-dicom")[i % 3])
        seen.append(app.loader.current_content_id)
        assert ids(app) == seen[-2:]  # on screen (last) and the one before it
        assert app.loader.registry.on_screen == seen[-1]
        assert app.renderer.volume is app.loader.registry.get(seen[-1]).volume
    gone = [u["id"] for u in app.state.contents_unloaded]
    assert gone == seen[-3:-13:-1]  # newest first, the last 10 kept as history
    assert all(u["reason"] == "count" for u in app.state.contents_unloaded)
    assert "one before it" in app.state.contents_unloaded[0]["text"]
    assert all(app.loader.registry.get(i) is None for i in seen[:-2])
    assert "of the 1000 MB budget" in app.state.budget_text


async def test_a_load_that_needs_room_unloads_the_oldest_not_on_screen(make_app):
    on_screen_copies = render_copy_bytes(FakeVolume(np.zeros((8, 16, 16), dtype=np.int16)))
    budget = 2 * 8 * SLICE + on_screen_copies + 8 * SLICE - 1  # one byte short of two contents + the next load
    app, _ = make_app(budget)
    for _ in range(2):
        await load(app, mode="stream-dicom")  # PoC2 needs about its volume (1.05x) while it loads
    first, second = ids(app)
    await load(app, mode="stream-dicom")
    assert ids(app) == [second, app.loader.current_content_id]
    (u,) = app.state.contents_unloaded
    assert (u["id"], u["reason"]) == (first, "budget")
    assert "to stay within" in u["text"]


async def test_a_volume_over_the_budget_is_refused_before_the_download(make_app):
    app, engine = make_app(50_000_000)
    await load(app)
    before_contents, before_calls = list(app.state.contents), len(engine.calls)
    shown = app.renderer.volume
    await load(app, ct="huge")
    assert len(engine.calls) == before_calls  # never reached the engine
    msg = app.state.error_message
    assert "Huge needs 210 MB" in msg and "budget of 50 MB" in msg and "--content-budget-mb 500" in msg
    assert app.state.load_state == "error"
    assert app.state.contents == before_contents and app.renderer.volume is shown and app.state.has_volume
    await load(app)  # and the app keeps serving
    assert app.state.load_state == "finished"


async def test_the_engine_gets_the_budget_as_its_volume_limit_and_its_refusal_names_it(make_app):
    engine = FakeEngine(8, fail=LimitExceededError(
        "The CT volume (512x512x400, int16) needs 210 MB, above the limit max_volume_bytes = 50 MB. "
        "Raise max_volume_bytes if you have the memory."))
    app, _ = make_app(50_000_000, engine)
    await load(app, ct="unsized")  # no dimensions in the catalog, no directory at this URL: the engine decides
    assert engine.calls[0][2].limits.max_volume_bytes == 50_000_000
    assert "content budget is 50 MB" in app.state.error_message
    assert "--content-budget-mb" in app.state.error_message


async def test_compare_runs_keep_only_the_content_shown_at_the_end(make_app):
    app, engine = make_app(10**9)
    await load(app)
    before = app.loader.current_content_id
    await app.refresh_catalog()
    app.ctrl.compare("small", "unlimited", 3)
    await asyncio.gather(app.loader.task, return_exceptions=True)
    assert engine.counter == 10
    final = app.loader.current_content_id
    assert ids(app) == [before, final]  # the run on screen and, as after any load, the one before it
    assert app.renderer.volume is app.loader.registry.get(final).volume
    assert "kept only the content of its last run" in app.state.notice and "other 8 runs" in app.state.notice
    assert app.state.contents_unloaded == []  # the other runs were never registered


async def test_user_unload_gives_the_budget_back(make_app):
    app, _ = make_app(10**9)
    await load(app)
    await load(app)
    first = ids(app)[0]
    app.ctrl.unload(first)
    assert ids(app) == [app.loader.current_content_id]
    assert app.loader.registry.held_bytes() == 8 * SLICE


@pytest.mark.parametrize("text", ["0", "-5", "lots", "inf", "nan"])
def test_budget_flag_rejects_what_is_not_a_positive_size(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="positive number of MB"):
        _budget_mb(text)
    assert _budget_mb("1200") == 1200.0


def test_the_volume_limit_given_to_the_engine_leaves_the_callers_limits_alone():
    from webviewer.app.contents import ContentsLogic
    from webviewer.loading.limits import Limits

    shared = Limits(max_archive_bytes=123)
    logic = ContentsLogic(None, ContentRegistry(ContentBudget(10_000)))
    limits = logic.limits_kwargs({"limits": shared})["limits"]
    assert (limits.max_volume_bytes, limits.max_archive_bytes) == (10_000, 123)
    assert shared.max_volume_bytes == Limits().max_volume_bytes
    assert ContentsLogic(None, ContentRegistry()).limits_kwargs({}) == {}  # no budget: the engine's own limit
