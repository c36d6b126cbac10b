"""Numeric options of every entry point: a bad value exits with code 2 and says which option and what was wrong."""

from __future__ import annotations

import argparse
import uuid

import pytest

from webviewer import argtypes
from webviewer.app.core import add_arguments, check_server_numbers
from webviewer.cli import api, bench, demo, load
from webviewer.deploy import docker


def app_parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="webviewer")
    add_arguments(parser)
    return parser.parse_args(argv)


PARSERS = {
    "webviewer": app_parse,
    "webviewer-load": lambda argv: load.build_parser().parse_args(["ct.zip", *argv]),
    "webviewer-bench": bench.parse_args,
    "webviewer-api": api.main,
    "webviewer-demo": lambda argv: demo.build_parser().parse_args(argv),
    "docker": docker.main,
}

BAD = [
    ("webviewer", "--progressive-interval-s", "-1", "must be 0 or above, got '-1'"),
    ("webviewer", "--progressive-interval-s", "soon", "expected a number, got 'soon'"),
    ("webviewer", "--progressive-interval-s", "nan", "expected a finite number, got 'nan'"),
    ("webviewer", "--progressive-interval-s", "inf", "expected a finite number, got 'inf'"),
    ("webviewer-load", "--connect-timeout", "0", "must be above 0, got '0'"),
    ("webviewer-load", "--stall-timeout", "-30", "must be above 0, got '-30'"),
    ("webviewer-load", "--expected-slices", "0", "must be at least 1, got '0'"),
    ("webviewer-load", "--expected-slices", "2.5", "expected a whole number, got '2.5'"),
    ("webviewer-load", "--inflate-workers", "-1", "must be 0 or above, got '-1'"),
    ("webviewer-load", "--inflate-workers", "100000", f"must be at most {argtypes.MAX_INFLATE_WORKERS}"),
    ("webviewer-bench", "--runs", "0", "must be at least 1, got '0'"),
    ("webviewer-bench", "--calibration-runs", "-2", "must be at least 1, got '-2'"),
    ("webviewer-bench", "--warmup", "-1", "must be 0 or above, got '-1'"),
    ("webviewer-bench", "--latency", "-5", "must be 0 or above, got '-5'"),
    ("webviewer-bench", "--inflate-workers", "-3", "must be 0 or above, got '-3'"),
    ("webviewer-api", "--port", "-1", "must be 0 or above, got '-1'"),
    ("webviewer-api", "--port", "70000", "a TCP port is 0 to 65535, got '70000'"),
    ("webviewer-demo", "--port", "0", "a TCP port is 1 to 65535, got '0'"),
    ("webviewer-demo", "--sessions", "0", "must be at least 1, got '0'"),
    ("webviewer-demo", "--idle-timeout", "-10", "must be at least 1, got '-10'"),
    ("docker", "--sessions", "-4", "must be at least 1, got '-4'"),
    ("docker", "--idle-timeout", "0", "must be at least 1, got '0'"),
]


@pytest.mark.parametrize("command, option, value, message", BAD, ids=[f"{c} {o} {v}" for c, o, v, _ in BAD])
def test_a_bad_number_exits_2_and_says_what_was_wrong(command, option, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        PARSERS[command]([f"{option}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {message}" in err, err


def test_good_numbers_parse_to_their_values():
    assert app_parse(["--progressive-interval-s", "0"]).progressive_interval_s == 0.0
    assert app_parse(["--progressive-interval-s", "0.25"]).progressive_interval_s == 0.25
    args = load.build_parser().parse_args(["ct.zip", "--connect-timeout", "2.5", "--expected-slices", "380",
                                           "--inflate-workers", "0"])
    assert (args.connect_timeout, args.expected_slices, args.inflate_workers) == (2.5, 380, 0)
    args = bench.parse_args(["--runs", "3", "--warmup", "0", "--latency", "0", "--inflate-workers", "4"])
    assert (args.runs, args.warmup, args.latency, args.inflate_workers) == (3, 0, 0.0, 4)
    assert api.build_parser().parse_args(["--port", "0"]).port == 0
    args = demo.build_parser().parse_args(["--port", "65535", "--sessions", "2", "--idle-timeout", "30"])
    assert (args.port, args.sessions, args.idle_timeout) == (65535, 2, 30)


@pytest.mark.parametrize("option, value, message", [
    ("--port", "-1", "argument --port: a TCP port is 0 to 65535, got '-1'"),
    ("--port", "65536", "argument --port: a TCP port is 0 to 65535, got '65536'"),
    ("--timeout", "-300", "argument --timeout: must be 0 or above, got '-300'"),
])
def test_trames_own_port_and_timeout_are_checked_too(option, value, message, capsys):
    from trame.app import get_server

    cli = get_server(f"test-cli-numbers-{uuid.uuid4().hex}", client_type="vue3").cli
    add_arguments(cli)
    check_server_numbers(cli, cli.parse_args(["--port", "8080"]))  # the defaults and a good port pass
    with pytest.raises(SystemExit) as exc:
        check_server_numbers(cli, cli.parse_args([option, value]))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
