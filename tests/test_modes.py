"""The three load modes give the same volume bit for bit; states, events, JSON, archive oddities, fallback."""

from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest

from tests.dicom_helpers import independent_hu
from tests.pipeline_helpers import (
    RecordingObserver,
    folder_files,
    make_zip,
    serve,
    shuffled,
    synthetic_files,
    zip_handler,
)
from webviewer.errors import HttpStatusError, NotStreamableError
from webviewer.loading import Limits, LoadMode, LoadOptions, LoadState, load

MODES = [m.value for m in LoadMode]
STATES = {
    "batch": ["downloading", "ready", "decompressing", "dicom loading", "finished"],
    "stream-files": ["downloading", "ready", "dicom loading", "finished"],
    "stream-dicom": ["downloading", "ready", "dicom loading", "finished"],
}
JSON_KEYS = {
    "mode", "content_id", "slices", "dimensions", "spacing", "origin", "direction", "dtype", "frames", "sop_class",
    "timings", "bytes", "memory", "warnings", "skipped_files", "fallback",
}  # fmt: skip


async def load_all_modes(url_or_path, **kw) -> dict:
    return {mode: await load(url_or_path, mode, **kw) for mode in MODES}


def assert_same_volume(results: dict) -> None:
    base = results["batch"].volume
    for mode, r in results.items():
        v = r.volume
        assert v.hu.dtype == base.hu.dtype, mode
        assert v.hu.shape == base.hu.shape, mode
        assert v.hu.flags.c_contiguous, mode
        assert np.array_equal(v.hu, base.hu), mode
        assert v.spacing == base.spacing, mode
        assert v.origin == base.origin, mode
        assert np.array_equal(v.direction, base.direction), mode
        assert [w.code for w in r.warnings] == [w.code for w in results["batch"].warnings], mode


async def test_real_series_all_modes_bit_identical_over_http(aiohttp_server, real_series):
    name, folder, expected = real_series
    members = folder_files(folder)
    data = make_zip(shuffled(members))
    server = await serve(aiohttp_server, {"/ct.zip": zip_handler(data)})
    results = await load_all_modes(str(server.make_url("/ct.zip")))
    assert_same_volume(results)
    ref, _ = independent_hu(members)
    hu = results["stream-dicom"].volume.hu
    assert hu.shape == (expected, *ref.shape[1:]) == ref.shape
    assert np.array_equal(hu.astype(np.float64), ref)
    for mode, r in results.items():
        assert r.mode.value == mode and r.fallback is None
        assert r.metrics.bytes_downloaded == len(data)
        assert r.metrics.volume_bytes == hu.nbytes
    codes = {w.code for w in results["batch"].warnings}
    if name == "dcmqa-ge-head-gantrytilt":
        assert {"gantry_tilt", "irregular_spacing"} <= codes
    if name == "dcmqa-philips-headphantom-1mm":
        assert "DIRFILE" in results["stream-dicom"].skipped_files
        assert "skipped_files" in codes


@pytest.mark.parametrize("mode", MODES)
async def test_states_events_and_json(tmp_path, mode):
    members = synthetic_files(tmp_path / "s", slices=10)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(members))
    obs = RecordingObserver()
    r = await load(z, mode, observer=obs, options=LoadOptions(name="Chest"))
    assert obs.states == STATES[mode]
    assert obs.threads == {threading.get_ident()}  # every call on the loop thread
    last = obs.events[-1]
    assert last.state == LoadState.FINISHED
    assert last.slices_placed == 10 and last.files_extracted == 10 and last.files_parsed == 10
    assert last.bytes_downloaded == last.bytes_total == z.stat().st_size
    if mode == "stream-dicom":
        assert obs.allocated == 1
        assert obs.placed[0] >= 1 and obs.placed[-1] == 10
        assert last.slices_total == 10  # from the ZIP's central directory
    j = r.to_json()
    assert set(j) == JSON_KEYS
    prefix = {"batch": "CT_BATCH_", "stream-files": "PoC_CT_STREAMFILE_", "stream-dicom": "PoC_CT_STREAMDICOM_"}[mode]
    assert j["content_id"].startswith(prefix) and j["content_id"][len(prefix) :].isdigit()
    assert r.name == "Chest - CT 4-pane (10 slices)"
    assert j["mode"] == mode and j["slices"] == 10 and j["dimensions"] == [32, 32, 10]
    assert len(j["direction"]) == 9 and j["dtype"] == "int16"
    assert set(j["timings"]) == {"total_s", "first_slice_s", "states"}
    assert set(j["timings"]["states"]) == set(STATES[mode]) - {"finished"}
    at_first = j["bytes"].pop("at_first_slice")
    assert j["bytes"] == {"downloaded": z.stat().st_size, "dicom": sum(len(d) for _, d in members)}
    assert 0 < at_first <= z.stat().st_size
    mem = j["memory"]
    assert set(mem) == {"baseline_rss_bytes", "peak_rss_bytes", "peak_above_baseline_bytes", "volume_bytes",
                        "components_peak_bytes", "method", "shared_process"}
    assert mem["method"] in ("vmhwm", "sampled") and mem["shared_process"] is False  # one load at a time
    assert set(mem["components_peak_bytes"]) == {"zip", "files", "datasets", "volume"}
    assert mem["volume_bytes"] == 32 * 32 * 10 * 2
    assert mem["peak_rss_bytes"] >= mem["baseline_rss_bytes"]
    comp = mem["components_peak_bytes"]
    if mode == "batch":
        assert comp["zip"] == z.stat().st_size and comp["files"] == j["bytes"]["dicom"]
        assert comp["datasets"] == mem["volume_bytes"]
    if mode == "stream-files":
        assert comp["files"] == j["bytes"]["dicom"] and comp["datasets"] == mem["volume_bytes"]
    if mode == "stream-dicom":
        assert comp["datasets"] == 0 and comp["files"] < j["bytes"]["dicom"]
    assert j["warnings"] == [] and j["skipped_files"] == [] and j["fallback"] is None
    assert r.metadata["series_description"] == "Synthetic chest CT"
    assert set(r.metadata) >= {"patient_name", "study_description", "series_description", "series_uid", "modality",
                               "dimensions", "spacing"}


async def test_zip_file_folder_and_http_agree(tmp_path, aiohttp_server):
    folder = tmp_path / "nested" / "deeper"
    members = synthetic_files(folder, slices=9)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip([(f"nested/deeper/{n}", d) for n, d in members]))
    server = await serve(aiohttp_server, {"/ct.zip": zip_handler(z.read_bytes(), chunked=True)})
    results = {}
    for mode in MODES:
        results[mode] = await load(tmp_path / "nested", mode)
        results[mode + "-zip"] = await load(str(z), mode)
        results[mode + "-http"] = await load(str(server.make_url("/ct.zip")), mode)
    results["batch"] = results["batch-http"]
    assert_same_volume(results)
    assert results["stream-dicom"].volume.hu.shape == (9, 32, 32)


async def test_junk_nested_shuffled_two_series_missing_slice(tmp_path):
    big = synthetic_files(tmp_path / "a", slices=14, slice_spacing=2.0, positions=[2.0 * k for k in range(14) if k != 6],
                          description="Main")
    small = synthetic_files(tmp_path / "b", slices=5, rows=16, columns=16, name_prefix="SC", description="Scout")
    junk = [
        ("__MACOSX/study/._IM1", b"\x00\x05\x16\x07resource fork"),
        ("study/.DS_Store", b"\x00\x00\x00\x01Bud1"),
        ("study/readme.txt", b"exported by a PACS\n"),
        ("study/empty.dcm", b""),
        ("study/", b""),
    ]
    members = [(f"study/series1/sub/{n}", d) for n, d in big] + [(f"study/series2/{n}", d) for n, d in small] + junk
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(shuffled(members, seed=3)))
    results = await load_all_modes(z)
    assert_same_volume(results)
    r = results["stream-dicom"]
    assert r.volume.hu.shape == (13, 32, 32)
    codes = {w.code for w in r.warnings}
    assert {"multiple_series", "missing_slices", "skipped_files"} <= codes
    for res in results.values():
        assert sorted(res.skipped_files) == sorted(n for n, _ in junk)
    ref, _ = independent_hu([(n, d) for n, d in members if "series1" in n])
    assert np.array_equal(r.volume.hu.astype(np.float64), ref)


@pytest.mark.parametrize("variant", ["zip64", "deflate-descriptor", "stored"])
async def test_zip_variants_stream_without_fallback(tmp_path, variant):
    members = synthetic_files(tmp_path / "s", slices=8)
    data = make_zip(
        members,
        force_zip64=variant == "zip64",
        data_descriptors=variant == "deflate-descriptor",
        compression=zipfile.ZIP_STORED if variant == "stored" else zipfile.ZIP_DEFLATED,
    )
    z = tmp_path / "ct.zip"
    z.write_bytes(data)
    results = await load_all_modes(z)
    assert_same_volume(results)
    assert all(r.fallback is None for r in results.values())


@pytest.mark.parametrize("mode", ["stream-dicom", "stream-files"])
async def test_stored_with_data_descriptors_falls_back_and_restarts_download(tmp_path, aiohttp_server, mode):
    members = synthetic_files(tmp_path / "s", slices=8)
    data = make_zip(members, compression=zipfile.ZIP_STORED, data_descriptors=True)
    requests: list = []
    server = await serve(aiohttp_server, {"/ct.zip": zip_handler(data, requests=requests)})
    url = str(server.make_url("/ct.zip"))
    obs = RecordingObserver()
    r = await load(url, mode, observer=obs, options=LoadOptions(probe_central_directory=False))
    assert r.mode == LoadMode.BATCH and r.requested_mode.value == mode
    assert r.fallback is not None
    assert r.to_json()["fallback"]["from"] == mode and r.to_json()["fallback"]["to"] == "batch"
    assert "data descriptor" in r.fallback.reason
    assert r.content_id.startswith("CT_BATCH_")
    assert requests == [None, None]  # two full GETs: the download restarted from the first byte
    assert r.metrics.bytes_downloaded >= len(data)  # both attempts are counted
    assert obs.states[-1] == "finished"
    ref = await load(url, "batch")
    assert np.array_equal(ref.volume.hu, r.volume.hu)
    with pytest.raises(NotStreamableError):
        await load(url, mode, options=LoadOptions(fallback=False, probe_central_directory=False))
    # with the central directory (this server answers Range) members are cut by offset: no fallback needed
    direct = await load(url, mode, options=LoadOptions(fallback=False))
    assert direct.fallback is None and direct.mode.value == mode
    assert np.array_equal(direct.volume.hu, ref.volume.hu)


@pytest.mark.parametrize("syntax", ["implicit", "rle", "jpegls", "jpeg2000"])
async def test_transfer_syntaxes(tmp_path, syntax):
    members = synthetic_files(tmp_path / "s", slices=6, transfer_syntax=syntax)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(members))
    results = await load_all_modes(z)
    assert_same_volume(results)
    ref, _ = independent_hu(members)
    assert np.array_equal(results["stream-dicom"].volume.hu.astype(np.float64), ref)


async def test_expected_slices_and_no_count(tmp_path):
    members = synthetic_files(tmp_path / "s", slices=7)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(members))
    hinted = await load(z, "stream-dicom", options=LoadOptions(expected_slices=7))
    blind = await load(z, "stream-dicom", options=LoadOptions(probe_central_directory=False))
    assert np.array_equal(hinted.volume.hu, blind.volume.hu)
    assert hinted.volume.hu.shape == (7, 32, 32)


async def test_member_above_streaming_limit_falls_back_to_batch(tmp_path):
    members = synthetic_files(tmp_path / "s", slices=6)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(members))
    limits = Limits(max_stream_member_bytes=1000)
    r = await load(z, "stream-dicom", options=LoadOptions(limits=limits))
    assert r.mode == LoadMode.BATCH
    assert r.fallback is not None and "streaming limit" in r.fallback.reason
    assert r.volume.hu.shape == (6, 32, 32)


async def test_through_the_ct_api_server(tmp_path):
    """Our own API (Range support, throttle query): the central directory probe sizes the PoC2 buffer."""
    from webviewer.api.app import start_api_server
    from webviewer.api.catalog import Catalog, CatalogEntry

    members = synthetic_files(tmp_path / "s", slices=11)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(members))
    entry = CatalogEntry(id="ct-1", name="CT one", modality="CT", slices=11, rows=32, columns=32,
                         dicom_bytes=sum(len(d) for _, d in members), zip_bytes=z.stat().st_size,
                         description="test", zip_path=z)
    runner, base = await start_api_server(Catalog([entry]), "127.0.0.1", 0)
    try:
        url = f"{base}/api/cts/ct-1/archive"
        obs = RecordingObserver()
        r = await load(url, "stream-dicom", observer=obs)
        assert obs.events[0].slices_total == 11 or obs.events[-1].slices_total == 11
        slow = await load(url + "?rate=20MB", "stream-files")
        batch = await load(url, "batch")
        assert_same_volume({"batch": batch, "stream-files": slow, "stream-dicom": r})
        with pytest.raises(HttpStatusError) as info:
            await load(f"{base}/api/cts/nope/archive", "stream-dicom")
        assert info.value.status == 404 and info.value.exit_code == 2
    finally:
        await runner.cleanup()
