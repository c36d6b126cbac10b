"""The 3D pane: volume rendering with Slicer-like presets; the mapper is chosen from the OpenGL renderer."""

from __future__ import annotations

import logging
import os

import numpy as np
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkColorTransferFunction,
    vtkRenderWindow,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from .image import VolumeGeometry, hu_to_vtk
from .orientation import CANONICAL_VIEWS
from .pane import Pane
from .presets import VolumePreset

log = logging.getLogger(__name__)

_SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software", "lavapipe", "swr")
_renderer_string: str | None = None

#: frames per second the 3D pane aims for while the user rotates (drives the fixed-point mapper's LOD)
INTERACTIVE_FPS = 10.0
#: above this many voxels the 3D pane renders a strided copy (the 2D panes always use full resolution):
#: at 400x400 px a 512x512x380 CT looks the same at half resolution, and the CPU mapper's gradient volume
#: (3 bytes/voxel, ~8 s to compute at full size on 2 cores) shrinks 8x
MAX_3D_VOXELS = 16_000_000
#: the 3D copy of a volume still filling (progressive display): a seed-size CT at strides (5, 5, 4), 18-34 ms a
#: frame at 600x450 on llvmpipe against 41-71 ms for the draft's 4 M voxels, so it fits into a 1-s load
PREVIEW_3D_VOXELS = 1_000_000


def opengl_renderer_string(window: vtkRenderWindow | None = None) -> str:
    """The OpenGL renderer string (e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``), probed once per process."""
    global _renderer_string
    if _renderer_string is None:
        probe = window or vtkRenderWindow()
        probe.SetOffScreenRendering(1)
        probe.Initialize()
        report = probe.ReportCapabilities() or ""
        _renderer_string = next(
            (line.split(":", 1)[1].strip() for line in report.splitlines() if "renderer string" in line), ""
        )
        log.info("OpenGL renderer: %s", _renderer_string or "unknown")
    return _renderer_string


def choose_mapper_kind(renderer_string: str) -> str:
    """``"fixed"`` (CPU ray cast) on software OpenGL, ``"gpu"`` on real hardware; env WEBVIEWER_VOLUME_MAPPER wins."""
    forced = os.environ.get("WEBVIEWER_VOLUME_MAPPER", "").strip().lower()
    if forced in {"fixed", "gpu"}:
        return forced
    lower = renderer_string.lower()
    return "fixed" if not lower or any(s in lower for s in _SOFTWARE_GL) else "gpu"


def decimation_strides(dims, spacing, max_voxels: int) -> tuple[int, int, int]:
    """(x, y, z) strides so the 3D copy has at most ``max_voxels``: each step coarsens the finest axis."""
    strides = [1, 1, 1]
    spacing = [float(s) for s in spacing]
    total = int(np.prod(dims))
    while total / np.prod(strides) > max_voxels:
        axis = min(range(3), key=lambda a: (spacing[a] * strides[a], a))
        strides[axis] += 1
    return strides[0], strides[1], strides[2]


class VolumeView(Pane):
    """Volume-rendered 3D pane with a trackball camera."""

    def __init__(self, size: tuple[int, int], mapper_kind: str | None = None, *,
                 max_voxels: int = MAX_3D_VOXELS, **kw) -> None:
        super().__init__("3d", size, vtkInteractorStyleTrackballCamera(), **kw)
        self.mapper_kind = mapper_kind or choose_mapper_kind(opengl_renderer_string(self.window))
        self.mapper = self._new_mapper()
        self.property = vtkVolumeProperty()
        self.property.SetInterpolationTypeToLinear()
        self.volume = vtkVolume()
        self.volume.SetMapper(self.mapper)
        self.volume.SetProperty(self.property)
        self.volume.SetVisibility(False)
        self.renderer.AddVolume(self.volume)
        self.interactor.SetDesiredUpdateRate(INTERACTIVE_FPS)
        self.interactor.SetStillUpdateRate(0.0001)
        self.preset: VolumePreset | None = None
        self.hu_offset = 0.0
        self.max_voxels = int(max_voxels)
        self.fast_updates = False
        #: fast updates of a volume still filling: the coarser PREVIEW_3D_VOXELS copy
        self.preview = False
        self.strides: tuple[int, int, int] = (1, 1, 1)
        self.geometry: VolumeGeometry | None = None
        self._source: np.ndarray | None = None
        self._full_geometry: VolumeGeometry | None = None
        self._full_image = None
        self._small: tuple | None = None
        self._dirty = False
        dop, up = (np.asarray(v, dtype=float) for v in CANONICAL_VIEWS["3d"])
        self.camera.SetFocalPoint(0.0, 0.0, 0.0)
        self.camera.SetPosition(*(-dop * 500.0))
        self.camera.SetViewUp(*up)

    def _new_mapper(self):
        if self.mapper_kind == "fixed":
            mapper = vtkFixedPointVolumeRayCastMapper()
            mapper.AutoAdjustSampleDistancesOn()
            mapper.SetMaximumImageSampleDistance(4.0)
            mapper.SetLockSampleDistanceToInputSpacing(False)
        else:
            mapper = vtkSmartVolumeMapper()
            mapper.SetRequestedRenderModeToGPU()
            mapper.AutoAdjustSampleDistancesOn()
        return mapper

    def set_input(self, hu: np.ndarray, image, geom: VolumeGeometry, *, reset_camera: bool) -> None:
        """Render ``hu`` (full-resolution ``image`` over it, grid ``geom``); large volumes are decimated lazily."""
        self._source, self._full_image, self._full_geometry = hu, image, geom
        self._configure()
        self.volume.SetUserMatrix(geom.prop_matrix())
        self.volume.SetVisibility(True)
        self.has_content = True
        self.fit_camera(geom, reset_direction=reset_camera)

    def _configure(self) -> None:
        """Pick the decimation for the current mode and mark the 3D copy stale."""
        geom = self._full_geometry
        if geom is None:
            return
        limit = self.max_voxels
        if self.fast_updates:
            limit = min(PREVIEW_3D_VOXELS, limit // 4) if self.preview else limit // 4
        self.strides = decimation_strides(geom.dims, geom.spacing, limit)
        self.geometry = geom if self.strides == (1, 1, 1) else VolumeGeometry(
            dims=tuple(-(-n // s) for n, s in zip(geom.dims, self.strides, strict=True)),
            spacing=geom.spacing * np.asarray(self.strides, dtype=float),
            origin=geom.origin,
            direction=geom.direction,
        )
        if self.mapper_kind == "fixed":
            # about one sample per (decimated) voxel along the ray; finer costs time without visible detail
            self.mapper.SetSampleDistance(float(max(self.geometry.spacing.min(), 0.5)))
            # while loading, one ray per 2x2 pixels: a 3D refresh costs about a quarter
            self.mapper.SetMinimumImageSampleDistance(2.0 if self.fast_updates else 1.0)
        self._dirty = True

    def fit_camera(self, geom: VolumeGeometry, *, reset_direction: bool) -> None:
        """Centre the camera on the volume and zoom to fit it; from the front (superior up) if resetting."""
        cam = self.camera
        if reset_direction:
            dop, up = (np.asarray(v) for v in CANONICAL_VIEWS["3d"])
            cam.SetViewUp(*up)
            cam.ParallelProjectionOff()
        else:
            dop = np.asarray(cam.GetDirectionOfProjection())
        center = geom.corners().mean(axis=0)
        radius = geom.diagonal() / 2.0
        distance = radius / np.sin(np.radians(cam.GetViewAngle()) / 2.0) * 1.05
        cam.SetFocalPoint(*center)
        cam.SetPosition(*(center - dop * distance))

    def mark_modified(self) -> None:
        """The source voxels changed in place: refresh the (decimated) copy at the next render."""
        self._dirty = True

    def _sync(self) -> None:
        if not self._dirty or self._source is None:
            return
        self._dirty = False
        if self.strides == (1, 1, 1):
            if self.mapper.GetInput() is not self._full_image:
                self.mapper.SetInputData(self._full_image)
            self._small = None
            return
        sx, sy, sz = self.strides
        view = self._source[::sz, ::sy, ::sx]
        if self._small is not None and self._small[0].shape == view.shape and self._small[0].dtype == view.dtype:
            np.copyto(self._small[0], view)
            self._small[1].Modified()
            self._small[2].Modified()
            return
        data = np.ascontiguousarray(view)
        image, array, _flat = hu_to_vtk(data, self.geometry.spacing)
        self._small = (data, array, image)
        self.mapper.SetInputData(image)

    def prepare_render(self) -> None:
        self._sync()
        super().prepare_render()

    def set_fast_updates(self, fast: bool, *, preview: bool = False) -> None:
        """Draft quality: no shading (no gradient volume to recompute on every update), a 4x smaller 3D copy and
        one ray per 2x2 pixels; ``preview`` (a volume still filling): a copy of at most PREVIEW_3D_VOXELS, so a
        3D refresh during a load stays cheap."""
        preview = preview and fast
        if fast == self.fast_updates and preview == self.preview:
            return
        self.fast_updates = fast
        self.preview = preview
        if self.preset is not None:
            self.property.SetShade(bool(self.preset.shade) and not fast)
        self._configure()

    def clear(self) -> None:
        """Hide the volume and drop every buffer (a fresh mapper frees the CPU mapper's gradient tables)."""
        self.volume.SetVisibility(False)
        blend = self.mapper.GetBlendMode()
        self.mapper.RemoveAllInputs()
        self.mapper = self._new_mapper()
        self.mapper.SetBlendMode(blend)
        self.volume.SetMapper(self.mapper)
        self._source = self._full_image = self._small = self._full_geometry = None
        self.has_content = False

    def apply_preset(self, preset: VolumePreset, hu_offset: float = 0.0) -> None:
        """Transfer functions and lighting of ``preset``; ``hu_offset`` shifts its HU points (non-HU data)."""
        color = vtkColorTransferFunction()
        for hu, r, g, b in preset.color:
            color.AddRGBPoint(hu + hu_offset, r, g, b)
        opacity = vtkPiecewiseFunction()
        for hu, a in preset.opacity:
            opacity.AddPoint(hu + hu_offset, a)
        prop = self.property
        prop.SetColor(color)
        prop.SetScalarOpacity(opacity)
        prop.SetShade(bool(preset.shade) and not self.fast_updates)
        prop.SetAmbient(preset.ambient)
        prop.SetDiffuse(preset.diffuse)
        prop.SetSpecular(preset.specular)
        prop.SetSpecularPower(preset.specular_power)
        if preset.mip:
            self.mapper.SetBlendModeToMaximumIntensity()
        else:
            self.mapper.SetBlendModeToComposite()
        self.preset = preset
        self.hu_offset = hu_offset
