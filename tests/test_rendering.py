"""FourPaneRenderer on synthetic CT volumes: panes, window/level, slices, cursor clicks, presets, progressive."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from webviewer.loading.volume import CTVolume
from webviewer.rendering import FourPaneRenderer, auto_window, labels_for_view
from webviewer.rendering.orientation import pane_views
from webviewer.rendering.volume_view import PREVIEW_3D_VOXELS, decimation_strides

NX, NY, NZ = 64, 56, 40
SPACING = (3.0, 3.0, 4.0)


def phantom_hu(nx: int = NX, ny: int = NY, nz: int = NZ) -> np.ndarray:
    """Ellipsoid of soft tissue (40 HU) with a bone shell (700 HU) in air, plus a bone marker block at the
    patient's left (+x), anterior (-y), superior (+z) corner so orientation is visible in pixels."""
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
    r = np.sqrt(((x - nx / 2) / (nx * 0.4)) ** 2 + ((y - ny / 2) / (ny * 0.35)) ** 2 + ((z - nz / 2) / (nz * 0.45)) ** 2)
    hu = np.full((nz, ny, nx), -1000, np.int16)
    hu[r < 1] = 40
    hu[(r < 1) & (r > 0.88)] = 700
    hu[int(nz * 0.55) :, int(ny * 0.2) : int(ny * 0.32), int(nx * 0.72) : int(nx * 0.84)] = 1500
    return hu


def make_volume(hu: np.ndarray | None = None, *, window=None, direction=None) -> CTVolume:
    hu = phantom_hu() if hu is None else hu
    return CTVolume(hu, SPACING, (-90.0, -80.0, 10.0), np.eye(3) if direction is None else direction, window)


def lit(pixels: np.ndarray) -> float:
    """Fraction of non-black pixels."""
    return float((pixels.max(axis=2) > 0).mean())


def world_to_display(renderer, point) -> tuple[int, int]:
    renderer.SetWorldPoint(*point, 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return int(round(x)), int(round(y))


@pytest.fixture(scope="module")
def renderer():
    r = FourPaneRenderer(size=(200, 200))
    yield r
    r.close()


@pytest.fixture
def four(renderer):
    """The shared renderer with a fresh synthetic volume; on_change records events."""
    events: list[str] = []
    renderer.on_change = events.append
    renderer.set_vr_preset("CT-Bone")
    renderer.set_volume(make_volume())
    renderer.events = events
    yield renderer
    renderer.on_change = None


def test_panes_and_windows(renderer):
    assert FourPaneRenderer.PANES == ("axial", "3d", "sagittal", "coronal")
    assert set(renderer.render_windows) == set(FourPaneRenderer.PANES)
    for window in renderer.render_windows.values():
        assert window.GetOffScreenRendering()
        assert window.GetInteractor() is not None
        assert tuple(window.GetSize()) == (200, 200)
    assert renderer.mapper_kind in {"fixed", "gpu"}


def test_every_pane_renders_after_set_volume(four):
    for pane in four.PANES:
        assert lit(four.capture(pane)) > 0.05, pane
    png = four.render_png("axial")
    assert png.startswith(b"\x89PNG")


def test_window_preset_changes_2d_pixels(four):
    four.set_window_preset("soft-tissue")
    soft = {p: four.capture(p) for p in ("axial", "sagittal", "coronal")}
    assert four.window_level == (400.0, 40.0)
    four.set_window_preset("lung")
    assert four.window_level == (1500.0, -600.0)
    for pane, before in soft.items():
        assert not np.array_equal(before, four.capture(pane)), pane
    four.set_window_preset("Bone")
    assert four.window_preset == "bone" and four.window_level == (2500.0, 480.0)
    four.set_window_preset("brain")
    assert four.window_level == (80.0, 40.0)
    with pytest.raises(ValueError):
        four.set_window_preset("liver-ish")


def test_auto_window_uses_dicom_window_then_data():
    hu = phantom_hu()
    assert auto_window(hu, (40.0, 400.0)) == (400.0, 40.0)
    width, level = auto_window(hu)
    assert -1000 <= level - width / 2 < 40 < 700 <= level + width / 2 <= 1500
    # padding below -1024 (outside the scan field) is ignored
    padded = hu.copy()
    padded[:, :, :10] = -3024
    assert auto_window(padded)[1] - auto_window(padded)[0] / 2 >= -1000
    # non-HU data (stored values, intercept 0) still gets a window covering it
    width, level = auto_window((hu + 1024).astype(np.int16))
    assert level - width / 2 >= 0 and level + width / 2 <= 2524


def test_auto_preset_follows_the_data(renderer):
    renderer.set_volume(make_volume(window=(50.0, 350.0)))
    assert renderer.window_level == (350.0, 50.0) and renderer.window_preset == "auto"
    renderer.set_volume(make_volume((phantom_hu() + 1024).astype(np.int16)))
    width, level = renderer.window_level
    assert level > 500  # stored values (no HU rescale): auto follows the data, not a HU preset
    assert lit(renderer.capture("axial")) > 0.05


def test_set_slice_changes_axial_image(four):
    index, count = four.slice_info("axial")
    assert (index, count) == (NZ // 2, NZ)
    assert four.slice_info("sagittal") == (NX // 2, NX)
    assert four.slice_info("coronal") == (NY // 2, NY)
    assert four.slice_info("3d") == (0, 0)
    before = four.capture("axial")
    four.set_slice("axial", NZ - 3)  # through the marker block
    assert four.slice_info("axial") == (NZ - 3, NZ)
    assert not np.array_equal(before, four.capture("axial"))
    four.set_slice("axial", 10_000)
    assert four.slice_info("axial") == (NZ - 1, NZ)
    four.set_slice("axial", -5)
    assert four.slice_info("axial") == (0, NZ)
    with pytest.raises(ValueError):
        four.set_slice("3d", 1)
    with pytest.raises(ValueError):
        four.slice_info("oblique")
    assert four.events == []  # programmatic changes do not fire on_change


def test_click_moves_cursor_and_other_panes(four):
    view = four.slice_views["axial"]
    four.render("axial")
    target = (10, 40, four.cursor[2])
    x, y = world_to_display(view.renderer, four.geometry.to_world(target))
    iren = view.interactor
    iren.SetEventInformation(x, y, 0, 0)
    iren.LeftButtonPressEvent()
    iren.SetEventInformation(x + 1, y, 0, 0)  # jitter below the drag threshold
    iren.MouseMoveEvent()
    iren.LeftButtonReleaseEvent()
    assert four.events == ["cursor"]
    i, j, k = four.cursor
    assert abs(i - 10) <= 1 and abs(j - 40) <= 1 and k == NZ // 2
    assert four.slice_info("sagittal")[0] == i
    assert four.slice_info("coronal")[0] == j
    assert four.slice_info("axial")[0] == NZ // 2
    # crosshair lines pass through the new cursor point
    point = np.array(four.cursor_world())
    source, _ = four.slice_views["coronal"].lines["sagittal"]
    p1, p2 = np.array(source.GetPoint1()), np.array(source.GetPoint2())
    assert np.allclose((p1 + p2) / 2, point, atol=1.0)


def test_drag_adjusts_window_level_in_all_2d_panes(four):
    four.set_window_preset("soft-tissue")
    before = {p: four.capture(p) for p in ("axial", "sagittal", "coronal")}
    cursor = four.cursor
    iren = four.slice_views["sagittal"].interactor
    iren.SetEventInformation(100, 100, 0, 0)
    iren.LeftButtonPressEvent()
    for step in range(1, 6):
        iren.SetEventInformation(100 + 12 * step, 100 + 8 * step, 0, 0)
        iren.MouseMoveEvent()
    iren.LeftButtonReleaseEvent()
    width, level = four.window_level
    assert width > 400 and level > 40
    assert four.window_preset is None
    assert set(four.events) == {"window"}
    assert four.cursor == cursor  # a drag is not a click
    for pane, image in before.items():
        assert not np.array_equal(image, four.capture(pane)), pane


def test_wheel_changes_slice(four):
    iren = four.slice_views["coronal"].interactor
    index = four.slice_info("coronal")[0]
    iren.SetEventInformation(100, 100, 0, 0)
    iren.MouseWheelForwardEvent()
    iren.MouseWheelForwardEvent()
    assert four.slice_info("coronal")[0] == index + 2
    iren.MouseWheelBackwardEvent()
    assert four.slice_info("coronal")[0] == index + 1
    assert four.events == ["slice", "slice", "slice"]


def test_right_drag_zooms_and_reports_camera(four):
    view = four.slice_views["axial"]
    scale = view.camera.GetParallelScale()
    iren = view.interactor
    iren.SetEventInformation(100, 100, 0, 0)
    iren.RightButtonPressEvent()
    iren.SetEventInformation(100, 140, 0, 0)
    iren.MouseMoveEvent()
    iren.RightButtonReleaseEvent()
    assert view.camera.GetParallelScale() != scale
    assert four.events == ["camera"]
    assert lit(four.capture("axial")) > 0.05  # clipping range still right after the camera moved


def test_resized_window_keeps_the_slice_fitted(four):
    four.set_window_preset("soft-tissue")  # the 700 HU shell is white, the crosshairs are coloured
    window = four.render_windows["axial"]
    try:
        for size in ((300, 150), (120, 260)):
            window.SetSize(*size)
            white = four.capture("axial").min(axis=2) >= 250
            assert white.shape == (size[1], size[0])
            rows, cols = np.nonzero(white)
            assert rows.size and rows.min() > 0 and rows.max() < size[1] - 1, size
            assert cols.min() > 0 and cols.max() < size[0] - 1, size
    finally:
        window.SetSize(200, 200)


def test_orientation_labels_radiological(four):
    assert four.orientation_labels("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert four.orientation_labels("coronal") == {"top": "S", "bottom": "I", "left": "R", "right": "L"}
    assert four.orientation_labels("sagittal") == {"top": "S", "bottom": "I", "left": "A", "right": "P"}
    assert four.orientation_labels("3d") == {"top": "S", "bottom": "I", "left": "R", "right": "L"}


def bright_centroid(pixels: np.ndarray) -> tuple[float, float]:
    """(row, column) centroid of the marker-bright pixels, as fractions of the image size."""
    rows, cols = np.nonzero(pixels.min(axis=2) >= 250)
    assert rows.size, "marker not visible"
    return rows.mean() / pixels.shape[0], cols.mean() / pixels.shape[1]


def test_marker_appears_where_the_letters_say(four):
    """The marker block sits at patient left/anterior/superior: check it on screen, not just in labels."""
    four.set_window_level(100, 1400)  # only the 1500 HU marker is white
    four.set_cursor((int(NX * 0.78), int(NY * 0.26), NZ - 4))
    row, col = bright_centroid(four.capture("axial"))
    assert col > 0.5 and row < 0.5  # L on the right, A on top
    row, col = bright_centroid(four.capture("coronal"))
    assert col > 0.5 and row < 0.5  # L on the right, S on top
    row, col = bright_centroid(four.capture("sagittal"))
    assert col < 0.5 and row < 0.5  # A on the left, S on top


def test_views_stay_radiological_for_other_patient_positions():
    # prone (HFP): columns run to patient right, rows to anterior
    views = pane_views(np.diag([-1.0, -1.0, 1.0]))
    axis, dop, up = views["axial"]
    assert axis == 2
    assert labels_for_view(dop, up) == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    # a coronal acquisition: slices stacked along y; the axial pane slices along the j axis
    coronal = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    views = pane_views(coronal)
    assert views["axial"][0] == 1 and views["coronal"][0] == 2
    for pane, expected in (("axial", "APRL"), ("coronal", "SIRL"), ("sagittal", "SIAP")):
        labels = labels_for_view(*views[pane][1:])
        assert "".join(labels[e] for e in ("top", "bottom", "left", "right")) == expected


def test_gantry_tilt_axial_pane_shows_acquired_planes(renderer):
    tilt = np.radians(18.5)
    direction = np.array([[1, 0, 0], [0, np.cos(tilt), 0], [0, -np.sin(tilt), 1.0]])  # sheared k (along z)
    renderer.set_volume(make_volume(direction=direction))
    dop = np.array(renderer.slice_views["axial"].camera.GetDirectionOfProjection())
    normal = np.cross(direction[:, 0], direction[:, 1] / np.linalg.norm(direction[:, 1]))
    assert abs(abs(np.dot(dop, normal)) - 1) < 1e-6
    assert renderer.orientation_labels("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    for pane in renderer.PANES:
        assert lit(renderer.capture(pane)) > 0.05, pane


def test_vr_preset_switch_changes_3d_pixels(four):
    images = {}
    for name in ("CT-Bone", "CT-Soft-Tissue", "CT-MIP", "CT-AAA", "CT-Lung"):
        four.set_vr_preset(name)
        assert four.vr_preset == name
        images[name] = four.capture("3d")
    assert lit(images["CT-MIP"]) > 0.05
    assert not np.array_equal(images["CT-Bone"], images["CT-MIP"])
    assert not np.array_equal(images["CT-Bone"], images["CT-Soft-Tissue"])
    four.set_vr_preset("ct_mip")  # loose spelling
    assert four.vr_preset == "CT-MIP"
    with pytest.raises(ValueError):
        four.set_vr_preset("CT-Nope")


def test_3d_rotation_updates_labels_and_reports(four):
    view = four.volume_view
    iren = view.interactor
    iren.SetEventInformation(100, 100, 0, 0)
    iren.LeftButtonPressEvent()
    for step in range(1, 8):
        iren.SetEventInformation(100 + 10 * step, 100, 0, 0)
        iren.MouseMoveEvent()
    iren.LeftButtonReleaseEvent()
    assert "camera" in four.events
    assert four.orientation_labels("3d")["right"] != "L"
    assert lit(four.capture("3d")) > 0.02


def test_set_volume_none_blanks_every_pane(renderer):
    renderer.set_volume(make_volume())
    renderer.render()
    renderer.set_volume(None)
    for pane in renderer.PANES:
        assert renderer.capture(pane).max() == 0, pane
    assert renderer.slice_info("axial") == (0, 0)
    renderer.set_slice("axial", 3)  # no volume: a no-op, not an error
    renderer.set_volume(make_volume())
    assert lit(renderer.capture("axial")) > 0.05


def test_volume_modified_progressive(renderer):
    """A preallocated stack that fills: grown views of one buffer, then in-place changes."""
    full = phantom_hu()
    buffer = np.full_like(full, -1000)
    renderer.set_volume(None)

    def arrived(n: int) -> None:  # the n middle slices arrived (sorted by position)
        buffer[:n] = full[(NZ - n) // 2 : (NZ - n) // 2 + n]

    arrived(4)
    renderer.volume_modified(make_volume(buffer[:4]))
    assert renderer.slice_info("axial") == (2, 4)
    assert lit(renderer.capture("axial")) > 0.05
    for n in (10, 25, NZ):
        arrived(n)
        renderer.volume_modified(make_volume(buffer[:n]), slice_index=n - 1)
        assert renderer.slice_info("axial") == (n - 1, n)
        for pane in renderer.PANES:
            assert lit(renderer.capture(pane)) > 0.02, (n, pane)
    # same grid, values changed in place: cheap path, pixels follow
    renderer.set_slice("axial", NZ // 2)
    before2d, before3d = renderer.capture("axial"), renderer.capture("3d")
    buffer[NZ // 2] = 1500
    renderer.volume_modified(make_volume(buffer))
    assert not np.array_equal(before2d, renderer.capture("axial"))
    assert not np.array_equal(before3d, renderer.capture("3d"))
    assert renderer.volume_view.fast_updates
    renderer.set_volume(make_volume(buffer), reset=False)  # load finished: full quality again
    assert not renderer.volume_view.fast_updates
    assert renderer.slice_info("axial") == (NZ // 2, NZ)


def test_a_filling_volume_gets_the_coarse_3d_preview_and_the_finished_one_the_draft(renderer):
    """While a load runs the 3D pane renders at most PREVIEW_3D_VOXELS (a cheap frame inside a 1-s load); the
    finished volume's draft and full quality keep more detail."""
    renderer.set_volume(None)
    volume = make_volume(phantom_hu(128, 128, 100))  # 1.6 M voxels
    view = renderer.volume_view
    renderer.volume_modified(volume)
    assert view.preview and view.strides != (1, 1, 1)
    assert int(np.prod(view.geometry.dims)) <= PREVIEW_3D_VOXELS
    assert lit(renderer.capture("3d")) > 0.02
    renderer.set_fast_3d(True)  # the load finished: the draft (4 M voxels at most) until the session is idle
    assert view.fast_updates and not view.preview and view.strides == (1, 1, 1)
    renderer.set_volume(volume, reset=False)
    assert not view.fast_updates and not view.preview


def test_large_volumes_are_decimated_for_3d_only():
    assert decimation_strides((64, 64, 48), (1, 1, 1), 16_000_000) == (1, 1, 1)
    strides = decimation_strides((512, 512, 380), (0.7, 0.7, 1.0), 16_000_000)
    assert strides == (2, 2, 2)
    assert decimation_strides((512, 512, 100), (0.5, 0.5, 5.0), 16_000_000) == (2, 1, 1)


def test_decimated_volume_renders(renderer):
    renderer.volume_view.max_voxels = 20_000
    try:
        renderer.set_volume(make_volume())
        assert renderer.volume_view.strides != (1, 1, 1)
        assert lit(renderer.capture("3d")) > 0.05
        assert renderer.slice_info("axial") == (NZ // 2, NZ)  # 2D panes keep full resolution
    finally:
        renderer.volume_view.max_voxels = 16_000_000
        renderer.set_volume(make_volume())


def test_several_renderers_in_one_process(renderer):
    other = FourPaneRenderer(size=(120, 100))
    try:
        other.set_volume(make_volume())
        renderer.set_volume(make_volume())
        assert lit(other.capture("axial")) > 0.05
        assert other.capture("coronal").shape == (100, 120, 3)
        assert lit(renderer.capture("axial")) > 0.05
        assert lit(other.capture("3d")) > 0.02
    finally:
        other.close()


def test_set_volume_none_releases_the_voxels(renderer):
    """Unload must free memory: no VTK object may keep the numpy buffer alive."""
    hu = phantom_hu()
    ref = weakref.ref(hu)
    renderer.set_volume(make_volume(hu))
    renderer.render()
    del hu
    renderer.set_volume(None)
    renderer.render()
    gc.collect()
    assert ref() is None


def test_labels_are_right_before_any_volume():
    r = FourPaneRenderer(size=(64, 64))
    try:
        assert r.orientation_labels("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
        assert r.orientation_labels("sagittal")["left"] == "A"
        assert r.orientation_labels("3d")["top"] == "S"
        assert r.slice_info("coronal") == (0, 0)
        for pane in r.PANES:
            assert r.capture(pane).max() == 0
    finally:
        r.close()


def test_trame_vtk_event_path(four):
    """The calls trame-vtk's remote view makes: vtkWebApplication.HandleInteractionEvent (mouse, normalized
    coordinates, y up), interactor.MouseWheel*Event (wheel) and StillRenderToBuffer (image)."""
    from vtkmodules.vtkWebCore import vtkWebApplication, vtkWebInteractionEvent

    app = vtkWebApplication()
    window = four.render_windows["axial"]
    left = vtkWebInteractionEvent.LEFT_BUTTON

    def send(buttons: int, x: float, y: float) -> None:
        event = vtkWebInteractionEvent()
        event.SetButtons(buttons)
        event.SetX(x)
        event.SetY(y)
        app.HandleInteractionEvent(window, event)

    send(0, 0.25, 0.75)
    send(left, 0.25, 0.75)
    send(0, 0.25, 0.75)  # click in the upper left: patient right (low i), anterior (low j)
    assert four.events == ["cursor"]
    i, j, k = four.cursor
    assert i < NX // 2 and j < NY // 2 and k == NZ // 2
    width, _ = four.window_level
    send(left, 0.5, 0.5)
    for step in range(1, 6):
        send(left, 0.5 + 0.05 * step, 0.5)
    send(0, 0.75, 0.5)
    assert four.window_level[0] > width and four.events[-1] == "window"
    image = app.StillRenderToBuffer(window, 0, 90)
    assert image is not None and image.GetDataSize() > 0
    four.render_windows["sagittal"].GetInteractor().MouseWheelForwardEvent()
    assert four.slice_info("sagittal")[0] == i + 1 and four.events[-1] == "slice"


def test_a_dropped_renderer_goes_by_reference_counting_not_the_cyclic_collector():
    """No reference cycle runs through VTK (weak observer callbacks): the panes are taken apart in their own order
    when the last reference goes, never by Python's cyclic collector, which tore them down in an order that
    crashed VTK's garbage collector."""
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        r = FourPaneRenderer(size=(64, 64))
        r.set_volume(make_volume())
        r.render("axial")
        refs = [weakref.ref(r), *(weakref.ref(p) for p in r._panes.values())]
        del r
        assert all(ref() is None for ref in refs)
    finally:
        gc.enable()
