"""budget.py and the registry's budget: which contents go, in which order, why; estimates before a download."""

from __future__ import annotations

import gc
import weakref
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest

from webviewer.errors import LimitExceededError
from webviewer.loading.budget import (
    DEFAULT_CONTENT_BUDGET_MB,
    BudgetExceededError,
    ContentBudget,
    load_need_bytes,
    volume_bytes_from_catalog,
    volume_bytes_from_directory,
    volume_bytes_from_source,
)
from webviewer.loading.registry import ContentRegistry, make_content_id
from webviewer.loading.volume import CTVolume
from webviewer.loading.zipdir import entries_from_zipfile

MB = 1_000_000


@dataclass
class Result:
    content_id: str
    name: str
    mode: str
    volume: CTVolume
    metadata: dict = field(default_factory=dict)


def result(mb: float, n: int) -> Result:
    hu = np.ones(int(mb * MB) // 2, dtype=np.int16).reshape(1, 1, -1)
    vol = CTVolume(hu, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    return Result(make_content_id("batch", n), f"CT {n}", "batch", vol)


def test_default_budget_is_the_constant_and_validated():
    assert ContentBudget().budget_bytes == DEFAULT_CONTENT_BUDGET_MB * MB
    assert ContentBudget.from_mb(1.5).budget_bytes == 1_500_000
    with pytest.raises(ValueError, match="positive"):
        ContentBudget.from_mb(0)
    with pytest.raises(ValueError, match="keep at least"):
        ContentBudget(keep=0)


def test_count_rule_keeps_the_one_on_screen_and_its_predecessor():
    b = ContentBudget.from_mb(1000)
    held = [("a", 10), ("b", 10), ("c", 10), ("d", 10)]
    out = b.evictions(held, on_screen="d")
    assert [(e.content_id, e.reason) for e in out] == [("a", "count"), ("b", "count")]
    # on screen is never a candidate, even when it is the oldest
    out = b.evictions(held, on_screen="a")
    assert [e.content_id for e in out] == ["b", "c"]


def test_room_before_a_load_goes_oldest_first_and_stops_when_it_fits():
    b = ContentBudget.from_mb(100)
    held = [("a", 30 * MB), ("b", 30 * MB), ("c", 30 * MB)]
    out = b.evictions(held, on_screen="c", incoming_bytes=35 * MB)
    assert [(e.content_id, e.reason) for e in out] == [("a", "budget")]
    assert "100 MB budget" in out[0].detail and "35 MB load" in out[0].detail
    out = b.evictions(held, on_screen="a", incoming_bytes=60 * MB)
    assert [e.content_id for e in out] == ["b", "c"]
    # before a load the count rule does not apply: nothing goes when it fits
    assert b.evictions(held, on_screen="c", incoming_bytes=MB) == []
    # render copies count too
    assert [e.content_id for e in b.evictions(held, on_screen="c", incoming_bytes=MB, extra_bytes=20 * MB)] == ["a"]


def test_volume_over_budget_is_refused_with_a_message_naming_the_budget():
    b = ContentBudget.from_mb(100)
    b.check_volume(100 * MB)
    b.check_volume(None)
    with pytest.raises(BudgetExceededError) as info:
        b.check_volume(250 * MB, "CT Seed")
    msg = info.value.message
    assert isinstance(info.value, LimitExceededError) and info.value.code == "budget"
    assert "CT Seed needs 250 MB" in msg and "budget of 100 MB" in msg
    assert "--content-budget-mb 500" in msg and "not downloaded" in msg


def test_estimates_from_catalog_and_zip_directory(tmp_path):
    assert volume_bytes_from_catalog({"slices": 380, "rows": 512, "columns": 512}) == 380 * 512 * 512 * 2
    assert volume_bytes_from_catalog({"slices": 10, "rows": None, "columns": 512}) is None
    assert volume_bytes_from_catalog({"slices": 10}) is None
    path = tmp_path / "ct.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(4):
            zf.writestr(f"series/IM{i}", b"\x00" * (2048 + 8192))
        zf.writestr("DICOMDIR", b"\x00" * 50_000)
        zf.writestr("series/", b"")
    with zipfile.ZipFile(path) as zf:
        entries = entries_from_zipfile(zf.infolist())
    assert volume_bytes_from_directory(entries) == 4 * 8192
    assert volume_bytes_from_directory([]) is None


async def test_estimate_reads_only_the_directory_of_a_local_zip(tmp_path):
    path = tmp_path / "ct.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IM1", b"\x01" * (2048 + 100_000))
    assert await volume_bytes_from_source(str(path)) == 100_000
    assert await volume_bytes_from_source(str(tmp_path)) is None  # a folder has no directory


def test_registry_enforces_and_remembers_what_it_unloaded():
    reg = ContentRegistry(ContentBudget.from_mb(10))
    results = [result(3, i) for i in range(4)]
    refs = [weakref.ref(r.volume.hu) for r in results]
    ids = [r.content_id for r in results]
    for r in results:
        assert reg.make_room(3 * MB) == []  # 2 x 3 MB held + 3 MB fit in 10 MB
        reg.add(r)
        reg.enforce()
    del results, r
    gc.collect()
    assert [c.id for c in reg.list()] == ids[2:]
    assert reg.on_screen == ids[3]
    assert [u.id for u in reg.unloaded] == [ids[1], ids[0]]
    assert {u.reason for u in reg.unloaded} == {"count"}
    assert [ref() is None for ref in refs] == [True, True, False, False]
    assert reg.held_bytes() == 6 * MB
    # a 5 MB load needs room: 6 + 5 > 10 -> the predecessor goes, the one on screen stays
    gone = reg.make_room(5 * MB)
    assert [(u.id, u.reason) for u in gone] == [(ids[2], "budget")]
    assert [c.id for c in reg.list()] == [ids[3]]
    assert reg.unloaded[0].to_json()["memory_mb"] == 3.0


def test_registry_without_budget_never_unloads_and_remove_clears_on_screen():
    reg = ContentRegistry()
    for i in range(3):
        reg.add(result(1, 100 + i))
    assert reg.enforce() == [] and reg.make_room(10**12) == [] and len(reg) == 3
    reg.remove(reg.on_screen)
    assert reg.on_screen is None


def test_a_load_needs_room_for_its_working_memory():
    assert load_need_bytes(100, "stream-dicom") == 105
    assert load_need_bytes(100, "batch") == 360
    assert load_need_bytes(100, "stream-files") == 310
    assert load_need_bytes(100, "unknown") == 360  # the largest, when in doubt
