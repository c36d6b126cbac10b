"""Window/level presets for the 2D panes and volume-rendering presets for the 3D pane (values in HU).

Window presets are OHIF's (width/level). Volume presets are taken from 3D Slicer's
``Modules/Loadable/VolumeRendering/Resources/presets.xml`` (same names VolView and OHIF use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: name -> (width, level); "auto" is computed from the volume (see :func:`auto_window`)
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "soft-tissue": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "bone": (2500.0, 480.0),
    "brain": (80.0, 40.0),
}
WINDOW_PRESET_NAMES: tuple[str, ...] = (*WINDOW_PRESETS, "auto")


@dataclass(frozen=True)
class VolumePreset:
    """Transfer functions and lighting of one volume-rendering preset."""

    name: str
    color: tuple[tuple[float, float, float, float], ...]  # (HU, r, g, b)
    opacity: tuple[tuple[float, float], ...]  # (HU, alpha)
    shade: bool = True
    ambient: float = 0.1
    diffuse: float = 0.9
    specular: float = 0.2
    specular_power: float = 10.0
    mip: bool = False


def _pairs(text: str, width: int) -> tuple[tuple[float, ...], ...]:
    """Parse a Slicer presets.xml list ``"N v0 v1 ..."`` into tuples of ``width`` numbers."""
    values = [float(v) for v in text.split()][1:]
    return tuple(tuple(values[i : i + width]) for i in range(0, len(values), width))


def _preset(name: str, opacity: str, color: str, **kw: Any) -> VolumePreset:
    return VolumePreset(name, _pairs(color, 4), _pairs(opacity, 2), **kw)  # type: ignore[arg-type]


VR_PRESETS: dict[str, VolumePreset] = {
    p.name: p
    for p in (
        _preset(
            "CT-Bone",
            "8 -3024 0 -16.4458 0 641.385 0.715686 3071 0.705882",
            "16 -3024 0 0 0 -16.4458 0.729412 0.254902 0.301961 641.385 0.905882 0.815686 0.552941 3071 1 1 1",
        ),
        _preset(
            "CT-Soft-Tissue",
            "10 -2048 0 -167.01 0 -160 1 240 1 3661 1",
            "20 -2048 0 0 0 -167.01 0 0 0 -160 0.0556356 0.0556356 0.0556356 240 1 1 1 3661 1 1 1",
            shade=False, ambient=0.2, diffuse=1.0, specular=0.0, specular_power=1.0,
        ),
        _preset(
            "CT-MIP",
            "8 -3024 0 -637.62 0 700 1 3071 1",
            "16 -3024 0 0 0 -637.62 1 1 1 700 1 1 1 3071 1 1 1",
            shade=False, mip=True,
        ),
        _preset(
            "CT-AAA",
            "12 -3024 0 143.556 0 166.222 0.686275 214.389 0.696078 419.736 0.833333 3071 0.803922",
            "24 -3024 0 0 0 143.556 0.615686 0.356863 0.184314 166.222 0.882353 0.603922 0.290196 "
            "214.389 1 1 1 419.736 1 0.937033 0.954531 3071 0.827451 0.658824 1",
        ),
        _preset(
            "CT-Lung",
            "12 -1000 0 -600 0 -599 0.15 -400 0.15 -399 0 2952 0",
            "24 -1000 0.3 0.3 1 -600 0 0 1 -530 0.134704 0.781726 0.0724558 -460 0.929244 1 0.109473 "
            "-400 0.888889 0.254949 0.0240258 2952 1 0.3 0.3",
            ambient=0.2, diffuse=1.0, specular=0.0, specular_power=1.0,
        ),
    )
}
VR_PRESET_NAMES: tuple[str, ...] = tuple(VR_PRESETS)
DEFAULT_VR_PRESET = "CT-Bone"


def _subsample(hu: np.ndarray, target: int = 200_000) -> np.ndarray:
    step = max(1, int(round((hu.size / target) ** (1 / 3))))
    return np.asarray(hu[::step, ::step, ::step] if hu.ndim == 3 else hu[::step], dtype=np.float32).ravel()


def vr_hu_offset(hu: np.ndarray) -> float:
    """Offset to add to the volume presets' HU points: 1024 when the data look like stored values without the
    HU rescale (nothing below -50 yet values above 1000, e.g. Slicer's CTHead test series), else 0."""
    if hu.size == 0:
        return 0.0
    sample = _subsample(hu)
    return 1024.0 if float(sample.min()) >= -50 and float(np.percentile(sample, 99.5)) > 1000 else 0.0


def auto_window(hu: np.ndarray, dicom_window: tuple[float, float] | None = None) -> tuple[float, float]:
    """(width, level) for the "auto" preset.

    The DICOM window (center, width) wins when the series has one; otherwise the 1st–99th percentiles of a
    subsample (~200k voxels) of the data, ignoring a padding value (a minimum below -1024 HU that fills >5% of
    the samples, e.g. -1500/-2000/-3024 outside the scan field). Works for series whose rescale is not HU.
    """
    if dicom_window is not None and dicom_window[1] is not None and float(dicom_window[1]) > 1:
        return float(dicom_window[1]), float(dicom_window[0])
    if hu.size == 0:
        return WINDOW_PRESETS["soft-tissue"]
    sample = _subsample(hu)
    low_value = float(sample.min())
    if low_value < -1024 and np.count_nonzero(sample == low_value) > 0.05 * sample.size:
        rest = sample[sample > low_value]
        if rest.size:
            sample = rest
    lo, hi = np.percentile(sample, [1.0, 99.0])
    width = max(float(hi - lo), 1.0)
    return width, float(lo + hi) / 2.0
