"""Enhanced (multi-frame) CT: the real series converted to one Enhanced CT file load bit for bit as the classic
series, in every mode, native and RLE; per-frame rescale; damaged and hostile frame counts; mixed archives."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.dicom_helpers import ct_dataset
from tests.multiframe_helpers import classic_slices, enhanced_bytes, to_bytes
from tests.pipeline_helpers import folder_files, make_zip, shuffled
from webviewer.api.enhanced import enhanced_from_slices
from webviewer.errors import DicomError, LimitExceededError
from webviewer.loading import Limits, LoadOptions, load
from webviewer.loading import run as run_mod
from webviewer.loading import source as source_mod
from webviewer.loading.dicom import ENHANCED_CT, FrameStream

MODES = ["batch", "stream-files", "stream-dicom"]


@pytest.fixture
def stream_frames(monkeypatch):
    """PoC2 unzips by stream-unzip whatever the member size, so a multi-frame member is always streamed."""
    monkeypatch.setattr(run_mod, "LARGE_MEMBER_BYTES", 0)


def assert_same(result, ref) -> None:
    v, base = result.volume, ref.volume
    assert v.hu.dtype == base.hu.dtype
    assert v.hu.shape == base.hu.shape
    assert v.hu.flags.c_contiguous
    assert np.array_equal(v.hu, base.hu)
    assert v.spacing == base.spacing
    assert v.origin == base.origin
    assert np.array_equal(v.direction, base.direction)
    codes = [[w.code for w in r.warnings if w.code != "skipped_files"] for r in (result, ref)]  # DICOMDIR
    assert codes[0] == codes[1]


def write(tmp_path, name: str, members: list[tuple[str, bytes]]):
    path = tmp_path / name
    path.write_bytes(make_zip(members))
    return path


@pytest.mark.parametrize("syntax", ["native", "rle"])
async def test_real_series_as_enhanced_ct_every_mode_bit_identical(tmp_path, real_series, syntax, stream_frames,
                                                                    monkeypatch):
    monkeypatch.setattr(source_mod, "CHUNK_BYTES", 1 << 16)  # the smallest zip is a few chunks, not one
    name, folder, expected = real_series
    members = folder_files(folder)
    classic = write(tmp_path, "classic.zip", shuffled(members))
    member = enhanced_bytes(classic_slices(members), syntax=syntax)  # once: its UIDs are random, their length too
    enhanced = write(tmp_path, "enhanced.zip", [("enhanced.dcm", member)])
    ref = await load(classic, "batch")
    member_bytes = len(member)
    feeds: list[int] = []
    real_feed = FrameStream.feed
    monkeypatch.setattr(FrameStream, "feed", lambda self, chunk: (feeds.append(len(chunk)), real_feed(self, chunk)))
    for mode in MODES:
        feeds.clear()
        r = await load(enhanced, mode)
        assert_same(r, ref)
        assert r.metadata["frames"] == expected and r.metadata["sop_class"] == ENHANCED_CT
        assert r.to_json()["frames"] == expected
        if mode == "stream-dicom":  # placed frame by frame from the inflated pieces, the member never held whole
            assert len(feeds) > 1 and max(feeds) < member_bytes and sum(feeds) == member_bytes
            assert r.metrics.components_peak_bytes["files"] == 0
        else:
            assert feeds == [member_bytes]
    assert ref.metadata["frames"] == 0


async def test_directory_path_small_enhanced_member(tmp_path):
    """Without the test hook a small multi-frame member is inflated whole by the directory path: same volume."""
    from tests.conftest import real_series_dir

    members = folder_files(real_series_dir("slicer-cthead-64px"))
    ref = await load(write(tmp_path, "c.zip", members), "batch")
    r = await load(write(tmp_path, "e.zip", [("e.dcm", enhanced_bytes(classic_slices(members)))]), "stream-dicom")
    assert_same(r, ref)


def _rescaled_series(n: int = 9) -> list:
    rng = np.random.default_rng(3)
    out = []
    for k in range(n):
        slope, intercept = (1.0, -1024.0) if k % 3 else (0.5, -1000.5)  # two frames in three integral
        pixels = rng.integers(0, 3000, size=(16, 16)).astype(np.int16)
        out.append(ct_dataset(rows=16, columns=16, position=(0.0, 0.0, 2.5 * k), pixels=pixels, slope=slope,
                              intercept=intercept, series_uid="1.2.3.4"))
    return out


async def test_per_frame_rescale(tmp_path, stream_frames):
    slices = _rescaled_series()
    ds = enhanced_from_slices(slices, shuffle_seed=2)
    assert "PixelValueTransformationSequence" in ds.PerFrameFunctionalGroupsSequence[0]
    assert "PixelValueTransformationSequence" not in ds.SharedFunctionalGroupsSequence[0]
    classic = write(tmp_path, "c.zip", [(f"s{i}", to_bytes(s)) for i, s in enumerate(slices)])
    enhanced = write(tmp_path, "e.zip", [("e.dcm", to_bytes(ds))])
    ref = await load(classic, "batch")
    assert ref.volume.hu.dtype == np.float32
    for mode in MODES:
        assert_same(await load(enhanced, mode), ref)


def _frames_claim(n_frames: int, syntax: str = "native") -> bytes:
    ds = enhanced_from_slices(_rescaled_series(4)[1:], per_frame_rescale=True)  # three int16 frames
    if syntax == "rle":
        from tests.multiframe_helpers import rle

        ds = rle(ds)
    ds.NumberOfFrames = n_frames
    ds.PerFrameFunctionalGroupsSequence = list(ds.PerFrameFunctionalGroupsSequence)[:1] * n_frames
    return to_bytes(ds)


@pytest.mark.parametrize(("syntax", "frames", "words"), [
    ("native", 4, "NumberOfFrames is 4"), ("native", 2, "NumberOfFrames is 2"),
    ("rle", 4, "holds 3 frames"), ("rle", 2, r"more frames than NumberOfFrames \(2\)"),
])  # fmt: skip
async def test_frame_count_disagreeing_with_pixel_data_is_a_clear_error(tmp_path, stream_frames, syntax, frames,
                                                                        words):
    path = write(tmp_path, "bad.zip", [("bad.dcm", _frames_claim(frames, syntax))])
    for mode in MODES:
        with pytest.raises(DicomError, match=words):
            await load(path, mode, options=LoadOptions(fallback=False))


async def test_huge_frame_claim_refused_before_allocating(tmp_path, stream_frames):
    ds = enhanced_from_slices(_rescaled_series(3), per_frame_rescale=True)
    ds.Rows = ds.Columns = 60000  # 100000 frames of 60000x60000: 720 TB claimed by a file of a few KB
    ds.NumberOfFrames = 100_000
    path = write(tmp_path, "huge.zip", [("huge.dcm", to_bytes(ds))])
    for mode in MODES:
        with pytest.raises(LimitExceededError, match="100000 frames of 60000x60000.*max_volume_bytes"):
            await load(path, mode, options=LoadOptions(fallback=False, limits=Limits(max_volume_bytes=1 << 30)))


async def test_mixed_archive_picks_the_larger_series_and_reports_the_other(tmp_path, stream_frames):
    from tests.conftest import real_series_dir

    ge = folder_files(real_series_dir("dcmqa-ge-head-gantrytilt"))  # 28 classic slices
    slicer = classic_slices(folder_files(real_series_dir("slicer-cthead-64px")))  # 93 frames
    enhanced = ("enhanced/ct.dcm", enhanced_bytes(slicer))
    ref = await load(write(tmp_path, "only.zip", [enhanced]), "batch")
    mixed = write(tmp_path, "mixed.zip", shuffled([*ge, enhanced]))
    for mode in MODES:
        r = await load(mixed, mode)
        assert np.array_equal(r.volume.hu, ref.volume.hu) and r.volume.origin == ref.volume.origin
        assert r.metadata["frames"] == 93
        (warning,) = [w for w in r.warnings if w.code == "multiple_series"]
        assert "28 images of 512x512" in warning.message


def test_load_cli_json_reports_frames_and_sop_class(tmp_path):
    from tests.conftest import real_series_dir

    slicer = classic_slices(folder_files(real_series_dir("slicer-cthead-64px")))
    path = write(tmp_path, "e.zip", [("e.dcm", enhanced_bytes(slicer, syntax="rle"))])
    out = subprocess.run([sys.executable, "-m", "webviewer.cli.load", str(path), "--json"], capture_output=True,
                         text=True, timeout=120, check=True)
    j = json.loads(out.stdout)
    assert (j["frames"], j["sop_class"], j["slices"]) == (93, ENHANCED_CT, 93)


async def test_geometry_from_per_frame_then_shared_then_top_level(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    slices = _rescaled_series(5)
    ref = await load(write(tmp_path, "c.zip", [(f"s{i}", to_bytes(s)) for i, s in enumerate(slices)]), "batch")
    ds = enhanced_from_slices(slices, shuffle_seed=1)
    shared = ds.SharedFunctionalGroupsSequence[0]
    ds.ImageOrientationPatient = shared.PlaneOrientationSequence[0].ImageOrientationPatient  # top level only
    del shared.PlaneOrientationSequence
    for group in ds.PerFrameFunctionalGroupsSequence:  # per frame beats shared
        measures = Dataset()
        measures.PixelSpacing = ["0.25", "0.35"]
        group.PixelMeasuresSequence = Sequence([measures])
    r = await load(write(tmp_path, "e.zip", [("e.dcm", to_bytes(ds))]), "stream-dicom")
    assert np.array_equal(r.volume.hu, ref.volume.hu) and r.volume.origin == ref.volume.origin
    assert r.volume.spacing[:2] == (0.35, 0.25) and ref.volume.spacing[:2] == (0.7, 0.5)  # (x, y) = (col, row)
    for group in ds.PerFrameFunctionalGroupsSequence:  # no position anywhere: not a volume, skipped and said
        del group.PlanePositionSequence
    with pytest.raises(DicomError, match=r"no loadable DICOM image slices \(1 files skipped\)"):
        await load(write(tmp_path, "n.zip", [("e.dcm", to_bytes(ds))]), "batch")


async def test_float_frames_checked_against_the_limit_as_float32(tmp_path, stream_frames):
    """9 frames of 16x16 fit 6000 bytes as int16 (4608) but not as float32 (9216): refused with the limit named."""
    path = write(tmp_path, "f.zip", [("f.dcm", to_bytes(enhanced_from_slices(_rescaled_series(9))))])
    for mode in MODES:
        with pytest.raises(LimitExceededError, match="max_volume_bytes"):
            await load(path, mode, options=LoadOptions(fallback=False, limits=Limits(max_volume_bytes=6000)))
    r = await load(path, "stream-dicom", options=LoadOptions(limits=Limits(max_volume_bytes=9216)))
    assert r.volume.hu.dtype == np.float32
