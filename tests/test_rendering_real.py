"""FourPaneRenderer on the real CT series in ../shared/data/real (read in place through tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from realdata import real_series_dir

from webviewer.loading.dicom import NotAnImageSlice, decode_hu, read_header
from webviewer.loading.volume import assemble_volume
from webviewer.rendering import FourPaneRenderer


def load_series(folder: Path):
    slices = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix == ".md":
            continue
        data = path.read_bytes()
        try:
            header = read_header(path.name, data)
        except NotAnImageSlice:
            continue
        slices.append((header, decode_hu(data, header)))
    volume, _warnings, _meta = assemble_volume(slices, max_volume_bytes=1 << 30)
    return volume


@pytest.fixture(scope="module")
def renderer():
    r = FourPaneRenderer(size=(200, 200))
    yield r
    r.close()


def test_cthead_auto_window_and_presets_fit_unrescaled_data(renderer):
    """Slicer's CTHead stores values without the HU rescale: auto W/L and the VR presets must still work."""
    volume = load_series(real_series_dir("slicer-cthead-64px"))
    assert volume.hu.shape == (93, 64, 64) and volume.window is None
    renderer.set_volume(volume)
    assert renderer.window_preset == "auto"
    assert renderer.slice_info("axial") == (46, 93)
    assert renderer.orientation_labels("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    axial = renderer.capture("axial").max(axis=2)
    head = axial[axial > 0]
    assert head.size > 0.2 * axial.size
    assert head.std() > 30 and (head >= 250).mean() < 0.3  # contrast, not a white blob
    renderer.set_window_preset("soft-tissue")  # literal HU window: the head is (wrongly) all white
    assert (renderer.capture("axial").max(axis=2) >= 250).mean() > (axial >= 250).mean()
    assert renderer.volume_view.hu_offset == 1024.0
    bone = renderer.capture("3d")
    assert (bone.max(axis=2) > 0).mean() > 0.05
    renderer.set_vr_preset("CT-MIP")
    assert not np.array_equal(bone, renderer.capture("3d"))


def test_gantry_tilt_series_shows_acquired_slices(renderer):
    volume = load_series(real_series_dir("dcmqa-ge-head-gantrytilt"))
    renderer.set_volume(volume)
    assert renderer.slice_info("axial")[1] == volume.hu.shape[0]
    d = np.asarray(volume.direction, dtype=float)
    normal = np.cross(d[:, 0], d[:, 1])
    dop = np.array(renderer.slice_views["axial"].camera.GetDirectionOfProjection())
    assert abs(abs(np.dot(dop, normal / np.linalg.norm(normal))) - 1) < 1e-6
    assert renderer.volume_view.hu_offset == 0.0
    for pane in renderer.PANES:
        assert (renderer.capture(pane).max(axis=2) > 0).mean() > 0.03, pane
    assert renderer.orientation_labels("sagittal")["left"] == "A"
