"""webviewer-load in a subprocess: --json fields, --output .npz, summary, exit codes 2 and 1, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.dicom_helpers import independent_hu
from tests.pipeline_helpers import make_zip, synthetic_files

ROOT = Path(__file__).resolve().parents[1]
JSON_KEYS = {
    "mode", "content_id", "slices", "dimensions", "spacing", "origin", "direction", "dtype", "frames", "sop_class",
    "timings", "bytes", "memory", "warnings", "skipped_files", "fallback",
}  # fmt: skip


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webviewer.cli.load", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ct_zip(tmp_path_factory) -> tuple[Path, list]:
    tmp = tmp_path_factory.mktemp("cli")
    members = synthetic_files(tmp / "s", slices=10, rows=24, columns=20)
    members.append(("notes.txt", b"not dicom"))
    path = tmp / "ct.zip"
    path.write_bytes(make_zip(members))
    return path, members


@pytest.mark.parametrize("mode", ["batch", "stream-files", "stream-dicom"])
def test_json_output(ct_zip, mode):
    path, members = ct_zip
    out = run_cli(str(path), "--mode", mode, "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert set(j) == JSON_KEYS
    assert j["mode"] == mode and j["slices"] == 10 and j["dimensions"] == [20, 24, 10]
    assert j["dtype"] == "int16" and len(j["direction"]) == 9 and len(j["spacing"]) == 3
    assert set(j["timings"]) == {"total_s", "first_slice_s", "states"}
    assert j["timings"]["total_s"] > 0 and "downloading" in j["timings"]["states"]
    assert set(j["bytes"]) == {"downloaded", "dicom", "at_first_slice"} and j["bytes"]["downloaded"] == path.stat().st_size
    assert 0 < j["bytes"]["at_first_slice"] <= j["bytes"]["downloaded"]
    assert set(j["memory"]["components_peak_bytes"]) == {"zip", "files", "datasets", "volume"}
    assert j["memory"]["volume_bytes"] == 20 * 24 * 10 * 2
    assert j["skipped_files"] == ["notes.txt"]
    assert [w["code"] for w in j["warnings"]] == ["skipped_files"]
    assert set(j["warnings"][0]) == {"code", "message"}
    assert j["fallback"] is None
    assert out.stderr == ""


def test_output_npz_and_summary(ct_zip, tmp_path):
    path, members = ct_zip
    npz = tmp_path / "out" / "vol.npz"
    out = run_cli(str(path), "--mode", "stream-dicom", "--output", str(npz))
    assert out.returncode == 0, out.stderr
    assert "CT 4-pane (10 slices)" in out.stdout and "wrote" in out.stdout
    assert "[skipped_files]" in out.stdout
    with np.load(npz) as f:
        assert set(f.files) == {"hu", "spacing", "origin", "direction"}
        hu, spacing, origin, direction = f["hu"], f["spacing"], f["origin"], f["direction"]
    assert hu.shape == (10, 24, 20) and hu.dtype == np.int16
    ref, _ = independent_hu([m for m in members if m[0] != "notes.txt"])
    assert np.array_equal(hu.astype(np.float64), ref)
    assert spacing.shape == (3,) and origin.shape == (3,) and direction.shape == (3, 3)
    assert np.allclose(direction, np.eye(3))
    assert spacing[2] == pytest.approx(1.25)


def test_bad_input_exits_2(tmp_path):
    html = tmp_path / "page.zip"
    html.write_bytes(b"<html><body>error</body></html>")
    for src in (str(html), str(tmp_path / "missing.zip")):
        out = run_cli(src, "--json")
        assert out.returncode == 2, out.stderr
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("webviewer-load: error:")
        assert "Traceback" not in out.stderr
    trunc = tmp_path / "t.zip"
    trunc.write_bytes(make_zip(synthetic_files(tmp_path / "s", slices=4))[:3000])
    out = run_cli(str(trunc), "--mode", "batch", "--quiet")
    assert out.returncode == 2 and "truncated" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_server_exits_1():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_cli(f"http://127.0.0.1:{port}/ct.zip", "--connect-timeout", "2", "--quiet")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Could not connect" in lines[0]


def test_help_and_bad_mode():
    out = run_cli("--help")
    assert out.returncode == 0 and "--mode" in out.stdout and "--stall-timeout" in out.stdout
    out = run_cli("x.zip", "--mode", "fast")
    assert out.returncode == 2  # argparse usage error


def test_credentials_from_flags_and_environment(monkeypatch):
    from webviewer.cli.load import build_parser, credentials
    from webviewer.errors import WebViewerError

    monkeypatch.delenv("WEBVIEWER_USER", raising=False)
    monkeypatch.delenv("WEBVIEWER_TOKEN", raising=False)
    monkeypatch.setenv("WEBVIEWER_PASSWORD", "from-env")
    p = build_parser()
    assert credentials(p.parse_args(["u", "--user", "bob"])) == (("bob", "from-env"), None)
    assert credentials(p.parse_args(["u", "--user", "bob", "--password", "pw"])) == (("bob", "pw"), None)
    assert credentials(p.parse_args(["u", "--token", "abc"])) == (None, {"Authorization": "Bearer abc"})
    assert credentials(p.parse_args(["u"])) == (None, None)
    with pytest.raises(WebViewerError):
        credentials(p.parse_args(["u", "--user", "bob", "--token", "abc"]))


@pytest.mark.parametrize("output", ["a-file.txt/vol.npz", "is-a-dir"])
def test_unwritable_output_exits_2_with_one_line(ct_zip, tmp_path, output):
    (tmp_path / "is-a-dir").mkdir()
    (tmp_path / "a-file.txt").write_text("not a folder")
    proc = run_cli(str(ct_zip[0]), "--quiet", "--output", str(tmp_path / output))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("workers", ["0", "1", "3"])
def test_inflate_workers_give_the_same_volume(ct_zip, tmp_path, workers):
    path, members = ct_zip
    out_file = tmp_path / f"v{workers}.npz"
    out = run_cli(str(path), "--mode", "stream-dicom", "--inflate-workers", workers, "--output", str(out_file),
                  "--quiet")
    assert out.returncode == 0, out.stderr
    expected, _ = independent_hu([m for m in members if m[0] != "notes.txt"])
    assert np.array_equal(np.load(out_file)["hu"], expected)
