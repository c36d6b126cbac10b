"""The results table says what each column means, and each run's memory cell lists its components."""

from __future__ import annotations

import uuid

from app_helpers import (
    FakeCatalog,
    FakeEntry,
    FakeMetrics,
    FakeRegistry,
    FakeRenderer,
    FakeResult,
    FakeVolume,
)
from trame.app import get_server

from webviewer.app import i18n, results
from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp

MB = 1_000_000


def test_every_explained_column_has_a_translated_tooltip_in_the_page():
    server = get_server(f"test-columns-{uuid.uuid4().hex}", client_type="vue3")
    source = CatalogSource(catalog=FakeCatalog([FakeEntry("sample-tiny", "Tiny", 8)]), api_url="http://127.0.0.1:9")
    app = WebViewerApp(server, catalog_source=source, renderer=FakeRenderer(), registry=FakeRegistry(),
                       load_fn=lambda *a, **k: None, memory_poll_s=0)
    html = app.ui.html
    for key in ("mode", "total", "first_slice", "peak_memory", "states"):
        assert f'data-testid="col-help-{key}"' in html
        assert f":title=\"t['help.{key}']\"" in html
        for lang in ("en", "ko"):
            assert i18n.messages(lang)[f"help.{key}"].strip()
    assert 'data-testid="results-memory"' in html
    # the first-image column says why it can exceed the total
    assert "exceed" in i18n.messages("en")["help.first_slice"]


def test_a_rows_memory_details_list_each_component_and_what_the_session_held():
    metrics = FakeMetrics(peak_above_baseline_bytes=230 * MB, volume_bytes=199 * MB,
                          components_peak_bytes={"zip": 5 * MB, "files": 2 * MB, "datasets": 0, "volume": 199 * MB})
    metrics.memory_method = "vmhwm"
    metrics.memory_shared = False
    result = FakeResult("PoC_CT_STREAMDICOM_1", "stream-dicom", "stream-dicom", "CT", FakeVolume(None),
                        metrics=metrics)
    row = results.run_row(result, run=1, ct_name="CT", network="unlimited", first_slice_s=0.2,
                          held_bytes=398 * MB, render_bytes=75 * MB)
    assert row["peak_mb"] == 230.0 and row["volume_mb"] == 199.0
    mem = row["memory"]
    assert (mem["zip_mb"], mem["files_mb"], mem["datasets_mb"], mem["volume_mb"]) == (5.0, 2.0, 0.0, 199.0)
    assert (mem["render_mb"], mem["held_mb"], mem["method"], mem["shared"]) == (75.0, 398.0, "vmhwm", False)
    assert '"held_mb": 398.0' in results.to_json([row])  # the JSON export carries the details
    assert "memory" not in results.to_csv([row]).splitlines()[0].split(",")  # the CSV keeps its columns
