"""volume.py: CTVolume (zero-copy VTK), SliceBuffer (PoC2) == assemble_volume == an independent pydicom reading."""

from __future__ import annotations

import gc
import random
import threading
import tracemalloc
import weakref

import numpy as np
import pytest
from dicom_helpers import ct_dataset, decoded, folder_members, independent_hu, parse_members, to_bytes
from pydicom.uid import generate_uid
from realdata import real_series_dir

from webviewer.errors import DicomError, LimitExceededError
from webviewer.loading.dicom import read_header
from webviewer.loading.volume import CTVolume, SliceBuffer, assemble_volume, permute_slices_in_place

GB = 1 << 30


def _buffer_load(parsed, *, seed: int, capacity_hint: int | None, skipped=(), max_volume_bytes: int = 4 * GB):
    items = list(parsed)
    random.Random(seed).shuffle(items)
    buf = SliceBuffer(capacity_hint, max_volume_bytes)
    for h, data in items:
        buf.place(h.name, h, data)
    return buf.finish(skipped=skipped)


def _codes(warnings) -> list[str]:
    return [w.code for w in warnings]


def _same(a: CTVolume, b: CTVolume) -> None:
    assert a.hu.dtype == b.hu.dtype
    assert np.array_equal(a.hu, b.hu)
    assert a.spacing == b.spacing and a.origin == b.origin
    assert np.array_equal(a.direction, b.direction)
    assert a.window == b.window


# ------------------------------------------------------------------------------------------------ real data
def test_real_series_all_paths_bit_identical_to_independent_reading(real_series):
    _name, folder, count = real_series
    members = folder_members(folder)
    ref, _order = independent_hu(members)
    parsed, skipped = parse_members(members)
    batch, warnings, meta = assemble_volume(decoded(parsed), max_volume_bytes=4 * GB, skipped=skipped)
    assert batch.hu.shape == ref.shape == (count, *ref.shape[1:])
    assert batch.hu.dtype == np.int16
    assert np.array_equal(batch.hu.astype(np.float64), ref)
    assert batch.hu.flags.c_contiguous
    for seed, hint in ((0, None), (1, count), (2, 5)):
        vol, w2, meta2 = _buffer_load(parsed, seed=seed, capacity_hint=hint, skipped=skipped)
        _same(vol, batch)
        assert vol.hu.flags.c_contiguous
        assert w2 == warnings and meta2 == meta
    assert meta["slices"] == count and meta["dimensions"] == [ref.shape[2], ref.shape[1], count]


def test_real_metadata_and_window():
    members = folder_members(real_series_dir("dcmqa-philips-headphantom-1mm"))
    parsed, skipped = parse_members(members)
    assert skipped == ["DIRFILE"]
    vol, warnings, meta = _buffer_load(parsed, seed=5, capacity_hint=None, skipped=skipped)
    assert _codes(warnings) == ["skipped_files"]
    assert meta["patient_name"] == "HEAD"
    assert meta["series_description"] == "STD BRAIN 1MM, iDose"
    assert meta["study_description"] == "1A TRAUMA/PLAIN HEAD DM"
    assert meta["modality"] == "CT"
    assert meta["dimensions"] == [512, 512, 140]
    assert vol.window == (40.0, 80.0)
    assert vol.nbytes == 512 * 512 * 140 * 2
    assert vol.dimensions == (512, 512, 140)


def test_preview_sorts_placed_slices_in_place():
    members = folder_members(real_series_dir("slicer-cthead-64px"))
    ref, order = independent_hu(members)
    parsed, _ = parse_members(members)
    items = parsed[:]
    random.Random(7).shuffle(items)
    buf = SliceBuffer(None, GB)
    assert buf.preview_volume() is None
    for h, data in items[:40]:
        buf.place(h.name, h, data)
    assert buf.placed == 40 and buf.nbytes == 40 * 64 * 64 * 2
    preview = buf.preview_volume()
    placed = sorted(order.index(h.name) for h, _ in items[:40])
    assert np.array_equal(preview.hu.astype(np.float64), ref[placed])
    assert preview.origin == (0.0, 0.0, 1.5 * placed[0])
    for h, data in items[40:]:
        buf.place(h.name, h, data)
    vol, _, _ = buf.finish()
    assert np.array_equal(vol.hu.astype(np.float64), ref)


def test_concurrent_placement_is_safe():
    members = folder_members(real_series_dir("slicer-cthead-64px"))
    ref, _ = independent_hu(members)
    parsed, _ = parse_members(members)
    buf = SliceBuffer(len(parsed), GB)
    chunks = [parsed[i::4] for i in range(4)]

    def worker(part):
        for h, data in part:
            buf.place(h.name, h, data)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    previews = [buf.preview_volume() for _ in range(5)]
    for t in threads:
        t.join()
    assert all(p is None or p.hu.shape[0] <= len(parsed) for p in previews)
    vol, _, _ = buf.finish()
    assert np.array_equal(vol.hu.astype(np.float64), ref)


# ------------------------------------------------------------------------------------------------ VTK
def test_vtk_image_is_zero_copy():
    """The renderer's vtkImageData wraps the volume's HU array without a copy (rendering.image.hu_to_vtk)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    from webviewer.rendering.image import VolumeGeometry, hu_to_vtk

    hu = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    direction = np.array([[1.0, 0, 0], [0, 0.9, 0.43589], [0, -0.43589, 0.9]])
    vol = CTVolume(hu, (0.5, 0.6, 2.0), (1.0, 2.0, 3.0), direction, (40.0, 400.0))
    image, array, _flat = hu_to_vtk(vol.hu, vol.spacing)
    assert image.GetDimensions() == (4, 3, 2)
    assert image.GetSpacing() == (0.5, 0.6, 2.0)
    m = VolumeGeometry.from_volume(vol).prop_matrix()  # origin and direction go on the prop
    assert [m.GetElement(r, 3) for r in range(3)] == [1.0, 2.0, 3.0]
    assert np.allclose([[m.GetElement(r, c) for c in range(3)] for r in range(3)], direction)
    scalars = vtk_to_numpy(image.GetPointData().GetScalars())
    assert np.shares_memory(scalars, vol.hu)
    vol.hu[1, 2, 3] = 1234
    assert image.GetPointData().GetScalars().GetValue(1 * 12 + 2 * 4 + 3) == 1234
    # i runs fastest: voxel (i=3, j=2, k=1)
    assert image.GetScalarComponentAsDouble(3, 2, 1, 0) == 1234
    del vol, scalars, hu, _flat
    gc.collect()
    assert image.GetScalarRange()[1] == 1234  # the array is still alive through the VTK side


# ------------------------------------------------------------------------------------------------ memory
def test_in_place_permutation_matches_fancy_indexing():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50):
        buf = rng.integers(-1000, 1000, size=(n + 3, 4, 5), dtype=np.int16)
        perm = rng.permutation(n).tolist()
        expected = buf[perm].copy()
        permute_slices_in_place(buf, perm)
        assert np.array_equal(buf[:n], expected)


def _slices(
    n: int, rows: int = 256, columns: int = 256, *, series_uid: str | None = None, z0: float = 0.0, **kw
):
    series_uid = series_uid or generate_uid()
    rng = np.random.default_rng(n + rows)
    out = []
    for k in range(n):
        px = rng.integers(0, 4095, size=(rows, columns), dtype=np.uint16)
        data = to_bytes(
            ct_dataset(
                rows=rows,
                columns=columns,
                position=(0, 0, z0 + k),
                pixels=px,
                signed=False,
                bits_stored=12,
                intercept=-1024,
                series_uid=series_uid,
                **kw,
            )
        )
        out.append((read_header(f"S{series_uid[-4:]}_{k}", data), data))
    return out


def test_finish_permutes_in_place_with_at_most_one_slice_temporary():
    parsed = _slices(40)
    slice_bytes = 256 * 256 * 2
    buf = SliceBuffer(None, GB)
    for h, data in reversed(parsed):  # worst case: every slot moves
        buf.place(h.name, h, data)
    tracemalloc.start()
    try:
        vol, _, _ = buf.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * slice_bytes, f"finish allocated {peak} bytes at peak; one slice is {slice_bytes}"
    batch, _, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    _same(vol, batch)


def test_preview_sort_allocates_at_most_one_slice():
    parsed = _slices(30)
    buf = SliceBuffer(30, GB)
    for h, data in reversed(parsed):
        buf.place(h.name, h, data)
    tracemalloc.start()
    try:
        preview = buf.preview_volume()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert preview.hu.shape == (30, 256, 256)
    assert peak < 2 * 256 * 256 * 2


def test_finished_volume_is_freed_when_dropped():
    parsed = _slices(5, 64, 64)
    buf = SliceBuffer(None, GB)
    for h, data in parsed:
        buf.place(h.name, h, data)
    vol, _, _ = buf.finish()
    ref = weakref.ref(vol.hu.base if vol.hu.base is not None else vol.hu)
    assert buf.nbytes == 0  # the buffer gave its references to the volume
    del vol
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------------------------------------ limits, growth
def test_limit_with_hint_never_allocates_above_the_limit():
    parsed = _slices(5, 64, 64)
    slice_bytes = 64 * 64 * 2
    buf = SliceBuffer(1000, slice_bytes * 3)  # the hint (e.g. a central-directory count) is above the limit
    for h, data in parsed[:3]:
        buf.place(h.name, h, data)
    assert buf.capacity == 3
    with pytest.raises(LimitExceededError, match="max_volume_bytes"):
        buf.place(parsed[3][0].name, *parsed[3])
    assert buf.placed == 3


def test_a_single_slice_above_the_limit_fails_before_allocating():
    parsed = _slices(1, 64, 64)
    buf = SliceBuffer(None, 100)
    with pytest.raises(LimitExceededError, match="max_volume_bytes"):
        buf.place(parsed[0][0].name, *parsed[0])
    assert buf.placed == 0 and buf.capacity == 0


def test_limit_without_hint_stops_growth():
    parsed = _slices(5, 64, 64)
    buf = SliceBuffer(None, 64 * 64 * 2 * 3)
    for h, data in parsed[:3]:
        buf.place(h.name, h, data)
    with pytest.raises(LimitExceededError):
        buf.place(parsed[3][0].name, *parsed[3])
    with pytest.raises(LimitExceededError):
        assemble_volume(decoded(parsed), max_volume_bytes=64 * 64 * 2 * 3)


def test_hint_too_small_grows():
    parsed = _slices(30, 32, 32)
    vol, _, _ = _buffer_load(parsed, seed=3, capacity_hint=2)
    batch, _, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    _same(vol, batch)


def test_empty_buffer_finish_is_a_dicom_error():
    with pytest.raises(DicomError):
        SliceBuffer(None, GB).finish()
    with pytest.raises(DicomError):
        assemble_volume([], max_volume_bytes=GB)


def test_close_drops_buffers_and_refuses_more():
    parsed = _slices(3, 32, 32)
    buf = SliceBuffer(None, GB)
    buf.place(parsed[0][0].name, *parsed[0])
    buf.close()
    assert buf.nbytes == 0 and buf.preview_volume() is None
    with pytest.raises(RuntimeError):
        buf.place(parsed[1][0].name, *parsed[1])


# ------------------------------------------------------------------------------------------------ series, dtype
def test_two_series_same_size_larger_wins_in_both_paths():
    big = _slices(6, 32, 32, z0=0.0)
    small = _slices(3, 32, 32, z0=0.5)
    parsed = big + small
    for seed in range(3):
        vol, warnings, meta = _buffer_load(parsed, seed=seed, capacity_hint=None)
        assert vol.hu.shape[0] == 6 and meta["series_uid"] == big[0][0].series_uid
        assert _codes(warnings) == ["multiple_series"]
    batch, bw, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    _same(vol, batch)
    assert bw == warnings


def test_larger_series_of_another_size_arriving_later_wins():
    first = _slices(3, 32, 32)
    later = _slices(5, 16, 16)
    buf = SliceBuffer(None, GB)
    for h, data in first + later:  # the buffer is shaped by the first (smaller) series
        buf.place(h.name, h, data)
    vol, warnings, meta = buf.finish()
    assert vol.hu.shape == (5, 16, 16)
    assert meta["series_uid"] == later[0][0].series_uid
    assert _codes(warnings) == ["multiple_series"]
    batch, _, _ = assemble_volume(decoded(first + later), max_volume_bytes=GB)
    _same(vol, batch)


def test_float_slice_promotes_buffer_to_float32():
    uid = generate_uid()
    ints = _slices(4, 16, 16, series_uid=uid)
    floats = _slices(2, 16, 16, series_uid=uid, z0=4.0, slope=0.5)
    parsed = ints + floats
    assert floats[0][0].hu_dtype == np.float32
    vol, _, _ = _buffer_load(parsed, seed=0, capacity_hint=None)
    assert vol.hu.dtype == np.float32
    batch, _, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    _same(vol, batch)


def test_promotion_by_a_losing_series_keeps_int16():
    ints = _slices(5, 16, 16)
    floats = _slices(2, 16, 16, z0=0.25, slope=0.5)
    vol, warnings, _ = _buffer_load(floats + ints, seed=1, capacity_hint=None)
    assert vol.hu.dtype == np.int16 and vol.hu.shape[0] == 5
    batch, _, _ = assemble_volume(decoded(floats + ints), max_volume_bytes=GB)
    _same(vol, batch)


def test_duplicate_and_gap_in_both_paths():
    uid = generate_uid()
    parsed = _slices(6, 16, 16, series_uid=uid) + _slices(1, 16, 16, series_uid=uid, z0=2.0)[:1]
    parsed = [p for p in parsed if p[0].position[2] != 4.0]  # a gap at z = 4
    vol, warnings, _ = _buffer_load(parsed, seed=2, capacity_hint=None)
    assert sorted(_codes(warnings)) == ["duplicate_positions", "missing_slices"]
    assert vol.hu.shape[0] == 5
    batch, bw, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    _same(vol, batch)
    assert bw == warnings


def test_slice_with_hu_beyond_int16_promotes_both_paths():
    uid = generate_uid()
    parsed = []
    for k in range(5):
        px = np.full((8, 8), 40 * k, dtype=np.int16)
        if k == 3:
            px[0, 0] = -32768  # -32768 - 1024 does not fit int16
        data = to_bytes(
            ct_dataset(rows=8, columns=8, position=(0, 0, k), pixels=px, intercept=-1024, series_uid=uid)
        )
        parsed.append((read_header(f"P{k}", data), data))
    assert all(h.hu_dtype == np.int16 for h, _ in parsed)
    for seed in range(3):
        vol, _, _ = _buffer_load(parsed, seed=seed, capacity_hint=None)
        assert vol.hu.dtype == np.float32 and vol.hu[3, 0, 0] == -33792.0
    batch, _, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    _same(vol, batch)
    # without the overflowing slice both paths stay int16
    rest = parsed[:3] + parsed[4:]
    vol, _, _ = _buffer_load(rest, seed=0, capacity_hint=None)
    assert vol.hu.dtype == np.int16
    _same(vol, assemble_volume(decoded(rest), max_volume_bytes=GB)[0])
