"""The volume allocator and memfd segments: every array that becomes a volume (PoC2's stack, its growth and
promotion, the narrowing back to int16, the assembled volume) comes from the installed allocator, gives the same
volume as np.empty, and its segment is freed with the last view."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
from dicom_helpers import decoded
from test_volume import _buffer_load, _same, _slices

from webviewer.loading.allocator import allocate_volume, set_volume_allocator
from webviewer.loading.shm import SegmentAllocator, map_array
from webviewer.loading.volume import assemble_volume

GB = 1 << 30


@pytest.fixture
def shared():
    allocator = SegmentAllocator()
    set_volume_allocator(allocator)
    yield allocator
    set_volume_allocator(None)
    gc.collect()
    assert allocator.live_segments() == 0


def test_a_view_of_a_segment_maps_elsewhere_to_the_same_voxels_and_its_segment_goes_with_it(shared):
    arr = allocate_volume((5, 8, 8), np.int16)
    arr[...] = np.arange(arr.size, dtype=np.int16).reshape(arr.shape)
    place, fd = shared.locate(arr[2:])
    other = map_array(os.dup(fd), place)  # what the app does with the fd it receives
    assert np.array_equal(other, arr[2:]) and not other.flags.owndata
    other[0, 0, 0] = -7  # the same pages: no copy
    assert arr[2, 0, 0] == -7
    assert shared.locate(np.empty(3)) is None and shared.live_segments() == 1
    del arr, other
    gc.collect()
    assert shared.live_segments() == 0


@pytest.mark.parametrize("case", ["grow", "promote", "narrow", "assemble"])
def test_each_volume_path_allocates_in_shared_memory_and_matches_np_empty(shared, case):
    uid = "1.2.826.0.1.3680043.8.498.1"
    if case == "grow":  # more slices than the hint: the stack grows (a new segment)
        parsed, hint = _slices(12, 16, 16), 2
    elif case == "promote":  # a float slice of the winning series: the stack becomes float32
        parsed, hint = _slices(4, 16, 16, series_uid=uid) + _slices(2, 16, 16, series_uid=uid, z0=4.0,
                                                                     slope=0.5), None
    else:  # a losing series promotes the stack; the winner goes back to int16 (narrow); or Batch's assembly
        parsed, hint = _slices(2, 16, 16, z0=0.25, slope=0.5) + _slices(5, 16, 16), None
    if case == "assemble":
        got, _, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    else:
        got, _, _ = _buffer_load(parsed, seed=3, capacity_hint=hint)
    assert shared.locate(got.hu) is not None  # the volume is a view of a segment
    set_volume_allocator(None)
    if case == "assemble":
        want, _, _ = assemble_volume(decoded(parsed), max_volume_bytes=GB)
    else:
        want, _, _ = _buffer_load(parsed, seed=3, capacity_hint=hint)
    assert shared.locate(want.hu) is None
    _same(got, want)
    del got
