"""FourPaneRenderer: Slicer's four-up (axial, 3D, sagittal, coronal) as offscreen VTK render windows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from vtkmodules.vtkRenderingCore import vtkImageProperty, vtkRenderWindow

from .image import VolumeGeometry, hu_to_vtk
from .interaction import bind_slice_interaction
from .observers import weak_callback
from .orientation import SLICE_PANES, pane_views
from .presets import DEFAULT_VR_PRESET, VR_PRESETS, WINDOW_PRESETS, auto_window, vr_hu_offset
from .slice_view import SliceView
from .volume_view import VolumeView

if TYPE_CHECKING:
    from webviewer.loading.volume import CTVolume

log = logging.getLogger(__name__)

def _normalize_preset_name(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


class FourPaneRenderer:
    """Four offscreen panes over one CTVolume, with a shared cursor (crosshair) and window/level.

    - Setters (``set_*``, ``volume_modified``) only update the VTK pipeline and never render. Each window
      brings itself up to date in its own StartEvent (3D copy, clipping range, labels), so a bare
      ``render_windows[pane].Render()`` - what trame-vtk's ``view.update()`` does - shows the current state;
      :meth:`render` is the same for code without a remote view.
    - Mouse (through the interactors, e.g. forwarded by trame-vtk) in a 2D pane: left drag = window/level of
      all three 2D panes, left click (< 4 px of motion) = move the cursor there (the other two panes slice
      through it), wheel = next/previous slice, right drag = zoom, middle or shift-left drag = pan,
      ctrl-left = spin. In the 3D pane: trackball rotate/pan/zoom at ~10 fps level of detail.
    - ``on_change(kind)`` fires only for changes made by the mouse: ``"window"`` (each drag step),
      ``"cursor"`` (click: the other 2D panes moved), ``"slice"`` (wheel) and ``"camera"`` (a rotate, pan or
      zoom ended); ``changed_pane`` names the pane. The app then syncs its state and re-renders what changed:
      the wheeled pane for slice (the crosshairs of the others when the wheel stops), all 2D panes for
      window/cursor; for camera, only the letters of that pane changed.
    """

    PANES = ("axial", "3d", "sagittal", "coronal")

    def __init__(self, size: tuple[int, int] = (400, 400), *, show_labels: bool = False,
                 interactor_renders: bool = False, mapper: str | None = None) -> None:
        """``show_labels`` draws the orientation letters inside the panes (off: the app draws them);
        ``interactor_renders`` lets the interactor style render the window itself on every mouse event
        (off: the remote view renders once per event anyway); ``mapper`` forces "fixed" or "gpu"."""
        self.image_property = vtkImageProperty()
        self.image_property.SetInterpolationTypeToLinear()
        kw: dict[str, Any] = {"show_labels": show_labels, "interactor_renders": interactor_renders}
        self.slice_views: dict[str, SliceView] = {
            name: SliceView(name, size, self.image_property, **kw) for name in SLICE_PANES
        }
        self.volume_view = VolumeView(size, mapper, **kw)
        self._panes = {**self.slice_views, "3d": self.volume_view}
        self.render_windows: dict[str, vtkRenderWindow] = {p: self._panes[p].window for p in self.PANES}
        for name, view in self.slice_views.items():
            for other in SLICE_PANES:
                if other != name:
                    view.add_crosshair(other)
            bind_slice_interaction(self, view)
        self.volume_view.style.AddObserver("EndInteractionEvent", weak_callback(self.notify, "camera"))
        self.on_change: Callable[[str], None] | None = None
        #: the pane of the last mouse change (``None``: not one pane's), read by ``on_change``
        self.changed_pane: str | None = None
        self.volume = None
        self.geometry: VolumeGeometry | None = None
        self._image = None
        self._keepalive: tuple = ()
        self._source_ptr: int | None = None
        self._views: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        self._cursor: tuple[int, int, int] = (0, 0, 0)
        self._cursor_touched = False
        self.window_preset: str | None = None
        self.vr_preset = DEFAULT_VR_PRESET
        self.volume_view.apply_preset(VR_PRESETS[self.vr_preset])
        self.set_window_preset("soft-tissue")

    # ----------------------------------------------------------------- volume
    @property
    def mapper_kind(self) -> str:
        """``"fixed"`` (vtkFixedPointVolumeRayCastMapper) or ``"gpu"`` (vtkSmartVolumeMapper)."""
        return self.volume_view.mapper_kind

    def set_volume(self, volume: CTVolume | None, *, reset: bool = True) -> None:
        """Show ``volume`` (a CTVolume) in every pane, or clear every pane with ``None``.

        ``reset=True`` centres the cursor, applies the "auto" window and resets the cameras;
        ``reset=False`` keeps cursor (clamped), window/level and the 3D view direction.
        """
        if volume is None:
            self._clear()
            return
        first = self.volume is None or reset
        self.volume_view.set_fast_updates(False)
        self._load(volume, reset_3d=first)
        if first:
            self._cursor = self.geometry.center_ijk()
            self._cursor_touched = False
            self.set_window_preset("auto")
            offset = vr_hu_offset(volume.hu)
            if offset != self.volume_view.hu_offset:
                log.info("volume values look unrescaled (not HU): shifting volume presets by %+g", offset)
                self.volume_view.apply_preset(VR_PRESETS[self.vr_preset], offset)
        else:
            self._cursor = self.geometry.clamp(self._cursor)
        self._place_cameras()

    def volume_modified(self, volume: CTVolume, *, slice_index: int | None = None) -> None:
        """Progressive update: ``volume`` is the shown one with new voxel values, or a grown/re-sorted view of
        the same buffer (e.g. ``SliceBuffer.preview_volume()``). Costs ~1 ms (values changed in place) or a
        zero-copy rebuild of a few ms (shape, origin or buffer changed); the render pays the rest.

        Switches the 3D pane to its preview (no shading, a copy of at most PREVIEW_3D_VOXELS) until the next
        :meth:`set_volume` or :meth:`set_fast_3d`: call ``set_volume(final_volume, reset=False)`` when the load
        finishes. The cursor stays at the centre until the user or :meth:`set_slice` moves it; ``slice_index``
        jumps the axial pane there.
        """
        if self.volume is None:
            self.set_volume(volume)
            self.volume_view.set_fast_updates(True, preview=True)
        else:
            self.volume_view.set_fast_updates(True, preview=True)
            hu = volume.hu
            same = (
                self._source_ptr == hu.__array_interface__["data"][0]
                and self.geometry is not None
                and VolumeGeometry.from_volume(volume).same_grid(self.geometry)
            )
            if same:
                self.volume = volume
                self._keepalive[0].Modified()
                self._image.Modified()
                self.volume_view.mark_modified()
            else:
                old_dims = self.geometry.dims if self.geometry else None
                self._load(volume, reset_3d=False)
                if not self._cursor_touched:
                    self._cursor = self.geometry.center_ijk()
                self._cursor = self.geometry.clamp(self._cursor)
                if self.geometry.dims != old_dims:
                    self._place_cameras()
        if slice_index is not None:
            axis = self._views["axial"][0]
            cursor = list(self._cursor)
            cursor[axis] = slice_index
            self._cursor = self.geometry.clamp(cursor)
        self._update_planes()

    def _load(self, volume: CTVolume, *, reset_3d: bool) -> None:
        geom = VolumeGeometry.from_volume(volume)
        image, array, flat = hu_to_vtk(volume.hu, geom.spacing)
        self.volume, self.geometry, self._image = volume, geom, image
        self._keepalive = (array, flat)
        # when hu was not contiguous, flat is a copy: in-place changes of hu would not show -> always rebuild
        src = volume.hu.__array_interface__["data"][0]
        self._source_ptr = src if flat.__array_interface__["data"][0] == src else None
        self._views = pane_views(geom.direction)
        matrix = geom.prop_matrix()
        for view in self.slice_views.values():
            view.set_input(image, matrix)
        self.volume_view.set_input(flat.reshape(volume.hu.shape), image, geom, reset_camera=reset_3d)

    def _clear(self) -> None:
        for view in self._panes.values():
            view.clear()
        self.volume = self.geometry = self._image = None
        self._keepalive = ()
        self._source_ptr = None
        self._views = {}
        self._cursor = (0, 0, 0)

    def _place_cameras(self) -> None:
        """Fit the 2D cameras to the volume (keeping their slice through the cursor)."""
        cursor_world = self.geometry.to_world(self._cursor)
        for name, view in self.slice_views.items():
            axis, dop, up = self._views[name]
            view.fit_camera(self.geometry, axis, dop, up, cursor_world)
        self._update_planes()

    def _update_planes(self) -> None:
        if self.geometry is None:
            return
        cursor_world = self.geometry.to_world(self._cursor)
        normals = {name: self._views[name][1] for name in SLICE_PANES}
        length = self.geometry.diagonal()
        for view in self.slice_views.values():
            view.move_plane(cursor_world)
            view.update_crosshair(cursor_world, normals, length)

    # ----------------------------------------------------------------- window / level and presets
    @property
    def window_level(self) -> tuple[float, float]:
        """Current (width, level) of the 2D panes."""
        return self.image_property.GetColorWindow(), self.image_property.GetColorLevel()

    def set_window_level(self, width: float, level: float) -> None:
        self.image_property.SetColorWindow(max(float(width), 1.0))
        self.image_property.SetColorLevel(float(level))
        self.window_preset = None

    def set_window_preset(self, name: str) -> None:
        """Apply "soft-tissue", "lung", "bone", "brain" or "auto" (DICOM window if present, else percentiles)."""
        key = _normalize_preset_name(name)
        if key == "auto":
            width, level = (
                auto_window(self.volume.hu, getattr(self.volume, "window", None))
                if self.volume is not None
                else WINDOW_PRESETS["soft-tissue"]
            )
        elif key in WINDOW_PRESETS:
            width, level = WINDOW_PRESETS[key]
        else:
            raise ValueError(f"unknown window preset {name!r}; choose one of {[*WINDOW_PRESETS, 'auto']}")
        self.set_window_level(width, level)
        self.window_preset = key

    def set_vr_preset(self, name: str) -> None:
        """Apply a volume-rendering preset ("CT-Bone", "CT-Soft-Tissue", "CT-MIP", "CT-AAA", "CT-Lung")."""
        lookup = {_normalize_preset_name(k): k for k in VR_PRESETS}
        key = lookup.get(_normalize_preset_name(name))
        if key is None:
            raise ValueError(f"unknown volume rendering preset {name!r}; choose one of {list(VR_PRESETS)}")
        self.volume_view.apply_preset(VR_PRESETS[key], self.volume_view.hu_offset)
        self.vr_preset = key

    # ----------------------------------------------------------------- slices and cursor
    def _pane(self, pane: str):
        if pane not in self._panes:
            raise ValueError(f"unknown pane {pane!r}; panes are {self.PANES}")
        return self._panes[pane]

    def _slice_view(self, pane: str) -> SliceView:
        self._pane(pane)
        if pane not in self.slice_views:
            raise ValueError(f"pane {pane!r} has no slices")
        return self.slice_views[pane]

    def slice_info(self, pane: str) -> tuple[int, int]:
        """(index, count) of the slice shown in a 2D pane; (0, 0) for the 3D pane or without a volume."""
        self._pane(pane)
        if pane == "3d" or self.geometry is None:
            return 0, 0
        self._slice_view(pane)
        axis = self._views[pane][0]
        return self._cursor[axis], self.geometry.dims[axis]

    def set_slice(self, pane: str, index: int) -> None:
        """Show slice ``index`` (clamped to 0..count-1) in a 2D pane; the crosshairs of the others follow."""
        self._slice_view(pane)
        if self.geometry is None:
            return
        axis = self._views[pane][0]
        cursor = list(self._cursor)
        cursor[axis] = int(index)
        self._cursor = self.geometry.clamp(cursor)
        self._cursor_touched = True
        self._update_planes()

    @property
    def cursor(self) -> tuple[int, int, int]:
        """Crosshair point as voxel indices (i, j, k) = (column, row, slice)."""
        return self._cursor

    def set_cursor(self, ijk: tuple[float, float, float]) -> None:
        """Move the crosshair point (voxel indices, clamped); every 2D pane slices through it."""
        if self.geometry is None:
            return
        self._cursor = self.geometry.clamp(ijk)
        self._cursor_touched = True
        self._update_planes()

    def cursor_world(self) -> tuple[float, float, float] | None:
        """Crosshair point in patient LPS millimetres."""
        return None if self.geometry is None else tuple(float(v) for v in self.geometry.to_world(self._cursor))

    # ----------------------------------------------------------------- labels, rendering, capture
    def orientation_labels(self, pane: str) -> dict[str, str]:
        """Letters at the edges of a pane from its camera, e.g. axial {"top": "A", "bottom": "P", ...}."""
        return self._pane(pane).orientation_labels()

    def set_fast_3d(self, fast: bool) -> None:
        """The 3D pane's draft quality (unshaded, coarser copy, 2x2-pixel rays: ~0.1 s a frame on llvmpipe) or
        its full quality (the first frame computes the shading gradients: 1-3 s on 2 cores)."""
        self.volume_view.set_fast_updates(fast)

    @property
    def fast_3d(self) -> bool:
        return bool(self.volume_view.fast_updates)

    def render(self, pane: str | None = None) -> None:
        """Render one pane, or all four."""
        for name in [pane] if pane else self.PANES:
            self._pane(name).render()

    def capture(self, pane: str) -> np.ndarray:
        """Render a pane and return its pixels, (height, width, 3) uint8, top row first."""
        return self._pane(pane).capture()

    def render_png(self, pane: str) -> bytes:
        """Render a pane and return it as PNG bytes."""
        return self._pane(pane).render_png()

    def close(self) -> None:
        """Release the four OpenGL contexts."""
        self._clear()
        for view in self._panes.values():
            view.finalize()

    # ----------------------------------------------------------------- interaction
    def notify(self, kind: str, pane: str | None = None) -> None:
        """Tell the app (``on_change``) that the mouse changed something; ``changed_pane`` says in which pane."""
        self.changed_pane = pane
        if self.on_change is not None:
            try:
                self.on_change(kind)
            except Exception:  # the app's callback must not break VTK's event loop
                log.exception("on_change(%r) failed", kind)
