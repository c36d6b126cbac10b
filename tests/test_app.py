"""State and logic of the trame app, without a browser: fakes for the engine and the renderer."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest
from app_helpers import FakeCatalog, FakeEngine, FakeEntry, FakeRegistry, FakeRenderer
from trame.app import get_server

from webviewer.app import i18n
from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp
from webviewer.errors import ArchiveError

REQUIRED_TESTIDS = [
    "ct-select", "mode-batch", "mode-stream-files", "mode-stream-dicom", "network-select", "load-button",
    "cancel-button", "compare-button", "compare-runs", "load-state", "load-stepper", "progress-bar",
    "progress-files", "progress-bytes", "progress-rate", "progress-elapsed", "server-memory",
    "pane-axial", "pane-3d", "pane-sagittal", "pane-coronal", "slider-axial", "slider-sagittal",
    "slider-coronal", "slice-axial", "slice-sagittal", "slice-coronal", "wl-soft-tissue", "wl-lung", "wl-bone",
    "wl-brain", "wl-auto", "vr-preset", "results-table", "results-summary", "results-chart", "export-csv",
    "export-json", "contents-table", "error-message", "fallback-notice", "lang-select", "app-ready",
]


class Options:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


@pytest.fixture
def make_app():
    def factory(engine: FakeEngine | None = None, slices: int = 8):
        server = get_server(f"test-app-{uuid.uuid4().hex}", client_type="vue3")
        catalog = FakeCatalog([FakeEntry("sample-tiny", "Tiny", slices), FakeEntry("broken", "Broken", 3)])
        source = CatalogSource(catalog=catalog, api_url="http://127.0.0.1:9")
        engine = engine or FakeEngine(slices)
        app = WebViewerApp(server, catalog_source=source, renderer=FakeRenderer(), registry=FakeRegistry(),
                           load_fn=engine, options_factory=Options, memory_poll_s=0)
        app.loader.refresh_interval_s = 0.03
        app.state.ready()
        return app, engine
    return factory


async def ready(app):
    await app.refresh_catalog()
    return app


async def run(app, action, *args):
    """Call a controller action the way the page does (it returns None) and wait for the load task."""
    assert action(*args) is None
    task = app.loader.task
    if task is not None:
        await asyncio.gather(task, return_exceptions=True)
    return task


def test_html_has_every_required_testid(make_app):
    app, _ = make_app()
    html = app.ui.html
    missing = [tid for tid in REQUIRED_TESTIDS if f'data-testid="{tid}"' not in html]
    assert missing == []
    # four-up order: axial, 3D, sagittal, coronal
    order = [html.index(f'data-testid="pane-{p}"') for p in ("axial", "3d", "sagittal", "coronal")]
    assert order == sorted(order)
    # the load trigger carries its arguments (no stale-state race)
    assert "[ct_id, mode, network]" in html


def test_message_table_complete_and_used_keys_exist(make_app):
    tables = i18n.load_messages()
    assert set(tables) == {"en", "ko"}
    assert set(tables["en"]) == set(tables["ko"])
    app, _ = make_app()
    html = app.ui.html
    used = set(re.findall(r"(?<![\w.])t\.([a-z_]+)", html)) | set(re.findall(r"(?<![\w.])t\['([a-z_.\-]+)'\]", html))
    used = {k for k in used if not k.endswith(".")}
    assert used, "the page takes its labels from t"
    assert sorted(k for k in used if k not in tables["en"]) == []


async def test_catalog_fills_picker_and_selects_first(make_app):
    app, _ = make_app()
    await ready(app)
    assert [i["value"] for i in app.state.ct_items] == ["sample-tiny", "broken"]
    assert "8 slices" in app.state.ct_items[0]["title"]
    assert app.state.ct_id == "sample-tiny"


async def test_stream_dicom_load_fills_panes_progressively_and_adds_a_run(make_app):
    app, engine = make_app()
    await ready(app)
    assert app.ctrl.load("sample-tiny", "stream-dicom", "100mbit") is None
    assert app.state.busy is True
    await app.loader.task
    assert app.state.load_state == "finished"
    assert app.state.busy is False
    url, mode, options = engine.calls[0]
    assert url == "http://127.0.0.1:9/api/cts/sample-tiny/archive?profile=100mbit"
    assert mode == "stream-dicom"
    assert options.expected_slices == 8 and options.name == "Tiny"
    names = [c[0] for c in app.renderer.calls]
    # first preview sets the volume, later previews are volume_modified, the finished volume is set at the end
    assert names.index("set_volume") < names.index("volume_modified")
    assert app.renderer.named("set_volume")[-1][1] == (8, 16, 16)
    assert [s["state"] for s in app.state.steps] == ["downloading", "ready", "dicom loading", "finished"]
    assert app.state.step_value == 4
    (row,) = app.state.runs
    assert row["mode"] == "stream-dicom" and row["network"] == "100mbit" and row["ct"] == "Tiny"
    assert row["first_slice_s"] is not None and row["first_slice_s"] <= row["total_s"] + 10
    assert row["peak_mb"] == 10.0
    assert app.state.first_slice_pushed_ms >= app.state.first_slice_placed_ms > 0
    assert [c["id"] for c in app.state.contents] == ["PoC_CT_STREAMDICOM_1"]
    assert app.state.has_volume is True
    assert app.state.count_axial == 8
    assert app.state.labels["axial"]["top"] == "A"
    assert app.state.files_text == "8 of 8 files"


async def test_batch_stepper_has_decompressing_and_poc_modes_do_not(make_app):
    app, _ = make_app()
    await ready(app)
    for mode, has in (("batch", True), ("stream-files", False), ("stream-dicom", False)):
        await run(app, app.ctrl.load, "sample-tiny", mode, "unlimited")
        assert app.state.load_state == "finished"
        assert ("decompressing" in [s["state"] for s in app.state.steps]) is has
    assert [r["mode"] for r in app.state.runs] == ["batch", "stream-files", "stream-dicom"]


async def test_unlimited_network_has_no_profile_query(make_app):
    app, engine = make_app()
    await ready(app)
    await run(app, app.ctrl.load, "sample-tiny", "batch", "unlimited")
    assert engine.calls[0][0] == "http://127.0.0.1:9/api/cts/sample-tiny/archive"


async def test_second_load_is_refused_and_cancel_reaches_cancelled(make_app):
    gate = asyncio.Event()
    app, engine = make_app(FakeEngine(8, gate=gate))
    await ready(app)
    app.ctrl.load("sample-tiny", "stream-dicom", "4g")
    task = app.loader.task
    await asyncio.wait_for(engine.started.wait(), timeout=30)
    assert app.state.load_state == "downloading"
    app.ctrl.load("sample-tiny", "batch", "4g")
    assert app.loader.task is task
    assert app.state.notice == i18n.messages("en")["busy"]
    assert len(engine.calls) == 1
    app.ctrl.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert app.state.load_state == "cancelled"
    assert app.state.busy is False
    assert app.state.runs == []
    gate.set()
    await run(app, app.ctrl.load, "sample-tiny", "stream-dicom", "unlimited")
    assert app.state.load_state == "finished"
    assert len(app.state.runs) == 1


async def test_engine_error_is_shown_and_next_load_works(make_app):
    engine = FakeEngine(8, fail=ArchiveError())
    app, _ = make_app(engine)
    await ready(app)
    await run(app, app.ctrl.load, "broken", "stream-dicom", "unlimited")
    assert app.state.load_state == "error"
    assert app.state.error_message == ArchiveError.default_message
    assert app.state.busy is False
    engine.fail = None
    await run(app, app.ctrl.load, "sample-tiny", "stream-dicom", "unlimited")
    assert app.state.load_state == "finished"
    assert app.state.error_message == ""


@pytest.mark.parametrize(("ct_id", "network"), [("nope", "unlimited"), ("sample-tiny", "http://evil/")])
async def test_unknown_ct_or_network_never_reaches_the_engine(make_app, ct_id, network):
    app, engine = make_app()
    await ready(app)
    await run(app, app.ctrl.load, ct_id, "batch", network)
    assert engine.calls == []
    assert app.state.load_state == "error"
    assert app.state.error_message


async def test_compare_runs_every_mode_n_times(make_app):
    app, engine = make_app()
    await ready(app)
    await run(app, app.ctrl.compare, "sample-tiny", "unlimited", 2)
    assert [c[1] for c in engine.calls] == ["batch", "stream-files", "stream-dicom"] * 2
    assert len(app.state.runs) == 6
    summary = {s["mode"]: s for s in app.state.summary}
    assert set(summary) == {"batch", "stream-files", "stream-dicom"}
    assert summary["batch"]["time_vs_batch_pct"] == 0.0
    assert all(s["runs"] == 2 for s in summary.values())
    # only the last compare run stays loaded
    assert len(app.state.contents) == 1
    assert json.loads(app.export_json())["summary"][0]["mode"] == "batch"
    csv_text = app.export_csv()
    assert csv_text.splitlines()[0].startswith("run,mode,requested_mode,ct,network,total_s,first_slice_s")
    assert len(csv_text.strip().splitlines()) == 7


async def test_language_switch_changes_labels(make_app):
    app, _ = make_app()
    await ready(app)
    assert app.state.t["load"] == "Load"
    await run(app, app.ctrl.load, "sample-tiny", "batch", "unlimited")
    assert app.state.files_text == "8 of 8 files"
    with app.state:
        app.state.lang = "ko"
    assert app.state.t["load"] == "불러오기"
    assert app.state.files_text == "파일 8개 중 8개"
    assert app.state.load_state == "finished"  # the state word itself stays the exact English word
    assert app.state.load_state_label == "완료"
    assert "초 경과" in app.state.elapsed_text
    assert app.state.network_items[0]["title"] == "무제한"
    assert "장" in app.state.ct_items[0]["title"]
    assert app.state.steps[0]["title"] == "다운로드 중"


async def test_window_level_vr_and_slice_changes_reach_the_renderer(make_app):
    app, _ = make_app()
    await ready(app)
    with app.state:
        app.state.wl_preset = "bone"
    assert app.renderer.named("set_window_preset") == []  # nothing loaded yet
    await run(app, app.ctrl.load, "sample-tiny", "batch", "unlimited")
    assert app.renderer.named("set_window_preset")[-1] == ("set_window_preset", "bone")
    with app.state:
        app.state.wl_preset = "lung"
        app.state.vr_preset = "CT-MIP"
    assert app.renderer.named("set_window_preset")[-1] == ("set_window_preset", "lung")
    assert app.renderer.named("set_vr_preset")[-1] == ("set_vr_preset", "CT-MIP")
    with app.state:
        app.state.slice_axial = 2
    assert app.renderer.named("set_slice")[-1] == ("set_slice", "axial", 2)
    assert app.renderer.slice_info("axial") == (2, 8)


async def test_unload_frees_the_content_and_clears_the_views(make_app):
    app, _ = make_app()
    await ready(app)
    await run(app, app.ctrl.load, "sample-tiny", "stream-files", "unlimited")
    (content,) = app.state.contents
    app.ctrl.unload(content["id"])
    assert app.state.contents == []
    assert app.state.has_volume is False
    assert app.loader.current_volume is None
    assert app.renderer.named("set_volume")[-1] == ("set_volume", None, True)


async def test_picking_a_mode_shows_its_steps_when_idle(make_app):
    app, _ = make_app()
    await ready(app)
    await run(app, app.ctrl.load, "sample-tiny", "stream-dicom", "unlimited")
    with app.state:
        app.state.mode = "batch"
    assert "decompressing" in [s["state"] for s in app.state.steps]
    assert app.state.step_value == 0


async def test_a_fallback_to_batch_switches_the_stepper(make_app):
    app, _ = make_app()
    await ready(app)
    from webviewer.loading.progress import LoadState

    app.loader._begin("stream-dicom")
    engine = FakeEngine(4)
    app.loader.show_progress(engine._event(LoadState.DOWNLOADING))
    app.loader.show_progress(engine._event(LoadState.DECOMPRESSING))
    assert app.state.steps_mode == "batch"
    assert [s["state"] for s in app.state.steps][app.state.step_value - 1] == "decompressing"


async def test_the_loading_panel_shows_at_most_one_progress_event_per_interval(make_app):
    """Events of the same state within the interval are merged (the newest one shown once it has passed); a new
    state shows at once; the end of the load shows the newest figures with its end state."""
    app, _ = make_app()
    await ready(app)
    from webviewer.loading.progress import LoadState

    loader = app.loader
    loader.progress.interval_s = 0.2
    loader._begin("stream-dicom")
    engine = FakeEngine(10)
    loader.on_progress(engine._event(LoadState.DOWNLOADING, placed=1))
    loader.on_progress(engine._event(LoadState.DOWNLOADING, placed=2))
    loader.on_progress(engine._event(LoadState.DOWNLOADING, placed=3))
    assert app.state.files_text.startswith("1")  # the first one at once, the others wait
    await asyncio.sleep(0.3)
    assert app.state.files_text.startswith("3")  # the newest after the interval; 2 never shown
    loader.on_progress(engine._event(LoadState.DICOM_LOADING, placed=4))
    assert app.state.load_state == "dicom loading" and app.state.files_text.startswith("4")  # a new state: at once
    loader.on_progress(engine._event(LoadState.DICOM_LOADING, placed=10))
    assert app.state.files_text.startswith("4")
    loader._set_terminal("finished")
    assert app.state.load_state == "finished" and app.state.files_text.startswith("10")
    await asyncio.sleep(0.3)
    assert app.state.load_state == "finished"  # nothing due after the end


async def test_once_the_bytes_are_in_the_panel_shows_the_downloads_mean_rate(make_app):
    """The engine's rate is the recent one; after the last chunk it covers parsing, not the network (a 12.5 MB/s
    download showed 3.4 MB/s at the end). Once the state moves on, the panel shows bytes / download time."""
    import dataclasses

    app, _ = make_app()
    await ready(app)
    from webviewer.loading.progress import LoadState
    from webviewer.units import MB

    loader = app.loader
    loader._begin("stream-dicom")
    base = FakeEngine(10)._event(LoadState.DOWNLOADING)
    event = dataclasses.replace(base, bytes_downloaded=int(50 * MB), bytes_total=int(100 * MB),
                                rate_bytes_per_s=12.5 * MB, elapsed_s=4.0)
    loader.show_progress(event)
    assert app.state.rate_text.startswith("12.5")
    loader.show_progress(dataclasses.replace(event, state=LoadState.READY, bytes_downloaded=int(100 * MB),
                                             rate_bytes_per_s=3.4 * MB, elapsed_s=8.0))
    assert app.state.rate_text.startswith("12.5")  # 100 MB in 8 s, not the last instant's 3.4
    loader.show_progress(dataclasses.replace(event, state=LoadState.FINISHED, bytes_downloaded=int(100 * MB),
                                             rate_bytes_per_s=0.5 * MB, elapsed_s=9.0))
    assert app.state.rate_text.startswith("12.5")  # parsing after the download does not lower it
