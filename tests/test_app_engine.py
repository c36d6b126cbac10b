"""The app's logic over the real engine and the real CT API (tiny sample), without a browser."""

from __future__ import annotations

import uuid

import pytest
from app_helpers import FakeRenderer
from trame.app import get_server

from webviewer.api.app import start_api_server
from webviewer.api.catalog import Catalog
from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp


@pytest.fixture
async def api():
    catalog = Catalog.from_samples(["tiny"], progress=False)
    runner, url = await start_api_server(catalog)
    yield url
    await runner.cleanup()


async def test_remote_api_catalog_maps_ids_to_archive_urls(api):
    source = CatalogSource(api_url=api + "/")
    entries = await source.refresh()
    assert [e["id"] for e in entries] == ["sample-tiny"]
    assert source.archive_url("sample-tiny", "40mbit") == f"{api}/api/cts/sample-tiny/archive?profile=40mbit"
    with pytest.raises(KeyError):
        source.archive_url("../etc/passwd", "unlimited")


@pytest.mark.parametrize("mode", ["batch", "stream-files", "stream-dicom"])
async def test_each_mode_loads_the_tiny_sample_through_the_app(api, mode):
    server = get_server(f"test-app-engine-{uuid.uuid4().hex}", client_type="vue3")
    app = WebViewerApp(server, catalog_source=CatalogSource(api_url=api), renderer=FakeRenderer(),
                       memory_poll_s=0)
    app.state.ready()
    await app.refresh_catalog()
    assert app.state.ct_id == "sample-tiny"
    app.ctrl.load("sample-tiny", mode, "unlimited")
    await app.loader.task
    assert app.state.load_state == "finished", app.state.error_message
    (row,) = app.state.runs
    assert row["mode"] == mode and row["ct"] == "Sample chest CT (tiny)"
    assert row["first_slice_s"] is not None and row["peak_mb"] >= 0
    assert ("decompressing" in row["states"]) is (mode == "batch")
    (content,) = app.state.contents
    assert content["slices"] == 48
    prefix = {"batch": "CT_BATCH_", "stream-files": "PoC_CT_STREAMFILE_", "stream-dicom": "PoC_CT_STREAMDICOM_"}
    assert content["id"].startswith(prefix[mode])
    assert app.renderer.named("set_volume")[-1][1] == (48, 64, 64)
    app.ctrl.unload(content["id"])
    assert app.state.contents == [] and app.state.has_volume is False
