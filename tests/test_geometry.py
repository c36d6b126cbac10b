"""geometry.py: series choice, sort along the normal, spacing/origin/direction, stable warnings."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from dicom_helpers import folder_members, parse_members
from realdata import real_series_dir

from webviewer.loading.dicom import SliceHeader
from webviewer.loading.geometry import LoadWarning, plan_volume, slice_normal

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def header(
    z: float,
    *,
    series: str = "1.2.3",
    sop: str | None = None,
    rows: int = 4,
    columns: int = 4,
    orientation=AXIAL,
    position=None,
    spacing=(0.5, 0.7),
    description: str = "S",
) -> SliceHeader:
    return SliceHeader(
        name=f"IM{z}",
        series_uid=series,
        sop_uid=sop or f"{series}.{z}",
        position=position or (10.0, 20.0, z),
        orientation=orientation,
        pixel_spacing=spacing,
        rows=rows,
        columns=columns,
        rescale_slope=1.0,
        rescale_intercept=-1024.0,
        hu_dtype=np.dtype(np.int16),
        transfer_syntax="1.2.840.10008.1.2.1",
        window=None,
        bits_allocated=16,
        bits_stored=12,
        pixel_representation=0,
        pixel_offset=0,
        series_description=description,
    )


def codes(warnings: list[LoadWarning]) -> list[str]:
    return [w.code for w in warnings]


def test_sorted_by_position_not_by_input_order():
    zs = [5.0 + 1.25 * k for k in range(20)]
    shuffled = zs[:]
    random.Random(3).shuffle(shuffled)
    headers = [header(z) for z in shuffled]
    plan = plan_volume(headers)
    assert [headers[i].position[2] for i in plan.order] == zs
    assert plan.spacing == (0.7, 0.5, 1.25)  # x = column spacing = PixelSpacing[1]
    assert plan.origin == (10.0, 20.0, 5.0)
    assert np.allclose(plan.direction, np.eye(3))
    assert plan.warnings == []


def test_descending_normal_is_followed():
    """Feet-first-like orientation (normal = -z): order along the normal, origin at the first along it."""
    orientation = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # row x col = -z
    headers = [header(z, orientation=orientation) for z in (0.0, 2.0, 1.0, 3.0)]
    plan = plan_volume(headers)
    assert [headers[i].position[2] for i in plan.order] == [3.0, 2.0, 1.0, 0.0]
    assert plan.spacing[2] == pytest.approx(1.0)
    origin = np.array(plan.origin)
    for k, i in enumerate(plan.order):
        assert np.allclose(origin + k * plan.spacing[2] * plan.direction[:, 2], headers[i].position)
    assert np.allclose(plan.direction[:, 2], [0, 0, -1])


def test_gap_gives_missing_slices():
    zs = [0, 1, 2, 3, 5, 6, 7]  # 4 is missing
    plan = plan_volume([header(float(z)) for z in zs])
    assert codes(plan.warnings) == ["missing_slices"]
    assert "1 slice(s) missing" in plan.warnings[0].message
    assert plan.spacing[2] == 1.0


def test_duplicates_are_dropped_and_reported():
    headers = [header(z) for z in (0.0, 1.0, 2.0, 3.0)] + [header(2.0, sop="1.2.3.dup")]
    plan = plan_volume(headers)
    assert codes(plan.warnings) == ["duplicate_positions"]
    assert plan.slices == 4
    assert len(plan.dropped) == 1
    # the slice kept at a duplicate position does not depend on arrival order
    again = plan_volume(list(reversed(headers)))
    assert [headers[i].sop_uid for i in plan.order] == [
        list(reversed(headers))[i].sop_uid for i in again.order
    ]


def test_irregular_spacing():
    plan = plan_volume([header(z) for z in (0.0, 1.0, 2.0, 3.1, 4.1, 5.1)])
    assert codes(plan.warnings) == ["irregular_spacing"]
    assert "1.1" in plan.warnings[0].message


def test_spacing_jitter_below_one_percent_is_regular():
    plan = plan_volume([header(z) for z in (0.0, 1.0, 2.005, 3.0, 4.0)])
    assert plan.warnings == []


def test_two_series_pick_the_larger_and_warn():
    small = [header(float(z), series="9.9", description="Scout") for z in range(3)]
    large = [header(float(z), series="1.1", description="Axial") for z in range(5)]
    headers = small + large
    random.Random(1).shuffle(headers)
    plan = plan_volume(headers)
    assert {headers[i].series_uid for i in plan.order} == {"1.1"}
    assert codes(plan.warnings) == ["multiple_series"]
    assert "Scout" in plan.warnings[0].message and "9.9" in plan.warnings[0].message


def test_same_series_other_size_is_another_group():
    headers = [header(float(z)) for z in range(5)] + [header(0.0, rows=8, columns=8, sop="x")]
    plan = plan_volume(headers)
    assert plan.slices == 5
    assert codes(plan.warnings) == ["multiple_series"]


def test_gantry_tilt_reports_the_angle():
    tilt = math.radians(18.5)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), -math.sin(tilt))
    headers = [header(z, orientation=orientation) for z in (0.0, 4.0, 8.0, 12.0)]
    plan = plan_volume(headers)
    assert codes(plan.warnings) == ["gantry_tilt"]
    assert "18.5°" in plan.warnings[0].message
    assert plan.spacing[2] == pytest.approx(4.0 * math.cos(tilt))


def test_skipped_files_warning_lists_names():
    plan = plan_volume([header(0.0), header(1.0)], skipped=[f"junk{i}" for i in range(7)])
    assert codes(plan.warnings) == ["skipped_files"]
    msg = plan.warnings[0].message
    assert "7 file(s)" in msg and "junk0" in msg and "2 more" in msg


def test_single_slice_uses_thickness_or_one():
    plan = plan_volume([header(3.0)])
    assert plan.slices == 1 and plan.spacing[2] == 1.0 and plan.warnings == []


def test_normal_is_row_cross_column():
    _row, _col, n = slice_normal((0, 1, 0, 0, 0, -1))  # sagittal
    assert np.allclose(n, [-1, 0, 0])


# ------------------------------------------------------------------------------------------------ real data
def _real_plan(name: str):
    parsed, skipped = parse_members(folder_members(real_series_dir(name)))
    return plan_volume([h for h, _ in parsed], skipped=skipped), [h for h, _ in parsed]


def test_slicer_series_has_no_warnings():
    plan, _ = _real_plan("slicer-cthead-64px")
    assert plan.warnings == []
    assert plan.slices == 93
    assert plan.spacing == (3.2, 3.2, pytest.approx(1.5))
    assert plan.origin == (0.0, 0.0, 0.0)


def test_philips_series_only_warns_about_dirfile():
    plan, _ = _real_plan("dcmqa-philips-headphantom-1mm")
    assert codes(plan.warnings) == ["skipped_files"]
    assert "DIRFILE" in plan.warnings[0].message
    assert plan.slices == 140
    assert plan.spacing[2] == pytest.approx(1.0, abs=1e-6)
    assert plan.origin == (-115.5, -1.85, 694.21)


def test_ge_series_warns_gantry_tilt_and_irregular_spacing():
    plan, headers = _real_plan("dcmqa-ge-head-gantrytilt")
    found = codes(plan.warnings)
    assert "gantry_tilt" in found and "irregular_spacing" in found
    assert "duplicate_positions" not in found and "multiple_series" not in found
    tilt = next(w for w in plan.warnings if w.code == "gantry_tilt")
    assert "18.5°" in tilt.message
    assert plan.slices == 28
    # InstanceNumber runs inferior to superior along the normal here, so the sort reproduces it
    assert [headers[i].instance_number for i in plan.order] == list(range(1, 29))
    assert np.allclose(plan.direction[:, 1], [0, 0.9483237, -0.3173047], atol=1e-6)
    assert plan.direction[:, 2] @ plan.direction[:, 1] == pytest.approx(0.0, abs=1e-9)


def test_orientation_jitter_is_one_group_and_the_plan_ignores_arrival_order():
    rng = random.Random(9)
    headers = []
    for k in range(12):
        jitter = 0.0005 + rng.uniform(-2e-6, 2e-6)  # straddles a 3-decimal rounding boundary
        orientation = (1.0, jitter, 0.0, 0.0, 1.0, jitter)
        headers.append(header(1.1 * k + rng.uniform(-1e-4, 1e-4), orientation=orientation))
    plans = []
    for seed in range(4):
        shuffled = headers[:]
        random.Random(seed).shuffle(shuffled)
        plan = plan_volume(shuffled)
        plans.append(
            (plan.spacing, plan.origin, plan.direction.tobytes(), [shuffled[i].sop_uid for i in plan.order])
        )
        assert "multiple_series" not in codes(plan.warnings)
        assert plan.slices == 12
    assert all(p == plans[0] for p in plans)
