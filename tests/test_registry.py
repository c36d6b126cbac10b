"""registry.py: content ids, add/list/get/remove/clear, memory released on remove."""

from __future__ import annotations

import gc
import re
import weakref
from dataclasses import dataclass, field

import numpy as np
import pytest

from webviewer.loading.registry import Content, ContentRegistry, make_content_id
from webviewer.loading.volume import CTVolume
from webviewer.rendering.image import hu_to_vtk


@dataclass
class FakeResult:
    content_id: str
    name: str
    mode: str
    volume: CTVolume
    metadata: dict = field(default_factory=dict)


def _result(mode: str = "stream-dicom", now_ms: int = 1_700_000_000_000, size: int = 64) -> FakeResult:
    hu = np.zeros((size, size, size), dtype=np.int16)
    vol = CTVolume(hu, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    meta = {"series_description": "S", "dimensions": [size] * 3, "spacing": [1.0] * 3}
    return FakeResult(make_content_id(mode, now_ms), f"CT - CT 4-pane ({size} slices)", mode, vol, meta)


@pytest.mark.parametrize(
    ("mode", "prefix"),
    [("stream-dicom", "PoC_CT_STREAMDICOM_"), ("stream-files", "PoC_CT_STREAMFILE_"), ("batch", "CT_BATCH_")],
)
def test_content_ids(mode, prefix):
    assert make_content_id(mode, 1234) == f"{prefix}1234"
    assert re.fullmatch(rf"{prefix}\d{{13}}", make_content_id(mode))


def test_content_id_accepts_enum_like_and_rejects_unknown():
    class Mode:
        value = "batch"

    assert make_content_id(Mode(), 5) == "CT_BATCH_5"
    with pytest.raises(ValueError, match="unknown load mode"):
        make_content_id("fast", 1)


def test_automatic_ids_are_unique():
    ids = {make_content_id("batch") for _ in range(200)}
    assert len(ids) == 200


def test_add_list_get_remove_clear():
    reg = ContentRegistry()
    a = reg.add(_result("batch", 1), source="http://x/a.zip")
    b = reg.add(_result("stream-files", 2))
    assert isinstance(a, Content)
    assert a.type == "CT" and a.source == "http://x/a.zip" and a.mode == "batch"
    assert a.id == "CT_BATCH_1" and a.volume is not None
    assert [c.id for c in reg.list()] == ["CT_BATCH_1", "PoC_CT_STREAMFILE_2"]
    assert reg.get("CT_BATCH_1") is a and reg.get("nope") is None
    assert "volume" not in a.to_json() and a.to_json()["metadata"]["series_description"] == "S"
    assert reg.remove("CT_BATCH_1") is True
    assert reg.remove("CT_BATCH_1") is False
    assert a.volume is None
    assert len(reg) == 1 and "PoC_CT_STREAMFILE_2" in reg
    reg.clear()
    assert reg.list() == [] and b.volume is None


def test_remove_releases_the_volume_memory():
    reg = ContentRegistry()
    result = _result(size=128)
    array_ref = weakref.ref(result.volume.hu)
    volume_ref = weakref.ref(result.volume)
    content = reg.add(result)
    image, _array, _flat = hu_to_vtk(content.volume.hu, content.volume.spacing)  # a view, as the renderer holds
    del result, image, _array, _flat
    gc.collect()
    assert array_ref() is not None  # still registered
    reg.remove(content.id)
    gc.collect()
    assert volume_ref() is None and array_ref() is None
