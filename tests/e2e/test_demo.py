"""End-to-end: `webviewer-demo` with real Apache, wslink's launcher and one session process per visitor."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from demo_helpers import CT_SLOW, TINY, port_is_free, start_demo, start_session, stop_demo, visit, wait_exited
from playwright.sync_api import expect
from viewer_page import LONG

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def demo(tmp_path, e2e_data, request):
    """A demo with the sessions and idle timeout the test asks for (``@pytest.mark.demo(sessions=..)``)."""
    marker = request.node.get_closest_marker("demo")
    kwargs = {"sessions": 2, "idle_timeout": 60, **(marker.kwargs if marker else {})}
    d = start_demo(tmp_path, e2e_data, **kwargs)
    yield d
    for v in d.visitors:
        v.context.close()
    assert stop_demo(d) == 0, d.log()[-3000:]


def mode_label(viewer, mode: str) -> str:
    return viewer.tid(f"mode-{mode}").locator(".font-weight-bold").inner_text()


def test_two_visitors_get_their_own_sessions_and_see_only_their_own_loads(browser, demo):
    a, b = visit(browser, demo), visit(browser, demo)
    assert a.session["id"] != b.session["id"]
    assert demo.session_process(a.session["secret"]).pid != demo.session_process(b.session["secret"]).pid
    a.viewer.load_and_finish(TINY, "stream-dicom")
    # B did nothing: nothing of A's load reached B's page
    assert b.viewer.state() == "idle"
    expect(b.viewer.tid("load-serial")).to_have_text("0")
    expect(b.viewer.result_rows()).to_have_count(0)
    b.viewer.load_and_finish(TINY, "batch")
    for visitor, mode, other in ((a, "stream-dicom", "batch"), (b, "batch", "stream-dicom")):
        rows = visitor.viewer.result_rows()
        expect(rows).to_have_count(1, timeout=LONG)
        expect(rows.first).to_contain_text(mode_label(visitor.viewer, mode))
        expect(rows.first).not_to_contain_text(mode_label(visitor.viewer, other))
    # B's choices did not move A's controls
    expect(a.viewer.tid("mode-stream-dicom")).to_have_class(re.compile(r"v-btn--active"))


@pytest.mark.demo(sessions=2, idle_timeout=15)
def test_a_third_visitor_gets_the_sessions_full_page_then_a_clean_session_once_one_leaves(browser, demo):
    a, b = visit(browser, demo), visit(browser, demo)
    a.viewer.load_and_finish(TINY, "stream-dicom")
    c = visit(browser, demo)
    assert c.session is None
    full = c.viewer.tid("sessions-full")
    expect(full).to_be_visible(timeout=LONG)
    expect(full).to_contain_text("All 2 sessions")
    expect(c.viewer.tid("sessions-retry")).to_be_visible()
    # the refused visitor disturbed nobody
    expect(a.viewer.result_rows()).to_have_count(1)
    b.viewer.load_and_finish(TINY, "batch")
    # A leaves; its session is reaped after the idle timeout
    a_process = demo.session_process(a.session["secret"])
    a.context.close()
    demo.visitors.remove(a)
    assert wait_exited(a_process, timeout_s=120), "the idle session was not reaped"
    start_session(c, c.viewer.tid("sessions-retry").click)
    assert c.session is not None
    assert c.viewer.state() == "idle"
    expect(c.viewer.result_rows()).to_have_count(0)
    expect(b.viewer.result_rows()).to_have_count(1)


def test_killing_one_session_mid_load_ends_only_that_visitor(browser, demo):
    a, b = visit(browser, demo), visit(browser, demo)
    for v in (a, b):
        v.viewer.select_ct(CT_SLOW)
        v.viewer.select_network("4G")
        v.viewer.choose_mode("stream-dicom")
    a.viewer.load()
    b.viewer.load()
    a.viewer.wait_state("downloading", "ready", "dicom loading")
    demo.session_process(a.session["secret"]).kill()  # as the OOM killer would
    ended = a.viewer.tid("session-ended")
    expect(ended).to_be_visible(timeout=LONG)
    expect(ended).to_contain_text("Reload")
    b.viewer.wait_state("finished")
    expect(b.viewer.result_rows()).to_have_count(1, timeout=LONG)
    # the dead session's slot is free again: a new visitor gets a session
    c = visit(browser, demo)
    assert c.session is not None


def test_sigterm_stops_every_process_and_frees_every_port(browser, tmp_path, e2e_data):
    demo = start_demo(tmp_path, e2e_data, sessions=1, idle_timeout=60)
    try:
        visitor = visit(browser, demo)
        procs = demo.tree()
        ports = demo.listening_ports()
        assert demo.port in ports and len(ports) >= 4  # front door, launcher, API, the session
        names = " ".join(" ".join(p.cmdline()) for p in procs)
        assert "apache2" in names and "webviewer.deploy.launcher" in names and "webviewer-api" in names
        assert visitor.session["secret"] in names
        # Apache's access log has the session page, but not the secret in its query
        conf = next(a for p in procs for a in p.cmdline() if a.endswith("httpd.conf"))
        access = (Path(conf).parent / "access.log").read_text()
        assert "/session.html" in access and visitor.session["secret"] not in access
    finally:
        code = stop_demo(demo)
    assert code == 0, demo.log()[-3000:]
    _, alive = psutil.wait_procs(procs, timeout=5)
    assert not alive, [p.pid for p in alive]
    assert all(port_is_free(p) for p in ports), sorted(p for p in ports if not port_is_free(p))
    visitor.context.close()


@pytest.mark.demo(sessions=1)
def test_hostile_launch_requests_are_refused_and_take_no_session(browser, demo):
    bodies = [b'"application"', b"not json", b'["webviewer"]', b'{"application": "other"}',
              b'{"application": "webviewer", "secret": "chosen-by-the-page"}', b"x" * 10_000]
    for body in bodies:
        req = urllib.request.Request(demo.url + "launcher/", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 400, body
        assert "launch request" in json.loads(err.value.read())["error"]
    # the only session of the pool is still there for a real visitor
    visitor = visit(browser, demo)
    assert visitor.session is not None and len(visitor.session["secret"]) >= 20
