"""Synthetic series from webviewer.api.samples: transfer syntaxes, rescale, geometry cases, through both paths."""

from __future__ import annotations

import random

import numpy as np
import pytest
from dicom_helpers import decoded, independent_hu, parse_members

from webviewer.api.samples import SeriesSpec, phantom_hu, write_series
from webviewer.loading.volume import SliceBuffer, assemble_volume

GB = 1 << 30


def _load_both(folder, seed: int = 0):
    members = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]
    parsed, skipped = parse_members(members)
    batch = assemble_volume(decoded(parsed), max_volume_bytes=GB, skipped=skipped)
    items = parsed[:]
    random.Random(seed).shuffle(items)
    buf = SliceBuffer(None, GB)
    for h, data in items:
        buf.place(h.name, h, data)
    stream = buf.finish(skipped=skipped)
    assert stream[0].hu.dtype == batch[0].hu.dtype
    assert np.array_equal(stream[0].hu, batch[0].hu)
    assert stream[1] == batch[1] and stream[2] == batch[2]
    return batch, members, parsed


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "rle", "jpegls", "jpeg2000"])
def test_transfer_syntaxes_decode_like_pydicom(tmp_path, syntax):
    spec = SeriesSpec(rows=32, columns=40, slices=6, transfer_syntax=syntax, seed=2)
    write_series(tmp_path, spec)
    (vol, warnings, meta), members, parsed = _load_both(tmp_path, seed=1)
    assert parsed[0][0].transfer_syntax == spec.transfer_syntax_uid
    ref, _ = independent_hu(members)
    assert vol.hu.dtype == np.int16
    assert np.array_equal(vol.hu.astype(np.float64), ref)
    # and the HU are what the generator meant
    expected = np.stack([phantom_hu(spec, k) for k in range(spec.n_slices)])
    assert np.array_equal(vol.hu, expected)
    assert warnings == []
    assert vol.spacing == (0.75, 0.75, pytest.approx(1.25))
    assert meta["dimensions"] == [40, 32, 6]


def test_float_rescale_is_float32(tmp_path):
    spec = SeriesSpec(rows=16, columns=16, slices=4, rescale_slope=0.5, rescale_intercept=-1024.25, seed=3)
    write_series(tmp_path, spec)
    (vol, _, _), members, _ = _load_both(tmp_path)
    ref, _ = independent_hu(members)
    assert vol.hu.dtype == np.float32
    assert np.array_equal(vol.hu, ref.astype(np.float32))


def test_gantry_tilt_synthetic(tmp_path):
    spec = SeriesSpec(rows=16, columns=16, slices=6, gantry_tilt_deg=12.0, seed=4)
    write_series(tmp_path, spec)
    (vol, warnings, _), _, _ = _load_both(tmp_path, seed=2)
    assert [w.code for w in warnings] == ["gantry_tilt"]
    assert "12.0°" in warnings[0].message
    assert vol.spacing[2] == pytest.approx(1.25, rel=1e-4)


def test_missing_and_duplicate_positions_synthetic(tmp_path):
    spec = SeriesSpec(rows=16, columns=16, positions=[0.0, 1.25, 2.5, 2.5, 5.0, 6.25, 7.5], seed=5)
    write_series(tmp_path, spec)
    (vol, warnings, _), _, _ = _load_both(tmp_path, seed=3)
    assert sorted(w.code for w in warnings) == ["duplicate_positions", "missing_slices"]
    assert vol.hu.shape[0] == 6


def test_two_series_and_junk_synthetic(tmp_path):
    write_series(
        tmp_path, SeriesSpec(rows=16, columns=16, slices=7, description="Main", seed=6), name_prefix="A"
    )
    write_series(
        tmp_path, SeriesSpec(rows=16, columns=16, slices=3, description="Other", seed=7), name_prefix="B"
    )
    (tmp_path / "README.txt").write_text("exported by a PACS\n")
    (tmp_path / "empty").write_bytes(b"")
    (vol, warnings, meta), _, _ = _load_both(tmp_path, seed=4)
    assert meta["series_description"] == "Main" and vol.hu.shape[0] == 7
    assert sorted(w.code for w in warnings) == ["multiple_series", "skipped_files"]
    skipped = next(w for w in warnings if w.code == "skipped_files")
    assert "README.txt" in skipped.message and "empty" in skipped.message
