"""Patient-space geometry for the panes: view conventions, volume frame, orientation letters.

World coordinates are DICOM patient coordinates (LPS: +x = patient Left, +y = Posterior, +z = Superior).
The 2D panes follow 3D Slicer's radiological convention:

* axial: viewed from the feet, anterior up, patient right on screen left (R | L);
* coronal: viewed from the front, superior up, patient right on screen left (R | L);
* sagittal: viewed from the patient's left, superior up, anterior on screen left (A | P);
* 3D: initially from the front (like coronal), superior up.

For an oblique or gantry-tilted series the 2D planes snap to the volume's own axes (Slicer's "rotate to volume
plane"), picking for each pane the volume axis closest to its canonical normal, so the axial pane shows the
acquired slices and slice index k is the k-th acquired image.
"""

from __future__ import annotations

import itertools

import numpy as np

#: pane -> (direction of projection, view up) in LPS for an axis-aligned HFS volume
CANONICAL_VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "coronal": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "3d": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}
SLICE_PANES: tuple[str, ...] = ("axial", "sagittal", "coronal")

_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) per LPS axis


def direction_letter(vector: np.ndarray | tuple[float, float, float]) -> str:
    """Letter (R/L/A/P/I/S) of the patient direction closest to ``vector`` (LPS)."""
    v = np.asarray(vector, dtype=float)
    axis = int(np.argmax(np.abs(v)))
    return _LETTERS[axis][1 if v[axis] > 0 else 0]


def labels_for_view(direction_of_projection, view_up) -> dict[str, str]:
    """Letters at the top/bottom/left/right edges of a view with this camera direction and up vector."""
    dop = np.asarray(direction_of_projection, dtype=float)
    up = np.asarray(view_up, dtype=float)
    up = up - np.dot(up, dop) / max(np.dot(dop, dop), 1e-12) * dop
    right = np.cross(dop, up)
    return {
        "top": direction_letter(up),
        "bottom": direction_letter(-up),
        "left": direction_letter(-right),
        "right": direction_letter(right),
    }


def orientation_labels(camera) -> dict[str, str]:
    """Orientation letters of a vtkCamera looking at LPS world space: {"top","bottom","left","right"}."""
    return labels_for_view(camera.GetDirectionOfProjection(), camera.GetViewUp())


def volume_frame(direction: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns r_i, r_j, r_k) nearest the volume's axes; r_k is the acquired slice normal."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    r_i = d[:, 0] / max(np.linalg.norm(d[:, 0]), 1e-12)
    r_j = d[:, 1] - np.dot(d[:, 1], r_i) * r_i
    r_j /= max(np.linalg.norm(r_j), 1e-12)
    r_k = np.cross(r_i, r_j)
    if np.dot(r_k, d[:, 2]) < 0:
        r_k = -r_k
    return np.column_stack([r_i, r_j, r_k])


def pane_views(direction: np.ndarray) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """For each 2D pane: (volume axis index of its slices, direction of projection, view up) in LPS.

    Axes are assigned by the permutation that best matches the canonical normals; each vector is then signed
    to point like its canonical counterpart, so the radiological convention holds for any patient position.
    """
    frame = volume_frame(direction)
    normals = [np.asarray(CANONICAL_VIEWS[p][0]) for p in SLICE_PANES]
    best = max(
        itertools.permutations(range(3)),
        key=lambda perm: sum(abs(np.dot(frame[:, a], n)) for a, n in zip(perm, normals, strict=True)),
    )
    views: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
    for pane, axis in zip(SLICE_PANES, best, strict=True):
        dop_c, up_c = (np.asarray(v) for v in CANONICAL_VIEWS[pane])
        dop = frame[:, axis] * (1.0 if np.dot(frame[:, axis], dop_c) >= 0 else -1.0)
        others = [a for a in range(3) if a != axis]
        up_axis = max(others, key=lambda a: abs(np.dot(frame[:, a], up_c)))
        up = frame[:, up_axis] * (1.0 if np.dot(frame[:, up_axis], up_c) >= 0 else -1.0)
        views[pane] = (axis, dop, up)
    return views
