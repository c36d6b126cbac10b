"""The app with `--orthanc`: Orthanc's series in the CT picker (ids and names only), loads through the real
engine with the credentials kept server-side, and a refused or stopped Orthanc leaves the app usable."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid

import numpy as np
import pytest
from app_helpers import FakeCatalog, FakeEntry, FakeRegistry, FakeRenderer
from orthanc_helpers import PASSWORD, USER, orthanc  # noqa: F401 - fixture
from trame.app import get_server

from webviewer.app import i18n
from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp
from webviewer.app.state import NETWORKS
from webviewer.orthanc.catalog import add_orthanc_arguments, orthanc_catalog_from_args

NAME = "dcmqa-ge-head-gantrytilt"


def app_with_orthanc(url: str, password: str, *, only: bool = False) -> WebViewerApp:
    parser = argparse.ArgumentParser()
    add_orthanc_arguments(parser)
    args = parser.parse_args(["--orthanc", url, "--orthanc-user", USER, "--orthanc-password", password]
                             + (["--orthanc-only"] if only else []))
    base = None if only else CatalogSource(catalog=FakeCatalog([FakeEntry("sample-tiny", "Tiny", 8)]),
                                           api_url="http://127.0.0.1:9")
    source = orthanc_catalog_from_args(args, base, networks=NETWORKS)
    server = get_server(f"test-orthanc-app-{uuid.uuid4().hex}", client_type="vue3")
    app = WebViewerApp(server, catalog_source=source, renderer=FakeRenderer(), registry=FakeRegistry(),
                       memory_poll_s=0)
    app.loader.refresh_interval_s = 0.03
    app.state.ready()
    return app


async def run_load(app: WebViewerApp, ct_id: str, mode: str, network: str = "unlimited") -> None:
    assert app.load(ct_id, mode, network) is None
    await asyncio.gather(app.loader.task, return_exceptions=True)


def orthanc_item(app, orthanc_server, kind: str) -> str:
    up = orthanc_server.series[NAME]
    wanted = ("orthanc-wado-" if kind == "dicomweb" else "orthanc-") + up.orthanc_id
    assert any(i["value"] == wanted for i in app.state.ct_items)
    return wanted


@pytest.mark.parametrize("kind", ["archive", "dicomweb"])
async def test_orthanc_series_load_in_the_app(orthanc, kind):  # noqa: F811
    app = app_with_orthanc(orthanc.url, PASSWORD)
    try:
        await app.refresh_catalog()
        items = app.state.ct_items
        assert items[0]["value"] == "sample-tiny" and len(items) == 1 + 2 * 3
        blob = json.dumps(app.state.to_dict() if hasattr(app.state, "to_dict") else items, default=str)
        assert PASSWORD not in blob and orthanc.url not in json.dumps(items)
        ct_id = orthanc_item(app, orthanc, kind)
        await run_load(app, ct_id, "stream-dicom", "100mbit")  # profiles do not throttle Orthanc
        assert app.state.load_state == "finished", app.state.error_message
        assert app.state.notice == i18n.messages("en")["network_not_applied"]
        assert app.state.runs[-1]["network"] == "unlimited"
        volume = app.loader.current_volume
        assert volume is not None and volume.hu.shape == (28, 512, 512)
        assert "gantry_tilt" in app.state.warnings_text
        assert len(app.state.runs) == 1
    finally:
        await app.catalog.client.close()


async def test_orthanc_refusing_credentials_keeps_the_app_usable(orthanc):  # noqa: F811
    app = app_with_orthanc(orthanc.url, "wrong")
    try:
        await app.refresh_catalog()  # Orthanc answers 401: the demo CTs stay
        assert [i["value"] for i in app.state.ct_items] == ["sample-tiny"]
        assert "401" in app.catalog.error
    finally:
        await app.catalog.client.close()


async def test_orthanc_only_and_a_failed_load_then_a_good_one(orthanc):  # noqa: F811
    app = app_with_orthanc(orthanc.url, PASSWORD, only=True)
    try:
        await app.refresh_catalog()
        assert all(i["value"].startswith("orthanc-") for i in app.state.ct_items)
        ct_id = orthanc_item(app, orthanc, "archive")
        good_password = app.catalog.client.auth
        from webviewer.orthanc.auth import OrthancAuth

        app.catalog.client.auth = OrthancAuth(user=USER, password="changed-meanwhile")
        await run_load(app, ct_id, "batch")
        assert app.state.load_state == "error" and "401" in app.state.error_message
        assert "changed-meanwhile" not in app.state.error_message
        app.catalog.client.auth = good_password
        await run_load(app, ct_id, "batch")
        assert app.state.load_state == "finished"
        assert np.asarray(app.loader.current_volume.hu).shape == (28, 512, 512)
    finally:
        await app.catalog.client.close()
