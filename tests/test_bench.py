"""Unit tests of the benchmark's arithmetic and tables on fixed inputs (nothing is run, nothing is timed)."""

from __future__ import annotations

import json

import pytest

from webviewer.bench import report, stats
from webviewer.bench.runner import is_api_archive_url, run_record, volumes_agree, with_query
from webviewer.cli import bench as cli

MB = 1_000_000


def make_run(mode: str, run: int, total: float, peak_mb: float, first: float | None = 1.0,
             downloading: float = 0.0, volume_mb: float = 100.0) -> dict:
    return {
        "mode": mode, "run": run, "total_s": total, "first_slice_s": first,
        "peak_above_baseline_bytes": int(peak_mb * MB), "volume_bytes": int(volume_mb * MB),
        "components_peak_bytes": {"zip": 50 * MB if mode == "batch" else 0, "files": 0, "datasets": 0,
                                  "volume": int(volume_mb * MB)},
        "states": {"downloading": downloading, "dicom loading": total - downloading},
        "dimensions": [512, 512, 200], "dtype": "int16", "volume_sha256": "abc",
    }


# Batch 10/12/14 s, 300/320/310 MB; PoC1 8/9/10 s; PoC2 5/6/7 s, 110/105/115 MB; volume 100 MB
RUNS = [
    make_run("batch", 1, 10.0, 300), make_run("stream-files", 1, 8.0, 250), make_run("stream-dicom", 1, 5.0, 110),
    make_run("batch", 2, 12.0, 320), make_run("stream-files", 2, 9.0, 260), make_run("stream-dicom", 2, 6.0, 105),
    make_run("batch", 3, 14.0, 310), make_run("stream-files", 3, 10.0, 270), make_run("stream-dicom", 3, 7.0, 115),
]


def test_schedule_interleaves_modes_run_by_run():
    assert stats.schedule(["batch", "stream-files", "stream-dicom"], 2) == [
        ("batch", 1), ("stream-files", 1), ("stream-dicom", 1),
        ("batch", 2), ("stream-files", 2), ("stream-dicom", 2),
    ]


def test_mean_median_skip_missing_values():
    assert stats.mean([1.0, None, 3.0]) == 2.0
    assert stats.median([5.0, 1.0, None, 3.0]) == 3.0
    assert stats.mean([None]) is None and stats.median([]) is None


def test_improvement_pct_matches_the_original_report():
    assert stats.improvement_pct(29.1, 21.8) == pytest.approx(25.086, abs=1e-3)
    assert stats.improvement_pct(618.8, 213.6) == pytest.approx(65.482, abs=1e-3)
    assert stats.improvement_pct(10.0, 12.0) == pytest.approx(-20.0)
    assert stats.improvement_pct(None, 1.0) is None and stats.improvement_pct(0.0, 1.0) is None


def test_network_floor_and_ratio():
    assert stats.network_floor_s(100 * MB, 12.5 * MB) == pytest.approx(8.0)
    assert stats.network_floor_s(100 * MB, None) is None
    assert stats.ratio(8.4, 8.0) == pytest.approx(1.05)
    assert stats.ratio(1.0, None) is None


def test_balanced_rate_makes_download_as_long_as_processing():
    run = {"total_s": 10.0, "states": {"downloading": 2.0, "ready": 0.0, "decompressing": 3.0,
                                       "dicom loading": 5.0}}
    processing = stats.batch_processing_s(run)
    assert processing == pytest.approx(8.0)
    rate = stats.balanced_rate(100 * MB, processing)
    assert rate == pytest.approx(12.5 * MB)
    assert stats.network_floor_s(100 * MB, rate) == pytest.approx(processing)
    with pytest.raises(ValueError):
        stats.balanced_rate(100 * MB, 0.0)


def test_summary_per_mode():
    summary = stats.summarize(RUNS, stats.MODES, floor_s=4.0)
    batch, poc1, poc2 = summary["batch"], summary["stream-files"], summary["stream-dicom"]
    assert batch["mean_total_s"] == pytest.approx(12.0) and batch["median_total_s"] == 12.0
    assert batch["mean_peak_above_baseline_bytes"] == pytest.approx(310 * MB)
    assert batch["median_peak_above_baseline_bytes"] == 310 * MB
    assert batch["improvement_time_pct"] == 0.0 and batch["improvement_memory_pct"] == 0.0
    assert poc1["improvement_time_pct"] == pytest.approx(25.0)
    assert poc2["improvement_time_pct"] == pytest.approx(50.0)
    assert poc2["improvement_memory_pct"] == pytest.approx((310 - 110) / 310 * 100)
    assert poc2["median_total_over_floor"] == pytest.approx(1.5)
    assert batch["median_components_peak_bytes"]["zip"] == 50 * MB
    assert poc2["median_components_peak_bytes"]["volume"] == 100 * MB
    assert poc2["runs"] == 3


def test_summary_without_batch_has_no_improvement():
    summary = stats.summarize([r for r in RUNS if r["mode"] != "batch"], ["stream-files", "stream-dicom"])
    assert list(summary) == ["stream-files", "stream-dicom"]
    assert summary["stream-dicom"]["improvement_time_pct"] is None
    assert summary["stream-dicom"]["median_total_over_floor"] is None


def test_ratios_and_targets():
    summary = stats.summarize(RUNS, stats.MODES, floor_s=5.5)
    r = stats.ratios(summary, 5.5, {"zlib": 3.0, "isal": 2.0})
    assert r["poc2_over_zlib_inflate"] == pytest.approx(2.0)
    assert stats.ratios(summary, 5.5)["poc2_over_zlib_inflate"] is None
    assert r["poc2_time_over_floor"] == pytest.approx(6.0 / 5.5)
    assert r["poc2_over_batch_time"] == pytest.approx(0.5)
    assert r["poc2_peak_over_volume"] == pytest.approx(1.1)
    assert r["batch_over_poc2_peak"] == pytest.approx(310 / 110)
    rows = stats.evaluate_targets([{"profile": "unlimited", "ratios": r}])
    by = {(row["metric"], row["profile"]): row for row in rows}
    assert by[("PoC2 ÷ Batch median time", "unlimited")]["status"] == "pass"
    assert by[("PoC2 ÷ Batch median time", "balanced")]["status"] == "n/a"
    assert by[("PoC2 median time ÷ network floor", "100mbit")]["status"] == "n/a"
    assert by[("PoC2 median peak above baseline ÷ volume bytes", "any")]["status"] == "pass"  # 1.10 <= 1.10
    assert by[("Batch ÷ PoC2 median peak above baseline", "any")]["status"] == "pass"
    assert by[("Batch ÷ PoC2 median peak above baseline", "any")]["original"] == 2.9
    assert by[("PoC2 median time ÷ zlib alone inflating the same members", "unlimited")]["status"] == "pass"  # 2.0


def test_targets_fail_and_combine_profiles():
    slow = {"profile": "100mbit", "ratios": {"poc2_time_over_floor": 1.2, "poc2_over_batch_time": 0.9,
                                             "poc2_peak_over_volume": 1.0, "batch_over_poc2_peak": 3.0}}
    fine = {"profile": "balanced", "ratios": {"poc2_time_over_floor": 1.0, "poc2_over_batch_time": 0.55,
                                              "poc2_peak_over_volume": 1.2, "batch_over_poc2_peak": 3.0}}
    rows = {(r["metric"], r["profile"]): r for r in stats.evaluate_targets([slow, fine])}
    assert rows[("PoC2 median time ÷ network floor", "100mbit")]["status"] == "fail"
    assert rows[("PoC2 median time ÷ network floor", "100mbit")]["measured"] == [("100mbit", 1.2)]
    assert rows[("PoC2 ÷ Batch median time", "balanced")]["status"] == "pass"
    # profile-free targets must hold at every profile
    assert rows[("PoC2 median peak above baseline ÷ volume bytes", "any")]["status"] == "fail"
    assert rows[("Batch ÷ PoC2 median peak above baseline", "any")]["status"] == "pass"


def result_fixture(profile: str = "100mbit", rate: float | None = 12.5 * MB) -> dict:
    return stats.build_result(profile=profile, rate_bytes_per_s=rate, latency_ms=0.0, archive_bytes=60 * MB,
                              dicom_bytes=100 * MB, runs=RUNS, modes=stats.MODES, ct={"id": "sample-seed"},
                              volumes_agree=True)


ISSUE_TOP_FIELDS = {"network", "archive_bytes", "dicom_bytes", "network_floor_s", "runs", "summary"}
ISSUE_RUN_FIELDS = {"mode", "run", "total_s", "first_slice_s", "peak_above_baseline_bytes", "volume_bytes",
                    "components_peak_bytes", "states"}
ISSUE_SUMMARY_FIELDS = {"mean_total_s", "median_total_s", "mean_peak_above_baseline_bytes",
                        "median_peak_above_baseline_bytes", "improvement_time_pct", "improvement_memory_pct"}


def test_build_result_has_the_issue_fields_and_is_json():
    result = result_fixture()
    assert set(result) >= ISSUE_TOP_FIELDS
    assert set(result["network"]) == {"rate_bytes_per_s", "latency_ms"}
    assert result["network_floor_s"] == pytest.approx(4.8)
    assert all(set(r) >= ISSUE_RUN_FIELDS for r in result["runs"])
    assert all(set(s) >= ISSUE_SUMMARY_FIELDS for s in result["summary"].values())
    json.dumps(result)  # serialisable as is
    unlimited = result_fixture("unlimited", None)
    assert unlimited["network"]["rate_bytes_per_s"] is None and unlimited["network_floor_s"] is None


def test_run_record_maps_the_load_json():
    load = {
        "mode": "stream-files", "dimensions": [64, 64, 48], "dtype": "int16",
        "timings": {"total_s": 1.5, "first_slice_s": None, "states": {"downloading": 0.5}},
        "bytes": {"downloaded": 1000, "dicom": 4000},
        "memory": {"baseline_rss_bytes": 1, "peak_rss_bytes": 2, "peak_above_baseline_bytes": 300,
                   "volume_bytes": 200, "components_peak_bytes": {"zip": 0, "files": 1, "datasets": 2, "volume": 3}},
        "fallback": {"from": "stream-dicom", "to": "stream-files", "reason": "stored member"},
    }
    record = run_record("stream-dicom", 2, load)
    assert list(record)[:8] == ["mode", "run", "total_s", "first_slice_s", "peak_above_baseline_bytes",
                                "volume_bytes", "components_peak_bytes", "states"]
    assert record["mode"] == "stream-dicom" and record["run"] == 2  # the requested mode
    assert record["total_s"] == 1.5 and record["first_slice_s"] is None
    assert record["peak_above_baseline_bytes"] == 300 and record["volume_bytes"] == 200
    assert record["components_peak_bytes"]["datasets"] == 2
    assert record["fallback"]["to"] == "stream-files"
    assert record["bytes_downloaded"] == 1000 and record["bytes_dicom"] == 4000


def test_volumes_agree():
    assert volumes_agree(RUNS)
    other = dict(RUNS[0], volume_sha256="def")
    assert not volumes_agree([*RUNS, other])


def test_throttle_query_and_api_url():
    url = "http://127.0.0.1:5000/api/cts/sample-seed/archive"
    assert is_api_archive_url(url) and not is_api_archive_url("http://h/files/x.zip")
    assert cli.throttled(url, None, 0.0) == url + "?rate=unlimited&latency=0"
    assert cli.throttled(url, 12_500_000.0, 10.0) == url + "?rate=12500000&latency=10"
    assert cli.throttled("http://h/files/x.zip", None, 0.0) == "http://h/files/x.zip"
    assert with_query(url + "?a=1", rate="5") == url + "?a=1&rate=5"


def test_parse_modes_and_sample_name():
    assert cli.parse_modes("batch, stream-dicom") == ["batch", "stream-dicom"]
    with pytest.raises(ValueError):
        cli.parse_modes("batch,fast")
    assert cli.sample_name("sample-medium") == "medium"


def test_text_tables():
    result = result_fixture()
    text = report.render_text(result)
    time_table = report.time_table(result)
    assert time_table.headers == ["Run", "Batch", "PoC1", "PoC2"]
    assert time_table.rows[0] == ["1", "10.00", "8.00", "5.00"]
    assert time_table.rows[3] == ["Mean", "12.00", "9.00", "6.00"]
    assert time_table.rows[5] == ["Improvement vs Batch (mean)", "+0.0 %", "+25.0 %", "+50.0 %"]
    memory = report.memory_table(result)
    assert memory.rows[3] == ["Mean", "310.0", "260.0", "110.0"]
    floor = report.floor_table(result)
    assert floor.rows[2] == ["PoC2", "6.00", "1.25"]
    assert "4.80 s" in floor.notes[0] and "100.0 Mbit/s" in floor.notes[0]
    components = report.components_table(result)
    assert components.rows[0] == ["Batch", "50.0", "0.0", "0.0", "100.0", "310.0"]
    assert "Loading time (s)" in text and "Targets" in text and "sample-seed" in text
    assert "fell back" not in text
    fell = dict(result, runs=[dict(RUNS[0], fallback={"from": "stream-dicom", "to": "batch", "reason": "stored"})])
    assert "1 run(s) fell back to a safer mode, e.g. stream-dicom -> batch: stored" in report.headline(fell)


def test_markdown_replaces_only_the_part_between_the_bench_markers():
    generated = report.render_markdown([result_fixture()])
    doc = f"# notes\nkept above\n{report.BEGIN_MARK}\nold tables\n{report.END_MARK}\nkept below\n"
    out = report.splice_markdown(doc, generated)
    assert out.startswith("# notes\nkept above\n") and out.endswith("kept below\n")
    assert "old tables" not in out and generated.strip() in out
    assert report.splice_markdown(doc, generated).count(report.BEGIN_MARK) == 1
    assert report.splice_markdown(None, generated) == generated  # a new file is the tables alone
    assert report.splice_markdown("no markers", generated) == generated


def test_markdown_has_every_profile_targets_and_the_original_report():
    md = report.render_markdown([result_fixture(), result_fixture("unlimited", None)])
    assert "### Profile `100mbit`" in md and "### Profile `unlimited`" in md
    assert "| Run | Batch | PoC1 | PoC2 |" in md
    assert "| Batch | 29.1 | +0.0 % | 618.8 | +0.0 % |" in md
    assert "| PoC2 | 21.8 | +25.1 % | 213.6 | +65.5 % |" in md
    assert "| PoC1 | 24.8 | +14.8 % | 580.4 | +6.2 % |" in md
    assert "Network floor: none (unthrottled)." in md
    assert "| original report (browser JS) | PoC2 | 21.8 | +25.1 % | 213.6 | +65.5 % | — |" in md
    assert "| 100mbit | PoC2 | 6.00 | +50.0 % | 110.0 | +64.5 % | 1.25 |" in md
    assert "| PoC2 ÷ Batch median time | unlimited | ≤ 0.70 | — | 0.50 | pass |" in md


def test_from_json_rerenders_saved_results(tmp_path, capsys):
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(result_fixture()))
    out_md = tmp_path / "out.md"
    assert cli.main(["--from-json", str(saved), "--markdown", str(out_md), "--quiet"]) == 0
    assert "Loading time (s)" in capsys.readouterr().out
    assert "### Profile `100mbit`" in out_md.read_text()


def fake_load(mode: str, total: float, downloading: float, peak: int) -> dict:
    return {
        "mode": mode, "dimensions": [8, 8, 4], "dtype": "int16", "fallback": None,
        "timings": {"total_s": total, "first_slice_s": 0.1, "states": {"downloading": downloading,
                                                                        "dicom loading": total - downloading}},
        "bytes": {"downloaded": 1000, "dicom": 2000},
        "memory": {"peak_above_baseline_bytes": peak, "volume_bytes": 512,
                   "components_peak_bytes": {"zip": 0, "files": 0, "datasets": 0, "volume": 512}},
    }


def test_balanced_run_calibrates_then_throttles_every_run(monkeypatch, tmp_path):
    """The orchestration without processes: calibration, the throttled URL, interleaved runs, the JSON."""
    calls = []

    def run_load(url, mode, *, verify=False, extra_args=()):
        calls.append((url, mode, list(extra_args)))
        return fake_load(mode, 3.0 if mode == "batch" else 2.0, 1.0, 900 if mode == "batch" else 300)

    base = "http://127.0.0.1:9/api/cts/sample-x/archive"
    monkeypatch.setattr(cli, "run_load", run_load)
    monkeypatch.setattr(cli, "fetch_json", lambda url: {"id": "sample-x", "zip_bytes": 4_000_000,
                                                        "dicom_bytes": 8_000_000, "slices": 4})
    out = tmp_path / "r.json"
    assert cli.main(["--source", base, "--rate", "balanced", "--runs", "2", "--calibration-runs", "2",
                     "--warmup", "0", "--json", str(out), "--quiet"]) == 0
    # 2 unthrottled batch calibrations: processing = 3.0 - 1.0 = 2 s -> rate = 4 MB / 2 s = 2 MB/s
    assert calls[:2] == [(base + "?rate=unlimited&latency=0", "batch", ["--expected-slices", "4"])] * 2
    throttled = base + "?rate=2000000&latency=0"
    assert calls[2:] == [(throttled, m, ["--expected-slices", "4"]) for _ in range(2) for m in stats.MODES]
    result = json.loads(out.read_text())
    assert result["profile"] == "balanced"
    assert result["network"] == {"rate_bytes_per_s": 2_000_000.0, "latency_ms": 0.0}
    assert result["balanced"]["processing_s"] == pytest.approx(2.0)
    assert result["network_floor_s"] == pytest.approx(2.0)
    assert result["summary"]["stream-dicom"]["improvement_time_pct"] == pytest.approx(100 / 3)
    assert result["ratios"]["batch_over_poc2_peak"] == pytest.approx(3.0)


def test_profiles_resolve_to_rate_and_latency():
    assert cli.resolve_profile("100mbit", None) == ("100mbit", 12_500_000.0, 0.0)
    assert cli.resolve_profile("4g", None) == ("4g", 3_750_000.0, 10.0)
    assert cli.resolve_profile("4g", 50.0) == ("4g", 3_750_000.0, 50.0)
    assert cli.resolve_profile("unlimited", None) == ("unlimited", None, 0.0)
    assert cli.resolve_profile("balanced", None) == ("balanced", None, 0.0)
    assert cli.resolve_profile("50mbit", None) == ("50mbit", 6_250_000.0, 0.0)
    with pytest.raises(ValueError):
        cli.resolve_profile("fast", None)


def test_throttle_needs_an_api_url(tmp_path, capsys):
    archive = tmp_path / "x.zip"
    archive.write_bytes(b"PK")
    assert cli.main(["--source", str(archive), "--rate", "100mbit", "--quiet"]) == 1
    assert "throttle only the CT API's archive URLs" in capsys.readouterr().err


def test_a_failed_load_stops_the_bench(monkeypatch, tmp_path, capsys):
    def run_load(url, mode, **kwargs):
        raise cli.BenchError(f"{mode} load failed with status 2: webviewer-load: error: bad zip")

    monkeypatch.setattr(cli, "run_load", run_load)
    archive = tmp_path / "x.zip"
    archive.write_bytes(b"PK")
    assert cli.main(["--source", str(archive), "--quiet"]) == 1
    assert "batch load failed with status 2" in capsys.readouterr().err


def test_several_profiles_share_one_source_and_write_a_list(monkeypatch, tmp_path):
    urls = []

    def run_load(url, mode, *, verify=False, extra_args=()):
        urls.append(url)
        return fake_load(mode, 2.0, 1.0, 500)

    base = "http://127.0.0.1:9/api/cts/sample-x/archive"
    monkeypatch.setattr(cli, "run_load", run_load)
    monkeypatch.setattr(cli, "fetch_json", lambda url: {"id": "sample-x", "zip_bytes": 4_000_000, "slices": 4})
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert cli.main(["--source", base, "--rate", "unlimited,100mbit", "--runs", "1", "--modes", "batch,stream-dicom",
                     "--json", str(out), "--markdown", str(md), "--quiet"]) == 0
    unlimited, fast = base + "?rate=unlimited&latency=0", base + "?rate=12500000&latency=0"
    assert urls == [unlimited, unlimited, unlimited, fast, fast]  # one warm-up run, then the profiles in turn
    results = json.loads(out.read_text())
    assert [r["profile"] for r in results] == ["unlimited", "100mbit"]
    assert list(results[1]["summary"]) == ["batch", "stream-dicom"]
    assert results[1]["network_floor_s"] == pytest.approx(0.32)
    text = md.read_text()
    assert "### Profile `unlimited`" in text and "### Profile `100mbit`" in text and "| Run | Batch | PoC2 |" in text
