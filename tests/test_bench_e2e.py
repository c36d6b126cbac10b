"""One short end-to-end run of the real `webviewer-bench` CLI: tiny sample, 1 run per mode, unlimited."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from webviewer.bench.stats import MODES

RUN_FIELDS = {"mode", "run", "total_s", "first_slice_s", "peak_above_baseline_bytes", "volume_bytes",
              "components_peak_bytes", "states"}
SUMMARY_FIELDS = {"mean_total_s", "median_total_s", "mean_peak_above_baseline_bytes",
                  "median_peak_above_baseline_bytes", "improvement_time_pct", "improvement_memory_pct"}


@pytest.mark.slow
def test_bench_tiny_sample_end_to_end(tmp_path):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "webviewer.cli.bench", "--ct", "sample-tiny", "--runs", "1", "--rate", "unlimited",
         "--sample-dir", str(tmp_path / "data"), "--json", str(out_json), "--markdown", str(out_md), "--verify",
         "--quiet"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out_json.read_text())

    assert result["network"] == {"rate_bytes_per_s": None, "latency_ms": 0.0}
    assert result["network_floor_s"] is None
    assert result["archive_bytes"] > 0 and result["dicom_bytes"] > 0
    assert [(r["mode"], r["run"]) for r in result["runs"]] == [(m, 1) for m in MODES]
    for run in result["runs"]:
        assert set(run) >= RUN_FIELDS
        assert run["total_s"] > 0 and run["peak_above_baseline_bytes"] >= 0
        assert set(run["components_peak_bytes"]) == {"zip", "files", "datasets", "volume"}
        assert {"downloading", "dicom loading"} <= set(run["states"]), run["states"]
        assert run["fallback"] is None
    assert set(result["summary"]) == set(MODES)
    assert all(set(s) >= SUMMARY_FIELDS for s in result["summary"].values())
    assert result["summary"]["batch"]["improvement_time_pct"] == 0.0

    # the three modes produced the same volume: dimensions, dtype, bytes and a hash of voxels + geometry
    assert result["volumes_agree"] is True
    assert result["inflater"] == "zlib"
    assert set(result["inflate_alone_s"]) >= {"zlib"} and all(v > 0 for v in result["inflate_alone_s"].values())
    assert result["ratios"]["poc2_over_zlib_inflate"] is not None
    assert {tuple(r["dimensions"]) for r in result["runs"]} == {(64, 64, 48)}
    assert {r["volume_bytes"] for r in result["runs"]} == {64 * 64 * 48 * 2}
    assert len({r["volume_sha256"] for r in result["runs"]}) == 1 and result["runs"][0]["volume_sha256"]

    assert "Loading time (s)" in proc.stdout and "Targets" in proc.stdout
    md = out_md.read_text()
    assert "### Profile `unlimited`" in md and "| Run | Batch | PoC1 | PoC2 |" in md and "29.1" in md
