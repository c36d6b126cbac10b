"""A 2D pane: reslice of the volume in patient space through the cursor, with crosshair lines."""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkFiltersSources import vtkLineSource
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleImage
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageProperty,
    vtkImageSlice,
    vtkPolyDataMapper,
)
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper

from .image import VolumeGeometry
from .orientation import CANONICAL_VIEWS
from .pane import Pane

#: 3D Slicer's slice colours: axial red, sagittal yellow, coronal green (used for crosshair lines)
PANE_COLORS: dict[str, tuple[float, float, float]] = {
    "axial": (0.95, 0.33, 0.33),
    "sagittal": (0.93, 0.84, 0.29),
    "coronal": (0.43, 0.72, 0.33),
}


class SliceView(Pane):
    """Reslice pane. The slice plane is the camera's focal plane (SliceAtFocalPoint + SliceFacesCamera)."""

    def __init__(self, name: str, size: tuple[int, int], image_property: vtkImageProperty, **kw) -> None:
        style = vtkInteractorStyleImage()
        super().__init__(name, size, style, **kw)
        self.mapper = self._new_mapper()
        self.slice = vtkImageSlice()
        self.slice.SetMapper(self.mapper)
        self.slice.SetProperty(image_property)
        self.slice.SetVisibility(False)
        self.renderer.AddViewProp(self.slice)
        self.camera.ParallelProjectionOn()
        self.axis = {"axial": 2, "sagittal": 0, "coronal": 1}.get(name, 2)
        self.dop, self.up = (np.asarray(v, dtype=float) for v in CANONICAL_VIEWS.get(name, CANONICAL_VIEWS["axial"]))
        self.camera.SetFocalPoint(0.0, 0.0, 0.0)
        self.camera.SetPosition(*(-self.dop * 500.0))
        self.camera.SetViewUp(*self.up)
        self.lines: dict[str, tuple[vtkLineSource, vtkActor]] = {}
        self._fit_half: tuple[float, float] | None = None
        self._fit_scale = 1.0
        self._fit_size: tuple[int, int] | None = None

    @staticmethod
    def _new_mapper() -> vtkImageResliceMapper:
        mapper = vtkImageResliceMapper()
        mapper.SliceFacesCameraOn()
        mapper.SliceAtFocalPointOn()
        mapper.StreamingOn()
        return mapper

    def add_crosshair(self, other: str) -> None:
        source = vtkLineSource()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(source.GetOutputPort())
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*PANE_COLORS[other])
        actor.GetProperty().SetLineWidth(1.0)
        actor.GetProperty().LightingOff()
        actor.PickableOff()
        actor.SetVisibility(False)
        self.renderer.AddActor(actor)
        self.lines[other] = (source, actor)

    def set_input(self, image, matrix) -> None:
        self.mapper.SetInputData(image)
        self.slice.SetUserMatrix(matrix)
        self.slice.SetVisibility(True)
        for _, actor in self.lines.values():
            actor.SetVisibility(True)
        self.has_content = True

    def clear(self) -> None:
        """Hide the slice; a fresh mapper drops the old one's internal reslice cache (and so the volume)."""
        self.slice.SetVisibility(False)
        self.mapper.RemoveAllInputs()
        self.mapper = self._new_mapper()
        self.slice.SetMapper(self.mapper)
        for _, actor in self.lines.values():
            actor.SetVisibility(False)
        self.has_content = False

    def fit_camera(self, geom: VolumeGeometry, axis: int, dop: np.ndarray, up: np.ndarray,
                   cursor_world: np.ndarray) -> None:
        """Look along ``dop`` with ``up``, centred on the volume, zoomed to fit it, slicing through the cursor."""
        self.axis, self.dop, self.up = axis, np.asarray(dop, float), np.asarray(up, float)
        corners = geom.corners()
        center = corners.mean(axis=0)
        right = np.cross(self.dop, self.up)
        half_h = (np.ptp(corners @ self.up) + geom.spacing.max()) / 2.0
        half_w = (np.ptp(corners @ right) + geom.spacing.max()) / 2.0
        distance = geom.diagonal() * 2.0
        cam = self.camera
        focal = center + np.dot(cursor_world - center, self.dop) * self.dop
        cam.SetFocalPoint(*focal)
        cam.SetPosition(*(focal - self.dop * distance))
        cam.SetViewUp(*self.up)
        self._fit_half = (half_w, half_h)
        self._fit_size = None
        self._refit_scale(zoom=1.0)
        self.renderer.ResetCameraClippingRange()

    def _refit_scale(self, zoom: float) -> None:
        """Parallel scale that fits the volume in the current window shape, times the user's ``zoom``."""
        if self._fit_half is None:
            return
        w, h = self.window.GetSize()
        aspect = w / h if h else 1.0
        half_w, half_h = self._fit_half
        scale = max(half_h, half_w / aspect) * 1.02
        self.camera.SetParallelScale(scale / zoom)
        self._fit_scale, self._fit_size = scale, (w, h)

    def prepare_render(self) -> None:
        # the remote view resizes the window to the browser's pane: keep the volume fitted (and the user's zoom)
        if self._fit_half is not None and self._fit_size != tuple(self.window.GetSize()):
            zoom = self._fit_scale / self.camera.GetParallelScale() if self._fit_size else 1.0
            self._refit_scale(zoom)
        super().prepare_render()

    def move_plane(self, cursor_world: np.ndarray) -> None:
        """Shift the camera along its normal so the slice plane passes through ``cursor_world`` (no pan)."""
        cam = self.camera
        focal = np.array(cam.GetFocalPoint())
        n = np.array(cam.GetDirectionOfProjection())
        shift = np.dot(np.asarray(cursor_world) - focal, n) * n
        cam.SetFocalPoint(*(focal + shift))
        cam.SetPosition(*(np.array(cam.GetPosition()) + shift))
        self.renderer.ResetCameraClippingRange()

    def update_crosshair(self, cursor_world: np.ndarray, normals: dict[str, np.ndarray], length: float) -> None:
        """Lines where the other panes' planes cut this one, lifted slightly toward the camera."""
        n = np.array(self.camera.GetDirectionOfProjection())
        lift = -n * max(length * 1e-3, 0.05)
        for other, (source, _) in self.lines.items():
            direction = np.cross(n, normals[other])
            norm = np.linalg.norm(direction)
            if norm < 1e-6:
                continue
            direction /= norm
            source.SetPoint1(*(cursor_world + lift - direction * length))
            source.SetPoint2(*(cursor_world + lift + direction * length))

    def display_to_plane(self, x: float, y: float) -> np.ndarray:
        """LPS point on the slice plane under display pixel (x, y) (VTK display coordinates, y up)."""
        r = self.renderer
        r.SetDisplayPoint(float(x), float(y), 0.0)
        r.DisplayToWorld()
        wx, wy, wz, ww = r.GetWorldPoint()
        p = np.array([wx, wy, wz]) / (ww if ww else 1.0)
        focal = np.array(self.camera.GetFocalPoint())
        n = np.array(self.camera.GetDirectionOfProjection())
        return p + np.dot(focal - p, n) * n
