"""The streaming modes over input chunk sizes 1, 7 and 65536 (the stream-unzip test matrix) on the small series."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import real_series_dir
from tests.pipeline_helpers import folder_files, make_zip, serve, shuffled, synthetic_files, zip_handler
from webviewer.loading import LoadOptions, load
from webviewer.loading import source as source_mod


@pytest.fixture(scope="module")
def slicer_zip(tmp_path_factory):
    members = folder_files(real_series_dir("slicer-cthead-64px"))
    path = tmp_path_factory.mktemp("slicer") / "slicer.zip"
    path.write_bytes(make_zip(shuffled(members)))
    return path


@pytest.fixture(scope="module")
def slicer_reference(slicer_zip):
    import asyncio

    return asyncio.run(load(slicer_zip, "batch")).volume


@pytest.mark.parametrize("chunk", [1, 7, 65536])
@pytest.mark.parametrize("mode", ["stream-files", "stream-dicom", "stream-dicom-prefetch"])
async def test_chunk_sizes(slicer_zip, slicer_reference, monkeypatch, mode, chunk):
    monkeypatch.setattr(source_mod, "CHUNK_BYTES", chunk)
    options = LoadOptions(prefetch_members=3) if mode.endswith("prefetch") else None
    r = await load(slicer_zip, mode.removesuffix("-prefetch"), options=options)
    assert r.volume.hu.shape == (93, 64, 64)
    assert np.array_equal(r.volume.hu, slicer_reference.hu)
    assert r.volume.origin == slicer_reference.origin
    assert r.metrics.bytes_downloaded == slicer_zip.stat().st_size


@pytest.mark.parametrize("server_chunk", [7, 65536])
@pytest.mark.parametrize("mode", ["stream-files", "stream-dicom"])
async def test_http_small_server_chunks(tmp_path, aiohttp_server, mode, server_chunk):
    members = synthetic_files(tmp_path / "s", slices=5, rows=16, columns=16)
    data = make_zip(members)
    server = await serve(aiohttp_server, {"/ct.zip": zip_handler(data, chunk=server_chunk, chunked=True)})
    url = str(server.make_url("/ct.zip"))
    r = await load(url, mode)
    ref = await load(url, "batch")
    assert np.array_equal(r.volume.hu, ref.volume.hu)
    assert r.volume.hu.shape == (5, 16, 16)
