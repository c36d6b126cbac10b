"""The synthetic chest phantom: what a series looks like (``SeriesSpec``) and its HU per slice.

The phantom is defined in patient coordinates scaled to the field of view, so any size shows a whole chest and a
tilted series images the same body. Noise is deterministic per (seed, slice).
Changing the output here? Bump ``samples.GENERATOR_VERSION`` so cached samples are regenerated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

#: short names accepted for ``SeriesSpec.transfer_syntax`` besides the UIDs themselves
TRANSFER_SYNTAXES: dict[str, str] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "jpegls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
}
COMPRESSED_SYNTAXES = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})


@dataclass
class SeriesSpec:
    """What to generate. The phantom scales with the field of view, so any size shows a whole chest."""

    rows: int = 64
    columns: int = 64
    slices: int = 48
    pixel_spacing: tuple[float, float] = (0.75, 0.75)  # DICOM order: (row spacing, column spacing) mm
    slice_spacing: float = 1.25  # mm along the slice normal
    positions: list[float] | None = None  # explicit positions along the normal (gaps, duplicates, uneven)
    gantry_tilt_deg: float = 0.0  # tilts IOP about x; IPP still steps along z only (like GE)
    transfer_syntax: str = ExplicitVRLittleEndian  # UID or a key of TRANSFER_SYNTAXES
    rescale_slope: float = 1.0
    rescale_intercept: float = -1024.0
    bits_stored: int = 12
    pixel_representation: int | None = None  # None: unsigned if the intercept maps air >= 0, else signed
    series_uid: str | None = None  # generated if None
    study_uid: str | None = None
    description: str = "Synthetic chest CT"
    patient_name: str = "SYNTHETIC^PHANTOM"
    seed: int = 0  # deterministic noise
    noise_sigma: float = 15.0  # HU
    window: tuple[float, float] = (40.0, 400.0)  # (center, width)
    first_position: float | None = None  # position of the first slice; default centres the series on z=0

    # -- derived values -------------------------------------------------------------------------------------
    @property
    def transfer_syntax_uid(self) -> str:
        """The transfer syntax as a UID string."""
        return TRANSFER_SYNTAXES.get(self.transfer_syntax.lower(), self.transfer_syntax)

    @property
    def signed(self) -> bool:
        """PixelRepresentation 1?"""
        if self.pixel_representation is not None:
            return bool(self.pixel_representation)
        return (-1024.0 - self.rescale_intercept) / self.rescale_slope < 0

    def slice_positions(self) -> list[float]:
        """Positions along the slice normal, in acquisition (InstanceNumber) order."""
        if self.positions is not None:
            return [float(p) for p in self.positions]
        start = self.first_position
        if start is None:
            start = -0.5 * (self.slices - 1) * self.slice_spacing
        return [start + k * self.slice_spacing for k in range(self.slices)]

    @property
    def n_slices(self) -> int:
        return len(self.positions) if self.positions is not None else self.slices

    def orientation(self) -> tuple[float, float, float, float, float, float]:
        """ImageOrientationPatient: axial, rotated about x by the gantry tilt (GE sign convention)."""
        t = math.radians(self.gantry_tilt_deg)
        return (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))

    def image_position(self, index: int) -> tuple[float, float, float]:
        """ImagePositionPatient of slice ``index``: x, y fixed; z steps so the normal step is the spacing."""
        rs, cs = self.pixel_spacing
        x0 = -0.5 * (self.columns - 1) * cs
        y0 = -0.5 * (self.rows - 1) * rs * math.cos(math.radians(self.gantry_tilt_deg))
        z = self.slice_positions()[index] / math.cos(math.radians(self.gantry_tilt_deg))
        return (x0, y0, z)

    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest stored pixel value for BitsStored / PixelRepresentation."""
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


# ------------------------------------------------------------------------------------------------- phantom
class _Canvas:
    """Paints ellipses into a HU image, each only inside its bounding box (cheap for small structures)."""

    def __init__(self, hu: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.hu, self.x, self.y = hu, x, y
        self.xv, self.yv = x[0], y[:, 0]  # both ascending

    def _span(self, axis: np.ndarray, lo, hi) -> slice:
        return slice(int(np.searchsorted(axis, np.min(lo))), int(np.searchsorted(axis, np.max(hi), "right")))

    def ellipse(self, cx, cy, ax, ay, value, where: np.ndarray | None = None) -> None:
        """Paint ``value`` where ((x-cx)/ax)^2 + ((y-cy)/ay)^2 <= 1 (and ``where``); arrays are (rows, 1)."""
        rows = self._span(self.yv, np.subtract(cy, ay), np.add(cy, ay))
        cols = self._span(self.xv, np.subtract(cx, ax), np.add(cx, ax))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return

        def cut(a):
            a = np.asarray(a)
            if a.ndim < 2:
                return a
            return a[rows, cols] if a.shape[1] > 1 else a[rows]

        mask = ((self.x[:, cols] - cut(cx)) / cut(ax)) ** 2 + ((self.y[rows] - cut(cy)) / cut(ay)) ** 2 <= 1.0
        if where is not None:
            mask &= cut(where)
        target = self.hu[rows, cols]
        np.copyto(target, np.broadcast_to(cut(value), target.shape), where=mask, casting="unsafe")


def _phantom_geometry(spec: SeriesSpec, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Patient coordinates (x: (1, cols), y: (rows, 1), z: (rows, 1)) in units of the half field of view."""
    rs, cs = spec.pixel_spacing
    x0, y0, z0 = spec.image_position(index)
    iop = spec.orientation()
    cols = np.arange(spec.columns, dtype=np.float32)
    rows = np.arange(spec.rows, dtype=np.float32)
    half = 0.5 * min(spec.columns * cs, spec.rows * rs)
    x = (x0 + cols * cs * iop[0]) / half
    y = (y0 + rows * rs * iop[4]) / half
    z = z0 + rows * rs * iop[5]  # mm
    positions = spec.slice_positions()
    zc = 0.5 * (min(positions) + max(positions))
    extent = max(max(positions) - min(positions), 200.0)
    return x[None, :], y[:, None], z[:, None], zc, extent


def phantom_hu(spec: SeriesSpec, index: int) -> np.ndarray:
    """HU of slice ``index`` as (rows, columns) int16, noise included, quantised to what the file can store.

    Decoding the written file (stored * slope + intercept) gives exactly these values when that is integral
    (slope 1 or 2 with an integral intercept, say).

    The phantom is defined in patient coordinates scaled to the field of view, so a tilted series images the
    same body. Anterior is up (low y), the patient's left is right (high x), as in LPS with an axial IOP.
    """
    x, y, z, zc, extent = _phantom_geometry(spec, index)
    w = (z - zc) / extent  # about -0.5 .. 0.5 along the series, (rows, 1)
    shape = (spec.rows, spec.columns)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    c = _Canvas(hu, x, y)
    _draw_table_and_body(c, hu, x, y, w)
    _draw_ribs(c, z, w)
    _draw_lungs(c, y, w)
    _draw_heart_and_vessels(c, w)
    _draw_spine(c, x, y, z)
    if spec.noise_sigma > 0:  # deterministic per (seed, slice)
        rng = np.random.default_rng([spec.seed, index])
        hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(spec.noise_sigma)
    return _quantised(spec, hu)


#: the body ellipse: half-axes and centre (fractions of the field of view)
_BODY_X, _BODY_Y, _BODY_CY = 0.88, 0.62, 0.06


def _draw_table_and_body(c: _Canvas, hu: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
    """Patient table under the body; skin, subcutaneous fat, soft tissue; the liver in the lower part."""
    np.copyto(hu, np.float32(120.0), where=(y >= 0.74) & (y <= 0.78) & (np.abs(x) <= 0.8))
    bx, by, bcy = _BODY_X, _BODY_Y, _BODY_CY
    c.ellipse(0, bcy, bx, by, 30.0)
    c.ellipse(0, bcy, bx - 0.015, by - 0.015, -100.0)
    c.ellipse(0, bcy, bx - 0.09, by - 0.08, 40.0)
    c.ellipse(-0.3, 0.05, 0.45, 0.4, 60.0, where=w < -0.25)  # right side of the patient = low x


def _draw_ribs(c: _Canvas, z: np.ndarray, w: np.ndarray) -> None:
    """Small oval bones on a ring inside the fat, in oblique bands along z."""
    bx, by, bcy = _BODY_X, _BODY_Y, _BODY_CY
    for k in range(-7, 8):
        ang = math.pi * (0.5 + k / 8.5)
        rx, ry = (bx - 0.13) * math.cos(ang), bcy - (by - 0.11) * math.sin(ang)
        if ry > 0.45:
            continue
        band = (np.cos(2 * np.pi * (z / 26.0 + 0.08 * abs(k))) > 0.55) & (np.abs(w) < 0.45)
        if not band.any():
            continue
        c.ellipse(rx, ry, 0.035, 0.03, 1150.0, where=band)
        c.ellipse(rx, ry, 0.022, 0.018, 450.0, where=band)


def _draw_lungs(c: _Canvas, y: np.ndarray, w: np.ndarray) -> None:
    """Lungs that taper at the apex and base, denser posteriorly (dependent), with a few vessels."""
    taper = np.clip(1.0 - ((w + 0.05) / 0.42) ** 4, 0.0, 1.0) ** 0.5
    present = taper > 0.02
    if not present.any():
        return
    for side in (-1.0, 1.0):
        lx, ly = side * 0.36, 0.0
        c.ellipse(lx, ly, 0.25 * taper + 1e-6, 0.36 * taper + 1e-6, -870.0 + 50.0 * y, where=present)
        for vx, vy in ((0.1, -0.1), (0.05, 0.15), (0.16, 0.05)):
            c.ellipse(lx + side * vx * taper, ly + vy * taper, 0.012, 0.012, 30.0, where=present)


def _draw_heart_and_vessels(c: _Canvas, w: np.ndarray) -> None:
    """Heart with a contrast blood pool (lower half of the chest), ascending and descending aorta, sternum."""
    heart = (w < 0.05) & (w > -0.35)
    c.ellipse(0.08, -0.08, 0.26, 0.2, 45.0, where=heart)
    c.ellipse(0.1, -0.1, 0.14, 0.1, 220.0, where=heart)
    c.ellipse(-0.06, -0.1, 0.07, 0.07, 250.0, where=w > -0.1)
    c.ellipse(0.1, 0.26, 0.055, 0.055, 250.0)
    c.ellipse(0.0, -0.47, 0.06, 0.025, 700.0, where=w > -0.3)


def _draw_spine(c: _Canvas, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
    """Vertebral body (discs between), canal, arch, spinous process."""
    disc = np.mod(z, 28.0) < 6.0
    c.ellipse(0.0, 0.4, 0.12, 0.1, 1200.0)
    c.ellipse(0.0, 0.4, 0.1, 0.08, 380.0 + 40.0 * np.cos(37.0 * x) * np.cos(41.0 * y))
    c.ellipse(0.0, 0.4, 0.12, 0.1, 90.0, where=disc)
    c.ellipse(0.0, 0.57, 0.085, 0.075, 900.0)
    c.ellipse(0.0, 0.57, 0.045, 0.04, 15.0)
    c.ellipse(0.0, 0.7, 0.025, 0.07, 1000.0)


def _quantised(spec: SeriesSpec, hu: np.ndarray) -> np.ndarray:
    """Quantise to what the file stores, so decoding the file gives back exactly these values (int16)."""
    lo, hi = spec.stored_range()
    slope, intercept = np.float32(spec.rescale_slope), np.float32(spec.rescale_intercept)
    stored = np.clip(np.rint((hu - intercept) / slope), lo, hi)
    hu = np.rint(stored * slope + intercept)
    return np.clip(hu, -32768, 32767).astype(np.int16)


def stored_pixels(spec: SeriesSpec, hu: np.ndarray) -> np.ndarray:
    """Stored values for HU: ``round((hu - intercept) / slope)`` as (u)int16."""
    lo, hi = spec.stored_range()
    stored = np.rint((hu.astype(np.float32) - spec.rescale_intercept) / spec.rescale_slope)
    np.clip(stored, lo, hi, out=stored)
    return stored.astype(np.int16 if spec.signed else np.uint16)


def spec_with(spec: SeriesSpec, **changes) -> SeriesSpec:
    """A copy of ``spec`` with fields changed (convenience for tests)."""
    return replace(spec, **changes)


def iter_slice_hu(spec: SeriesSpec) -> Iterator[np.ndarray]:
    """HU of every slice in acquisition order (what the files hold, decoded)."""
    for k in range(spec.n_slices):
        yield phantom_hu(spec, k)
