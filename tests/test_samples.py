"""The synthetic CT generator: valid CT Image Storage files with the intended geometry and HU."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from webviewer.api import samples
from webviewer.api.samples import SAMPLES, SeriesSpec, ensure_samples, phantom_hu, write_series, zip_folder


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_valid_ct_image_storage(tmp_path: Path) -> None:
    spec = SeriesSpec(slices=5)
    paths = write_series(tmp_path, spec)
    assert len(paths) == 5
    sops = set()
    for k, path in enumerate(paths):
        raw = path.read_bytes()
        assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "CT" and ds.PatientPosition == "HFS"
        assert (ds.Rows, ds.Columns) == (64, 64)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
        assert float(ds.WindowCenter) == 40 and float(ds.WindowWidth) == 400
        assert ds.InstanceNumber == k + 1
        assert [float(v) for v in ds.PixelSpacing] == [0.75, 0.75]
        assert float(ds.SliceThickness) == 1.25
        sops.add(ds.SOPInstanceUID)
        assert ds.StudyInstanceUID != ds.SeriesInstanceUID
    assert len(sops) == 5


def test_geometry_and_hu_round_trip(tmp_path: Path) -> None:
    spec = SeriesSpec(rows=48, columns=64, slices=6, pixel_spacing=(0.8, 0.6), slice_spacing=2.0)
    paths = write_series(tmp_path, spec, shuffle_names=False)
    zs = []
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        zs.append(float(ds.ImagePositionPatient[2]))
        hu = _hu(ds)
        assert hu.shape == (48, 64)
        np.testing.assert_array_equal(hu, phantom_hu(spec, k))
    assert np.allclose(np.diff(zs), 2.0)


def test_phantom_hu_is_anatomical_and_deterministic() -> None:
    spec = SeriesSpec(rows=128, columns=128, slices=40, pixel_spacing=(2.7, 2.7), slice_spacing=5.0)
    mid = phantom_hu(spec, 20)
    assert np.array_equal(mid, phantom_hu(spec, 20))
    assert not np.array_equal(mid, phantom_hu(SeriesSpec(**{**spec.__dict__, "seed": 1}), 20))
    assert np.median(mid[:4, :]) == pytest.approx(-1000, abs=10)  # air outside
    assert np.std(mid[:8, :8]) == pytest.approx(15, rel=0.25)  # noise sigma
    assert (mid < -750).sum() > 0.1 * mid.size  # air + lungs
    assert ((mid > -900) & (mid < -750)).sum() > 500  # lung parenchyma
    assert (mid > 400).sum() > 50  # spine and ribs
    assert mid.max() <= 1500 + 5 * 15
    assert ((mid > 20) & (mid < 60)).sum() > 1000  # soft tissue
    assert ((mid > -130) & (mid < -70)).sum() > 200  # fat


@pytest.mark.parametrize("syntax", ["implicit", "rle", "jpegls", "jpeg2000"])
def test_transfer_syntaxes_decode(tmp_path: Path, syntax: str) -> None:
    spec = SeriesSpec(rows=32, columns=32, slices=2, transfer_syntax=syntax)
    paths = write_series(tmp_path, spec)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == samples.TRANSFER_SYNTAXES[syntax]
        np.testing.assert_array_equal(_hu(ds), phantom_hu(spec, k))


def test_signed_pixels(tmp_path: Path) -> None:
    spec = SeriesSpec(rows=32, columns=32, slices=2, rescale_intercept=0.0, bits_stored=16)
    ds = pydicom.dcmread(write_series(tmp_path, spec)[1])
    assert ds.PixelRepresentation == 1
    np.testing.assert_array_equal(_hu(ds), phantom_hu(spec, 1))


def test_gantry_tilt_like_ge(tmp_path: Path) -> None:
    spec = SeriesSpec(slices=4, slice_spacing=4.0, gantry_tilt_deg=18.5)
    paths = write_series(tmp_path, spec, shuffle_names=False)
    dss = [pydicom.dcmread(p) for p in paths]
    iop = [float(v) for v in dss[0].ImageOrientationPatient]
    t = math.radians(18.5)
    assert iop == pytest.approx([1, 0, 0, 0, math.cos(t), -math.sin(t)], abs=1e-5)
    ipp = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in dss])
    assert np.allclose(np.diff(ipp[:, :2], axis=0), 0)  # steps along z only
    normal = np.cross(iop[:3], iop[3:])
    assert np.allclose(np.diff(ipp @ normal), 4.0, atol=1e-3)  # spacing along the normal
    assert float(dss[0].GantryDetectorTilt) == 18.5


def test_explicit_positions_and_names(tmp_path: Path) -> None:
    spec = SeriesSpec(rows=16, columns=16, positions=[0.0, 1.0, 2.0, 5.0, 5.0])
    paths = write_series(tmp_path, spec, shuffle_names=True)
    assert len(paths) == 5
    names = [p.name for p in paths]
    assert sorted(names) != names and all("." not in n for n in names)
    zs = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in paths]
    assert zs == [0.0, 1.0, 2.0, 5.0, 5.0]
    with pytest.raises(FileExistsError):
        write_series(tmp_path, spec)
    assert len(write_series(tmp_path, SeriesSpec(rows=16, columns=16, slices=2), name_prefix="B")) == 2


def test_zip_folder_shuffles_and_deflates(tmp_path: Path) -> None:
    src = tmp_path / "series"
    paths = write_series(src, SeriesSpec(slices=12), shuffle_names=False)
    zpath = zip_folder(src, tmp_path / "out.zip", seed=3)
    with zipfile.ZipFile(zpath) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert sorted(names) == sorted(p.name for p in paths)
        assert names != sorted(names)
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
        for p in paths:
            assert zf.read(p.name) == p.read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_ensure_samples_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (zpath,) = ensure_samples(["tiny"], tmp_path, progress=False)
    meta = json.loads(zpath.with_suffix(".json").read_text())
    assert meta["slices"] == 48 and meta["rows"] == meta["columns"] == 64
    assert meta["zip_bytes"] == zpath.stat().st_size
    spec = SAMPLES["sample-tiny"].spec
    with zipfile.ZipFile(zpath) as zf:
        assert len(zf.namelist()) == 48
        assert meta["dicom_bytes"] == sum(i.file_size for i in zf.infolist())
        for name in zf.namelist()[:5]:
            ds = pydicom.dcmread(io.BytesIO(zf.read(name)))
            np.testing.assert_array_equal(_hu(ds), phantom_hu(spec, ds.InstanceNumber - 1))
    assert 0.3 < meta["zip_bytes"] / meta["dicom_bytes"] < 0.8
    mtime = zpath.stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("must not regenerate")

    monkeypatch.setattr(samples, "_generate_sample", boom)
    assert ensure_samples("sample-tiny", tmp_path) == [zpath]
    assert zpath.stat().st_mtime_ns == mtime


def test_interrupted_generation_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_zip = samples.zip_folder

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(samples, "zip_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_samples(["tiny"], tmp_path, progress=False)
    zpath, meta = samples.sample_paths("sample-tiny", tmp_path)
    assert not zpath.exists() and not meta.exists()
    assert [p.name for p in zpath.parent.iterdir() if not p.name.startswith(".sample-tiny.lock")] == []
    monkeypatch.setattr(samples, "zip_folder", real_zip)
    assert ensure_samples(["tiny"], tmp_path, progress=False)[0].exists()
    # a zip without its metadata (killed between the two renames) is regenerated, not trusted
    meta.unlink()
    assert samples.read_sample_meta("sample-tiny", tmp_path) is None
    ensure_samples(["tiny"], tmp_path, progress=False)
    assert samples.read_sample_meta("sample-tiny", tmp_path) is not None


def test_sample_specs_and_names() -> None:
    assert list(SAMPLES) == ["sample-tiny", "sample-medium", "sample-seed", "sample-seed-enhanced"]
    seed = SAMPLES["sample-seed"].spec
    assert (seed.rows, seed.columns, seed.n_slices) == (512, 512, 380)
    assert samples.sample_ids("tiny,seed") == ["sample-tiny", "sample-seed"]
    with pytest.raises(ValueError, match="unknown sample"):
        samples.sample_ids(["huge"])


def test_zip_ratio_like_a_real_ct(tmp_path: Path) -> None:
    """Noise makes the phantom compress like a real CT (the seed: 107 MB ZIP for 197 MB of DICOM)."""
    spec = SeriesSpec(rows=256, columns=256, slices=6, pixel_spacing=(1.4, 1.4), slice_spacing=1.5,
                      positions=[-100.0, -50.0, 0.0, 30.0, 60.0, 90.0])
    paths = write_series(tmp_path / "s", spec)
    zpath = zip_folder(tmp_path / "s", tmp_path / "s.zip")
    ratio = zpath.stat().st_size / sum(p.stat().st_size for p in paths)
    assert 0.45 < ratio < 0.62


def test_generation_is_deterministic(tmp_path: Path) -> None:
    spec = SeriesSpec(rows=24, columns=24, slices=3, series_uid="1.2.3.4", study_uid="1.2.3")
    a = write_series(tmp_path / "a", spec)
    b = write_series(tmp_path / "b", spec)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
