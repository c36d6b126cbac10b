"""CTVolume -> zero-copy vtkImageData plus the IJK -> patient (LPS) transform used by every pane."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkDataArray
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4


@dataclass
class VolumeGeometry:
    """Grid geometry of a volume: voxel (i, j, k) -> LPS point ``origin + direction @ (ijk * spacing)``."""

    dims: tuple[int, int, int]  # (x, y, z) = (columns, rows, slices)
    spacing: np.ndarray  # (3,) mm
    origin: np.ndarray  # (3,) LPS mm
    direction: np.ndarray  # (3, 3) columns = unit i, j, k axes in LPS

    @classmethod
    def from_volume(cls, volume) -> VolumeGeometry:
        nz, ny, nx = volume.hu.shape
        direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
        norms = np.linalg.norm(direction, axis=0)
        direction = direction / np.where(norms > 0, norms, 1.0)
        return cls(
            dims=(int(nx), int(ny), int(nz)),
            spacing=np.asarray(volume.spacing, dtype=float),
            origin=np.asarray(volume.origin, dtype=float),
            direction=direction,
        )

    def same_grid(self, other: VolumeGeometry | None) -> bool:
        return (
            other is not None
            and self.dims == other.dims
            and np.array_equal(self.spacing, other.spacing)
            and np.array_equal(self.origin, other.origin)
            and np.array_equal(self.direction, other.direction)
        )

    def prop_matrix(self) -> vtkMatrix4x4:
        """Matrix for vtkProp3D.SetUserMatrix: image (spacing-scaled, origin 0) -> LPS world."""
        m = vtkMatrix4x4()
        for r in range(3):
            for c in range(3):
                m.SetElement(r, c, float(self.direction[r, c]))
            m.SetElement(r, 3, float(self.origin[r]))
        return m

    def to_world(self, ijk) -> np.ndarray:
        return self.origin + self.direction @ (np.asarray(ijk, dtype=float) * self.spacing)

    def to_ijk(self, world) -> np.ndarray:
        """Continuous voxel index of an LPS point."""
        return np.linalg.solve(self.direction, np.asarray(world, dtype=float) - self.origin) / self.spacing

    def clamp(self, ijk) -> tuple[int, int, int]:
        return tuple(int(min(max(round(float(v)), 0), n - 1)) for v, n in zip(ijk, self.dims, strict=True))

    def center_ijk(self) -> tuple[int, int, int]:
        return tuple(n // 2 for n in self.dims)

    def corners(self) -> np.ndarray:
        """(8, 3) LPS corners of the voxel-centre bounding box."""
        hi = [max(n - 1, 0) for n in self.dims]
        pts = [(i, j, k) for i in (0, hi[0]) for j in (0, hi[1]) for k in (0, hi[2])]
        return np.array([self.to_world(p) for p in pts])

    def diagonal(self) -> float:
        c = self.corners()
        return float(np.linalg.norm(c.max(axis=0) - c.min(axis=0))) or 1.0


def hu_to_vtk(hu: np.ndarray, spacing) -> tuple[vtkImageData, vtkDataArray, np.ndarray]:
    """Zero-copy vtkImageData over a (z, y, x) HU array, origin 0, with spacing; returns (image, array, flat).

    Keep ``flat`` alive as long as the image: VTK only borrows the memory. A non-contiguous input is copied once.
    """
    data = np.ascontiguousarray(hu)
    flat = data.reshape(-1)
    array = numpy_to_vtk(flat, deep=False)
    array.SetName("HU")
    image = vtkImageData()
    nz, ny, nx = data.shape
    image.SetDimensions(int(nx), int(ny), int(nz))
    image.SetSpacing(*(float(s) for s in spacing))
    image.SetOrigin(0.0, 0.0, 0.0)
    image.GetPointData().SetScalars(array)
    return image, array, flat
