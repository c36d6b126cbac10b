"""Series selection and slice geometry, shared by every load path (PoC2 SliceBuffer and assemble_volume).

One function, :func:`plan_volume`, decides which slices make the volume and in which order, and which warnings
the user sees. Both paths call it on the same headers, so they produce the same volume bit for bit; every choice
is made from arrival-independent keys (never file name, never InstanceNumber, never arrival order).

- Series: slices are grouped by SeriesInstanceUID + Rows/Columns + ImageOrientationPatient (within 1e-3); the
  largest group wins (ties: the smaller series UID), the others are named in ``multiple_series``.
- Order: ImagePositionPatient projected on the normal n = row x column of ImageOrientationPatient, ascending.
- Spacing: x = PixelSpacing[1] (column spacing), y = PixelSpacing[0], z = median step along n.
- Origin: the first sorted slice's ImagePositionPatient. Direction: columns (row, column, n), so that
  origin + k * spacing_z * n is slice k (exactly, unless the warnings below say otherwise).

Warning codes (stable) and thresholds:

- ``gantry_tilt``: the first->last position vector is more than 0.5 deg off the normal (angle in the message);
  the volume is stacked along n without shear correction.
- ``irregular_spacing``: a step differs from the median by more than 1 % (a gap that is a whole multiple of the
  median is reported as missing slices instead).
- ``missing_slices``: a step longer than 1.5x the median.
- ``duplicate_positions``: slices within 1e-3 mm along n; one per position is kept (smallest SOPInstanceUID).
- ``multiple_series``: see above.
- ``skipped_files``: built from the ``skipped`` names the pipeline passes (count + the first 5 names).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from webviewer.loading.dicom import SliceHeader

#: the slice normal and the position steps may differ by this many degrees before ``gantry_tilt``
TILT_TOLERANCE_DEG = 0.5
#: a step may differ from the usual (median) step by this fraction before ``irregular_spacing``
SPACING_TOLERANCE = 0.01
#: a step longer than this many usual steps is a gap: ``missing_slices``
GAP_FACTOR = 1.5
#: positions along the normal closer than this (mm) are the same position: ``duplicate_positions``
DUPLICATE_TOLERANCE_MM = 1e-3
#: how many names a message lists before "and N more"
NAMES_IN_MESSAGE = 5


@dataclass
class LoadWarning:
    """An irregularity the user must see; the volume was loaded anyway."""

    code: str
    message: str

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class VolumePlan:
    """Which slices make the volume, in which order, and where the volume sits in patient space."""

    #: indices into the header list given to :func:`plan_volume`, in volume order (k = 0 .. n-1)
    order: list[int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    warnings: list[LoadWarning] = field(default_factory=list)
    #: header indices of the chosen series that were dropped (duplicate positions)
    dropped: list[int] = field(default_factory=list)

    @property
    def slices(self) -> int:
        return len(self.order)


#: orientations (direction cosines) closer than this stack together
ORIENTATION_TOLERANCE = 1e-3


def _canonical(h: SliceHeader) -> tuple:
    """An arrival-independent sort key for a slice."""
    return (h.series_uid, h.rows, h.columns, h.orientation, h.sop_uid, h.position, h.name)


def group_slices(headers: Sequence[SliceHeader]) -> list[list[int]]:
    """Groups of stackable slices (same series UID, size and orientation within ORIENTATION_TOLERANCE).

    Each group lists header indices in canonical order, so the grouping never depends on arrival order.
    """
    groups: dict[tuple, list[list[int]]] = {}
    for i in sorted(range(len(headers)), key=lambda i: _canonical(headers[i])):
        h = headers[i]
        clusters = groups.setdefault((h.series_uid, h.rows, h.columns), [])
        for cluster in clusters:
            ref = headers[cluster[0]].orientation
            if max(abs(a - b) for a, b in zip(ref, h.orientation, strict=True)) <= ORIENTATION_TOLERANCE:
                cluster.append(i)
                break
        else:
            clusters.append([i])
    return [cluster for clusters in groups.values() for cluster in clusters]


def choose_group(headers: Sequence[SliceHeader]) -> tuple[list[int], list[LoadWarning]]:
    """Indices of the largest group of stackable slices (canonical order), and a ``multiple_series`` warning.

    Ties go to the group whose first slice sorts first (series UID, ...), so the choice never depends on
    arrival order.
    """
    groups = group_slices(headers)
    if not groups:
        return [], []
    ranked = sorted(groups, key=lambda idx: (-len(idx), _canonical(headers[idx[0]])))
    chosen = ranked[0]
    warnings: list[LoadWarning] = []
    if len(ranked) > 1:
        h0 = headers[chosen[0]]
        others = []
        for idx in ranked[1:]:
            h = headers[idx[0]]
            what = f"{h.series_description or 'unnamed'!r} ({len(idx)} images of {h.columns}x{h.rows}"
            if h.series_uid == h0.series_uid:
                what += ", same series UID but another size or orientation"
            others.append(f"{what}, UID {h.series_uid})")
        warnings.append(
            LoadWarning(
                "multiple_series",
                f"The archive holds {len(ranked)} series; loaded {h0.series_description or 'unnamed'!r} "
                f"({len(chosen)} slices, UID {h0.series_uid}) and ignored " + "; ".join(others) + ". "
                "Export one series per archive to choose another.",
            )
        )
    return chosen, warnings


def skipped_files_warning(skipped: Sequence[str]) -> LoadWarning | None:
    """The ``skipped_files`` warning for non-image members (DICOMDIR, junk), or None."""
    if not skipped:
        return None
    names = ", ".join(skipped[:NAMES_IN_MESSAGE])
    more = f" and {len(skipped) - NAMES_IN_MESSAGE} more" if len(skipped) > NAMES_IN_MESSAGE else ""
    return LoadWarning(
        "skipped_files",
        f"Skipped {len(skipped)} file(s) that are not CT image slices: {names}{more}.",
    )


def slice_normal(orientation: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and normal (row x column) from ImageOrientationPatient."""
    o = np.asarray(orientation, dtype=np.float64)
    row, col = o[:3], o[3:6]
    row = row / (np.linalg.norm(row) or 1.0)
    col = col / (np.linalg.norm(col) or 1.0)
    normal = np.cross(row, col)
    normal = normal / (np.linalg.norm(normal) or 1.0)
    return row, col, normal


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def plan_volume(headers: Sequence[SliceHeader], *, skipped: Sequence[str] = ()) -> VolumePlan:
    """Choose the series, sort its slices along the normal, and derive spacing, origin, direction, warnings.

    Sorting is by ImagePositionPatient projected on the normal of ImageOrientationPatient (never file name,
    never InstanceNumber); ties sort by SOPInstanceUID so the order does not depend on arrival order.
    Slices at duplicate positions are dropped (the first by SOPInstanceUID is kept) and reported.
    ``skipped`` names non-image files; they become one ``skipped_files`` warning.
    """
    if not headers:
        raise ValueError("plan_volume needs at least one slice header")
    chosen, warnings = choose_group(headers)
    first = headers[chosen[0]]
    row, col, normal = slice_normal(first.orientation)
    pos = {i: float(np.dot(np.asarray(headers[i].position, dtype=np.float64), normal)) for i in chosen}
    ranked = sorted(chosen, key=lambda i: (pos[i], headers[i].sop_uid, headers[i].position))

    order: list[int] = []
    dropped: list[int] = []
    for i in ranked:
        if order and abs(pos[i] - pos[order[-1]]) <= DUPLICATE_TOLERANCE_MM:
            dropped.append(i)
        else:
            order.append(i)
    if dropped:
        where = ", ".join(f"{pos[i]:.2f}" for i in dropped[:NAMES_IN_MESSAGE])
        warnings.append(
            LoadWarning(
                "duplicate_positions",
                f"{len(dropped)} slice(s) share a position with another slice (at {where} mm along the normal); "
                "kept one slice per position. The series may mix several acquisitions or phases.",
            )
        )

    d = np.array([pos[i] for i in order])
    steps = np.diff(d)
    step = float(np.median(steps)) if steps.size else float(first.slice_thickness or 1.0)
    step = step if step > 0 else 1.0

    if steps.size:
        warnings.extend(_spacing_warnings(steps, step))
        tilt = _tilt_warning(headers, order, normal)
        if tilt:
            warnings.insert(0, tilt)

    w = skipped_files_warning(list(skipped))
    if w:
        warnings.append(w)

    origin = tuple(float(v) for v in headers[order[0]].position)
    direction = np.column_stack([row, col, normal])
    spacing = (float(first.pixel_spacing[1]), float(first.pixel_spacing[0]), step)
    return VolumePlan(order, spacing, origin, direction, warnings, dropped)  # type: ignore[arg-type]


def _spacing_warnings(steps: np.ndarray, step: float) -> list[LoadWarning]:
    out: list[LoadWarning] = []
    gaps = steps > GAP_FACTOR * step
    if gaps.any():
        big = steps[gaps]
        sizes = ", ".join(_fmt(s) for s in big[:NAMES_IN_MESSAGE]) + (
            ", ..." if big.size > NAMES_IN_MESSAGE else ""
        )
        ratios = big / step
        if np.all(np.abs(ratios - np.rint(ratios)) <= 0.1):  # whole multiples of the step: slices are missing
            guess = f"about {int(np.sum(np.rint(ratios) - 1))} slice(s) missing"
        else:
            guess = "slices may be missing, or the spacing changes within the series"
        out.append(
            LoadWarning(
                "missing_slices",
                f"{int(gaps.sum())} gap(s) of {sizes} mm, more than {GAP_FACTOR}x the usual step of {_fmt(step)} mm "
                f"({guess}). The volume is stacked at the usual step, so anatomy beyond a gap is shifted.",
            )
        )
    # a gap that is a whole multiple of the step is explained by missing slices, not irregular spacing
    multiple = np.maximum(np.rint(steps / step), 1.0)
    whole_gap = gaps & (np.abs(steps - multiple * step) <= SPACING_TOLERANCE * multiple * step)
    off = (np.abs(steps - step) > SPACING_TOLERANCE * step) & ~whole_gap
    if off.any():
        out.append(
            LoadWarning(
                "irregular_spacing",
                f"Slice spacing is irregular: steps range from {_fmt(float(steps.min()))} to "
                f"{_fmt(float(steps.max()))} mm ({int(off.sum())} of {steps.size} steps differ by more than "
                f"{SPACING_TOLERANCE:.0%} from {_fmt(step)} mm). The volume uses {_fmt(step)} mm; "
                "distances along the slice axis are approximate.",
            )
        )
    return out


def _tilt_warning(headers: Sequence[SliceHeader], order: list[int], normal: np.ndarray) -> LoadWarning | None:
    a = np.asarray(headers[order[0]].position, dtype=np.float64)
    b = np.asarray(headers[order[-1]].position, dtype=np.float64)
    delta = b - a
    length = float(np.linalg.norm(delta))
    if length == 0.0:
        return None
    cos = min(1.0, abs(float(np.dot(delta, normal))) / length)
    angle = math.degrees(math.acos(cos))
    if angle <= TILT_TOLERANCE_DEG:
        return None
    return LoadWarning(
        "gantry_tilt",
        f"Gantry tilt: slice positions advance {angle:.1f}° away from the slice normal. The volume is "
        "stacked along the normal without shear correction, so sagittal and coronal views are sheared.",
    )
