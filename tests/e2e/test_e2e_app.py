"""End-to-end: the real app (`webviewer --samples tiny` + a data folder) in Debian's Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from viewer_page import LONG, ViewerPage

pytestmark = pytest.mark.e2e

TINY = "Sample chest CT (tiny)"
MODES = ("batch", "stream-files", "stream-dicom")


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_loads_the_tiny_sample_and_every_pane_shows_it(viewer: ViewerPage, mode: str):
    runs_before = viewer.result_rows().count()  # the server's state outlives a page
    viewer.load_and_finish(TINY, mode)
    for pane in ("axial", "3d", "sagittal", "coronal"):
        info = viewer.wait_pane_content(pane)
        assert info["nonBlack"] >= 0.05 * info["total"]
    expect(viewer.tid("slice-axial")).to_contain_text("/ 48")
    expect(viewer.tid("orient-axial-top")).to_have_text(re.compile(r"^[APRLSI]+$"))
    rows = viewer.result_rows()
    expect(rows).to_have_count(runs_before + 1, timeout=LONG)
    expect(rows.last).to_contain_text(TINY)
    expect(rows.last).to_contain_text(viewer.tid(f"mode-{mode}").locator(".font-weight-bold").inner_text())
    if mode == "stream-dicom":
        viewer.page.screenshot(path="/tmp/webviewer-loaded.png")
        viewer.tid("results-chart").scroll_into_view_if_needed()
        expect(viewer.tid("results-chart").locator(".main-svg").first).to_be_in_viewport(timeout=LONG)
        viewer.page.screenshot(path="/tmp/webviewer-results.png")


def test_window_level_preset_changes_the_2d_panes(viewer: ViewerPage):
    viewer.load_and_finish(TINY, "stream-dicom")
    viewer.wl_preset("soft-tissue")
    panes = ("axial", "sagittal", "coronal")
    for pane in panes:
        viewer.wait_pane_content(pane)
    before = {pane: viewer.wait_pane_stable(pane) for pane in panes}  # late frames of the load have landed
    viewer.wl_preset("lung")
    for pane, info in before.items():
        viewer.wait_pane_change(pane, info["digest"])
    # and back: the soft-tissue picture returns exactly, so the change came from the window/level preset
    viewer.wl_preset("soft-tissue")
    for pane, info in before.items():
        viewer.wait_pane_digest(pane, info["digest"])


def test_scrolling_a_slider_moves_the_crosshairs_and_ends_on_the_full_quality_frame(viewer: ViewerPage):
    viewer.load_and_finish(TINY, "stream-dicom")
    panes = ("axial", "sagittal", "coronal")
    for pane in panes:
        viewer.wait_pane_content(pane)
    before = {pane: viewer.wait_pane_stable(pane) for pane in panes}
    start = viewer.tid("slice-axial").inner_text()
    viewer.page.locator('[data-testid="slider-axial"] .v-slider-thumb').focus()
    for _ in range(5):
        viewer.page.keyboard.press("ArrowRight")
    expect(viewer.tid("slice-axial")).not_to_have_text(start)
    for pane, info in before.items():  # the axial slice, then the other panes' crosshairs when the steps stop
        viewer.wait_pane_change(pane, info["digest"])
    for _ in range(5):
        viewer.page.keyboard.press("ArrowLeft")
    expect(viewer.tid("slice-axial")).to_have_text(start)
    # the very pictures of before: the last frames after scrolling are full quality (not the interactive JPEG)
    for pane, info in before.items():
        viewer.wait_pane_digest(pane, info["digest"])


def test_poc2_stepper_never_shows_decompressing(viewer: ViewerPage):
    viewer.select_ct(TINY)
    viewer.choose_mode("stream-dicom")
    viewer.watch_steps()
    viewer.load()
    viewer.wait_state("finished")
    seen = viewer.seen_steps()
    assert "step-downloading" in seen and "step-dicom loading" in seen
    assert "step-decompressing" not in seen
    expect(viewer.tid("load-stepper")).not_to_contain_text("decompressing")
    # Batch does have it
    viewer.choose_mode("batch")
    expect(viewer.tid("step-decompressing")).to_be_visible(timeout=LONG)


def test_cancel_mid_load_then_the_next_load_finishes(viewer: ViewerPage):
    runs_before = viewer.result_rows().count()
    viewer.select_ct("slow-ct")
    viewer.select_network("4G")
    viewer.choose_mode("stream-dicom")
    viewer.load()
    viewer.wait_state("downloading", "ready", "dicom loading")
    viewer.cancel()
    assert viewer.wait_state("cancelled", "finished") == "cancelled"
    expect(viewer.result_rows()).to_have_count(runs_before)
    viewer.load_and_finish(TINY, "stream-dicom")
    expect(viewer.result_rows()).to_have_count(runs_before + 1, timeout=LONG)


def test_no_css_transition_or_animation_runs_while_a_load_updates_the_page(viewer: ViewerPage):
    """The browser shares the CPUs with the load: the progress bar, sliders and buttons change without animating."""
    viewer.select_ct("slow-ct")
    viewer.select_network("4G")
    viewer.choose_mode("stream-dicom")
    viewer.load()
    viewer.wait_state("downloading", "ready", "dicom loading")
    viewer.page.wait_for_function("() => window.trame.state.get('percent') > 0", timeout=LONG)
    running = viewer.page.evaluate(
        "() => document.getAnimations().map(a => a.animationName || a.transitionProperty || 'animation')")
    viewer.cancel()
    assert viewer.wait_state("cancelled", "finished") in ("cancelled", "finished")
    assert running == []


def test_broken_ct_shows_the_error_then_the_next_load_finishes(viewer: ViewerPage):
    viewer.select_ct("broken-ct")
    viewer.choose_mode("stream-dicom")
    viewer.load()
    viewer.wait_state("error")
    expect(viewer.tid("error-message")).to_be_visible()
    assert len(viewer.tid("error-message").inner_text().strip()) > len("Error")
    viewer.load_and_finish(TINY, "batch")
    expect(viewer.tid("error-message")).to_have_count(0)


def test_korean_switch_changes_the_labels(viewer: ViewerPage):
    expect(viewer.tid("load-button")).to_contain_text("Load")
    viewer.select_language("한국어")
    expect(viewer.tid("load-button")).to_contain_text("불러오기", timeout=LONG)
    expect(viewer.tid("cancel-button")).to_contain_text("취소")
    expect(viewer.tid("title-axial")).to_have_text("축상면")
    expect(viewer.tid("mode-batch")).to_contain_text("일괄")
    viewer.page.screenshot(path="/tmp/webviewer-korean.png", full_page=True)
    viewer.select_language("English")
    expect(viewer.tid("load-button")).to_contain_text("Load", timeout=LONG)


def test_compare_adds_a_row_per_mode_and_exports(viewer: ViewerPage):
    runs_before = viewer.result_rows().count()
    viewer.select_ct(TINY)
    viewer.select_network("Unlimited")
    viewer.tid("compare-runs").locator("input").fill("1")
    serial = int(viewer.tid("load-serial").text_content() or 0)
    viewer.tid("compare-button").click()
    expect(viewer.tid("load-serial")).to_have_text(str(serial + 1), timeout=LONG)
    expect(viewer.result_rows()).to_have_count(runs_before + 3, timeout=LONG)
    expect(viewer.tid("load-button")).to_be_enabled(timeout=LONG)
    expect(viewer.tid("summary-row")).to_have_count(3)
    with viewer.page.expect_download() as info:
        viewer.tid("export-csv").click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    assert text.startswith("run,mode,requested_mode,ct,network")
    assert len(text.strip().splitlines()) == runs_before + 3 + 1
    with viewer.page.expect_download() as info:
        viewer.tid("export-json").click()
    assert '"summary"' in Path(info.value.path()).read_text(encoding="utf-8")
