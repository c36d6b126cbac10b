"""The Enhanced CT sample, the catalog's frame count and the app's picker item for a multi-frame study."""

from __future__ import annotations

import dataclasses

import numpy as np

from webviewer.api import samples
from webviewer.api.catalog import Catalog
from webviewer.app.catalog import ct_item
from webviewer.app.i18n import messages
from webviewer.loading import load
from webviewer.loading.dicom import ENHANCED_CT


def test_seed_enhanced_sample_is_the_seed_phantom_as_one_file():
    seed, enhanced = samples.SAMPLES["sample-seed"], samples.SAMPLES["sample-seed-enhanced"]
    assert enhanced.enhanced and not seed.enhanced
    same = dataclasses.replace(enhanced.spec, series_uid=seed.spec.series_uid, description=seed.spec.description)
    assert same == seed.spec  # the same phantom, voxel for voxel; only the series differs
    assert samples.sample_ids("seed-enhanced") == ["sample-seed-enhanced"]


async def test_enhanced_sample_generation_catalog_and_load(tmp_path, monkeypatch):
    """A tiny-sized Enhanced CT sample through the same generator: catalog entry, frames, same volume."""
    tiny = samples.SAMPLES["sample-tiny"]
    info = samples.SampleInfo("sample-tiny-enhanced", "Tiny Enhanced", "test", tiny.spec, enhanced=True)
    monkeypatch.setitem(samples.SAMPLES, info.id, info)
    (classic_zip, enhanced_zip) = samples.ensure_samples(["tiny", info.id], tmp_path, progress=False)
    assert samples.read_sample_meta(info.id, tmp_path)["frames"] == 48
    entries = {e.id: e.to_json() for e in Catalog.from_samples([info.id], tmp_path, progress=False)}
    assert entries[info.id]["frames"] == 48 and entries[info.id]["slices"] == 48
    ref = await load(classic_zip, "batch")
    for mode in ("batch", "stream-files", "stream-dicom"):
        r = await load(enhanced_zip, mode)
        assert np.array_equal(r.volume.hu, ref.volume.hu) and r.volume.origin == ref.volume.origin
        assert (r.metadata["frames"], r.metadata["sop_class"]) == (48, ENHANCED_CT)
    # a data folder with the same ZIP: the catalog probes the member and counts its frames
    data = tmp_path / "data"
    data.mkdir()
    (data / "enhanced.zip").write_bytes(enhanced_zip.read_bytes())
    (entry,) = Catalog.from_data_dir(data, tmp_path / "cache").entries()
    j = entry.to_json()
    assert (j["slices"], j["frames"], j["images"], j["rows"]) == (48, 48, 48, 64)


def test_picker_item_shows_the_frame_count():
    for lang in ("en", "ko"):
        t = messages(lang)
        multi = ct_item({"id": "x", "name": "Chest", "slices": 380, "frames": 380, "zip_bytes": 1e6}, t)
        classic = ct_item({"id": "y", "name": "Chest", "slices": 380, "frames": 0, "zip_bytes": 1e6}, t)
        assert "380" in multi["title"] and "Enhanced CT" in multi["title"]
        assert "Enhanced CT" not in classic["title"]
