"""A hostile visitor in the browser console: the server refuses to stop and resets forged state (issue 13)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect
from viewer_page import LONG, ViewerPage

pytestmark = pytest.mark.e2e

CALL_JS = """
async ([name, args]) => {
  try {
    const r = await window.trame.client.getConnection().getSession().call(name, args);
    return {ok: true, result: JSON.stringify(r ?? null)};
  } catch (e) {
    return {ok: false, error: JSON.stringify(e)};
  }
}
"""


def test_the_exit_rpc_is_refused_and_the_server_keeps_serving(viewer: ViewerPage, viewer_url: str):
    for name in ("application.exit", "application.exit.later"):
        answer = viewer.page.evaluate(CALL_JS, [name, []])
        assert answer["ok"] is False, answer
        assert "Unregistered method" in answer["error"]
    refused = viewer.page.evaluate(CALL_JS, ["trame.lifecycle.update", ["server_ready"]])
    assert refused == {"ok": True, "result": "null"}
    with urllib.request.urlopen(f"{viewer_url}/api/cts", timeout=30) as resp:
        assert resp.status == 200 and json.loads(resp.read())
    second = ViewerPage(viewer.page.context.new_page(), viewer_url)
    second.open()  # another visitor still gets the app


def test_forged_slice_and_runs_are_reset_with_a_message(viewer: ViewerPage):
    viewer.page.evaluate("() => window.trame.state.set('slice_axial', 'abc')")
    expect(viewer.tid("notice")).to_contain_text("slice_axial", timeout=LONG)
    expect(viewer.tid("slice-axial")).not_to_contain_text("abc", timeout=LONG)
    before = viewer.page.evaluate("() => window.trame.state.get('compare_runs')")
    assert isinstance(before, int) and 1 <= before <= 50
    viewer.page.evaluate("() => window.trame.state.set('compare_runs', 100000)")
    expect(viewer.tid("notice")).to_contain_text("compare_runs", timeout=LONG)
    # the server sends its value back to the page (the shared server's, which another test may have set)
    viewer.page.wait_for_function(f"() => window.trame.state.get('compare_runs') === {before}", timeout=LONG)
