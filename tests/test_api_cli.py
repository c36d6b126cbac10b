"""``webviewer-api``: options, catalog building, sample generation and a real server process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from webviewer.api.samples import SeriesSpec, write_series
from webviewer.cli import api as cli


def test_help_documents_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ["--host", "--port", "--data-dir", "--samples", "--rate", "--latency", "--generate-samples"]:
        assert option in out
    assert "127.0.0.1" in out and "8081" in out and "100mbit" in out


@pytest.mark.parametrize("argv", [["--rate", "fast"], ["--latency", "-3"], ["--samples", "huge"]])
def test_bad_options_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_defaults() -> None:
    args = cli.build_parser().parse_args([])
    assert (args.host, args.port, args.rate, args.latency) == ("127.0.0.1", 8081, "unlimited", "0")


def test_build_catalog_data_dir_and_samples(tmp_path: Path) -> None:
    write_series(tmp_path / "data" / "one", SeriesSpec(rows=16, columns=16, slices=3))
    parser = cli.build_parser()
    args = parser.parse_args(["--data-dir", str(tmp_path / "data"), "--sample-dir", str(tmp_path / "s")])
    assert [e.id for e in cli.build_catalog(args).entries()] == ["one"]
    args = parser.parse_args(["--data-dir", str(tmp_path / "data"), "--sample-dir", str(tmp_path / "s"),
                              "--samples", "tiny"])
    assert [e.id for e in cli.build_catalog(args).entries()] == ["one", "sample-tiny"]
    assert (tmp_path / "s" / "cache" / "catalog.json").is_file()


def test_generate_samples(tmp_path: Path, capsys) -> None:
    assert cli.main(["--generate-samples", "--samples", "tiny", "--sample-dir", str(tmp_path)]) == 0
    zpath = tmp_path / "samples" / "sample-tiny.zip"
    assert capsys.readouterr().out.strip() == str(zpath)
    assert json.loads(zpath.with_suffix(".json").read_text())["slices"] == 48


def test_server_process(tmp_path: Path) -> None:
    write_series(tmp_path / "data" / "series", SeriesSpec(rows=16, columns=16, slices=4))
    proc = subprocess.Popen(
        [sys.executable, "-m", "webviewer.cli.api", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--sample-dir", str(tmp_path / "s"), "--rate", "40mbit", "--latency", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # "CT API on http://127.0.0.1:PORT/api/cts (Ctrl+C to stop)"
        assert line.startswith("CT API on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[3]
        with urllib.request.urlopen(url, timeout=10) as resp:
            items = json.load(resp)
        assert [(i["id"], i["slices"]) for i in items] == [("series", 4)]
        with urllib.request.urlopen(f"{url}/series/archive", timeout=10) as resp:
            body = resp.read()
            assert resp.headers["Content-Type"] == "application/zip"
        assert len(body) == items[0]["zip_bytes"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM stops it cleanly
        proc.stdout.close()
        proc.stderr.close()
