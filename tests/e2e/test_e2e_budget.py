"""End-to-end: twenty loads of the tiny sample in one browser session under a small content budget."""

from __future__ import annotations

import re

import pytest
from conftest import serve_viewer
from playwright.sync_api import expect
from viewer_page import LONG, ViewerPage

pytestmark = pytest.mark.e2e

TINY = "Sample chest CT (tiny)"
MODES = ("batch", "stream-files", "stream-dicom")
#: the tiny sample: 0.39 MB of volume + 0.79 MB of render copies on screen. Two of them fit in 1.8 MB, but not
#: two and the next load: every load first unloads the oldest content not on screen.
BUDGET_MB = 1.8
LINE = re.compile(r"accounted (\d+) MB of (\d+) MB RSS")


@pytest.fixture(scope="module")
def budget_url(e2e_data):
    yield from serve_viewer(e2e_data, "--content-budget-mb", str(BUDGET_MB))


@pytest.fixture
def page(browser, budget_url):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    vp = ViewerPage(context.new_page(), budget_url)
    vp.open()
    yield vp
    context.close()


def memory(vp: ViewerPage) -> tuple[int, int]:
    """(accounted MB, RSS MB) from the budget line under the server memory."""
    expect(vp.tid("memory-budget")).to_contain_text("RSS", timeout=LONG)
    match = LINE.search(vp.tid("memory-budget").inner_text())
    assert match, vp.tid("memory-budget").inner_text()
    return int(match.group(1)), int(match.group(2))


def listed(vp: ViewerPage) -> list[str]:
    return [row.locator("td").first.inner_text().strip() for row in vp.tid("contents-row").all()]


def idle_session(vp: ViewerPage) -> int:
    """Load once, unload everything: the RSS of a session that holds nothing (engine imported, renderer warm)."""
    vp.load_and_finish(TINY, "stream-dicom")
    for content_id in listed(vp):
        vp.tid(f"unload-{content_id}").click()
    expect(vp.tid("contents-row")).to_have_count(0, timeout=LONG)
    accounted, rss = memory(vp)
    assert accounted == rss  # nothing held: the baseline was measured again
    return rss


def test_twenty_loads_stay_within_the_budget_and_say_what_was_unloaded(page: ViewerPage):
    idle_rss = idle_session(page)
    newest: list[str] = []
    for i in range(20):
        page.load_and_finish(TINY, MODES[i % 3])
        expect(page.tid("contents-row")).to_have_count(min(i + 1, 2), timeout=LONG)
        ids = listed(page)
        assert ids[-1] not in newest  # every load is a new content, and it is listed last
        if newest:
            assert ids[0] == newest[-1]  # the content that was on screen during the load was kept
        newest.append(ids[-1])
    gone = page.page.locator('[data-testid^="unloaded-"]')
    expect(gone).to_have_count(10)  # the list keeps the last ten
    reasons = {el.get_attribute("data-reason") for el in gone.all()}
    assert reasons == {"budget"}
    gone_ids = [el.get_attribute("data-testid").removeprefix("unloaded-") for el in gone.all()]
    assert gone_ids == newest[-3:-13:-1] and not set(gone_ids) & set(listed(page))
    expect(page.tid("contents-unloaded")).to_contain_text(f"within the {BUDGET_MB:g} MB budget")
    accounted, rss = memory(page)
    assert rss <= (idle_rss + BUDGET_MB) * 1.10, (rss, idle_rss)
    assert abs(accounted - rss) <= 0.10 * rss, (accounted, rss)


def test_a_ct_over_the_budget_is_refused_and_the_content_on_screen_stays(page: ViewerPage):
    page.load_and_finish(TINY, "stream-dicom")
    before = listed(page)
    digest = page.wait_pane_stable("axial")["digest"]
    page.select_ct("slow-ct")  # 512x512x40: 21 MB of volume
    page.load()
    page.wait_state("error")
    expect(page.tid("error-message")).to_contain_text(f"budget of {BUDGET_MB:g} MB")
    expect(page.tid("error-message")).to_contain_text("--content-budget-mb")
    assert listed(page) == before
    assert page.wait_pane_stable("axial")["digest"] == digest
