"""`webviewer-load` with Orthanc URLs: archive and DICOMweb, --user/--password, clear one-line failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from orthanc_helpers import PASSWORD, USER, free_port, orthanc  # noqa: F401 - fixture

from webviewer.cli.load import main

NAME = "slicer-cthead-64px"


@pytest.mark.parametrize("kind", ["archive", "dicomweb"])
def test_load_cli_with_credentials(orthanc, kind, tmp_path, capsys):  # noqa: F811
    url = orthanc.archive_url(NAME) if kind == "archive" else orthanc.dicomweb_url(NAME)
    out = tmp_path / "ct.npz"
    code = main([url, "--mode", "stream-dicom", "--json", "--quiet", "--user", USER, "--password", PASSWORD,
                 "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["mode"] == "stream-dicom" and result["slices"] == 93 and result["dimensions"] == [64, 64, 93]
    assert result["skipped_files"] == [] and result["fallback"] is None
    with np.load(out) as npz:
        assert npz["hu"].shape == (93, 64, 64)


def test_load_cli_password_from_environment(orthanc, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("WEBVIEWER_PASSWORD", PASSWORD)
    code = main([orthanc.archive_url(NAME), "--mode", "batch", "--json", "--quiet", "--user", USER])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["slices"] == 93


def test_load_cli_wrong_password_is_one_line_exit_2(orthanc, capsys):  # noqa: F811
    code = main([orthanc.dicomweb_url(NAME), "--quiet", "--user", USER, "--password", "nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "401" in err and "Traceback" not in err and "nope" not in err


def test_load_cli_unreachable_is_exit_1(capsys):
    code = main([f"http://127.0.0.1:{free_port()}/series/ab-cd/archive", "--quiet", "--connect-timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "running" in err


def test_load_cli_credentials_from_environment_only(orthanc, monkeypatch, capsys):  # noqa: F811
    """What `webviewer-bench --source URL` relies on: its child `webviewer-load` inherits the credentials."""
    monkeypatch.setenv("WEBVIEWER_USER", USER)
    monkeypatch.setenv("WEBVIEWER_PASSWORD", PASSWORD)
    assert main([orthanc.dicomweb_url(NAME), "--mode", "stream-files", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["slices"] == 93


@pytest.mark.parametrize("kind", ["archive", "dicomweb"])
def test_bench_source_with_credentials(orthanc, kind, tmp_path, monkeypatch, capsys):  # noqa: F811
    from webviewer.cli.bench import main as bench_main

    for variable in ("WEBVIEWER_USER", "WEBVIEWER_PASSWORD", "WEBVIEWER_TOKEN"):
        monkeypatch.delenv(variable, raising=False)  # restored after the test: the bench sets them for its loads
    url = orthanc.archive_url(NAME) if kind == "archive" else orthanc.dicomweb_url(NAME)
    out = tmp_path / "bench.json"
    code = bench_main(["--source", url, "--modes", "stream-dicom", "--runs", "1", "--warmup", "0", "--quiet",
                       "--user", USER, "--password", PASSWORD, "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert [r["mode"] for r in report["runs"]] == ["stream-dicom"]
    assert report["runs"][0]["volume_bytes"] == 93 * 64 * 64 * 2
    assert PASSWORD not in out.read_text()
