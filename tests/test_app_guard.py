"""The page cannot stop the server or push bad values into the state (issue 13), without a browser."""

from __future__ import annotations

import uuid

import pytest
from app_helpers import FakeCatalog, FakeEngine, FakeEntry, FakeRegistry, FakeRenderer
from trame.app import get_server

from webviewer.app.catalog import CatalogSource
from webviewer.app.core import WebViewerApp, add_arguments, describe_timeout
from webviewer.app.guard import guard_rpcs
from webviewer.app.validate import guard_state_updates


class Options:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


@pytest.fixture
def app():
    server = get_server(f"test-guard-{uuid.uuid4().hex}", client_type="vue3")
    catalog = FakeCatalog([FakeEntry("sample-tiny", "Tiny", 8)])
    source = CatalogSource(catalog=catalog, api_url="http://127.0.0.1:9")
    engine = FakeEngine(8)
    a = WebViewerApp(server, catalog_source=source, renderer=FakeRenderer(), registry=FakeRegistry(),
                     load_fn=engine, options_factory=Options, memory_poll_s=0)
    a.engine = engine
    a.state.ready()
    return a


class FakeProtocol:
    def __init__(self, state):
        self.state = state
        self.server = type("S", (), {"state": state})()
        self.forced: list[tuple] = []

    def update_state(self, changes):
        with self.state:
            for c in changes:
                self.state[c["key"]] = c["value"]

    def force_push_state(self, *keys):
        self.forced.append(keys)

    def exit(self):
        raise AssertionError("exit must not be reachable")


class FakeHandler:
    def __init__(self, protocol):
        self.functionMap = {
            "application.exit": (protocol, FakeProtocol.exit),
            "application.exit.later": (protocol, FakeProtocol.exit),
            "trame.state.update": (protocol, FakeProtocol.update_state),
            "trame.lifecycle.update": (protocol, lambda p, name: p.forced.append(("lifecycle", name))),
            "trame.force.push": (protocol, FakeProtocol.force_push_state),
        }

    def call(self, name, *args):
        obj, func = self.functionMap[name]
        return func(obj, *args)


class FakeWslinkServer:
    def __init__(self, protocol):
        self._ws_handlers = [FakeHandler(protocol)]


def test_exit_rpcs_are_removed_and_life_cycle_limited(app):
    proto = FakeProtocol(app.state)
    ws = FakeWslinkServer(proto)
    assert sorted(guard_rpcs(ws)) == ["application.exit", "application.exit.later"]
    handler = ws._ws_handlers[0]
    assert "application.exit" not in handler.functionMap
    handler.call("trame.lifecycle.update", "server_ready")  # would re-run on_server_ready
    handler.call("trame.lifecycle.update", ["x"])
    assert proto.forced == []
    handler.call("trame.lifecycle.update", "client_connected")
    assert proto.forced == [("lifecycle", "client_connected")]
    handler.call("trame.force.push", "no_such_key", ["x"])  # would raise KeyError in trame
    handler.call("trame.force.push", "mode", "no_such_key")
    assert proto.forced[1:] == [("mode",)]


@pytest.mark.parametrize(("key", "value"), [
    ("slice_axial", -5), ("slice_axial", "abc"), ("slice_axial", 1e9), ("slice_axial", float("nan")),
    ("slice_axial", True), ("slice_axial", "١"), ("compare_runs", 100000), ("compare_runs", 0),
    ("mode", "rm -rf"), ("network", ["4g"]), ("lang", "xx"), ("wl_preset", None), ("vr_preset", "x" * 10_000),
    ("ct_id", "../../etc/passwd"), ("busy", False), ("runs", "garbage"), ("t", {}),
])
def test_hostile_state_values_are_reset_with_a_message(app, key, value):
    proto = FakeProtocol(app.state)
    ws = FakeWslinkServer(proto)
    guard_state_updates(ws, app.validator)
    before = app.state[key]
    ws._ws_handlers[0].call("trame.state.update", [{"key": key, "value": value}])
    assert app.state[key] == before
    assert key in app.state.notice and "invalid value" in app.state.notice
    if key in app.validator.rules:
        assert proto.forced == [(key,)]  # the page gets the server's value back


def test_good_values_pass_normalised_and_bad_ones_alone_are_dropped(app):
    with app.state:
        app.state.count_axial = 10
    proto = FakeProtocol(app.state)
    ws = FakeWslinkServer(proto)
    guard_state_updates(ws, app.validator)
    ws._ws_handlers[0].call("trame.state.update", [
        {"key": "slice_axial", "value": "7"}, {"key": "mode", "value": "batch"},
        {"key": "compare_runs", "value": 3.0}, {"key": "slice_coronal", "value": 99}, "junk",
    ])
    assert (app.state.slice_axial, app.state.mode, app.state.compare_runs) == (7, "batch", 3)
    assert app.state.slice_coronal == 0
    assert "slice_coronal" in app.state.notice
    ws._ws_handlers[0].call("trame.state.update", "not a list")  # nothing raises


async def test_compare_with_absurd_runs_is_refused_with_a_message(app):
    await app.refresh_catalog()
    app.ctrl.compare("sample-tiny", "unlimited", 100000)
    assert app.loader.task is None and app.engine.calls == []
    assert "1 to 50" in app.state.notice
    app.ctrl.load("sample-tiny", "batch", "unlimited", "extra", junk=1)  # extra arguments do not raise
    await app.loader.task
    assert app.state.load_state == "finished"


def test_idle_timeout_is_off_by_default_and_explicit_values_work():
    cli = get_server(f"test-cli-{uuid.uuid4().hex}", client_type="vue3").cli
    add_arguments(cli)
    assert cli.parse_known_args([])[0].timeout == 0
    assert cli.parse_known_args(["--timeout", "7"])[0].timeout == 7
    assert cli.parse_known_args([])[0].host == "127.0.0.1"
    assert "runs until stopped" in describe_timeout(0)
    assert "7 s" in describe_timeout(7)
