"""Streaming loads that cut members by the central directory (Range probe, local file) and when they cannot."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.pipeline_helpers import make_zip, serve, shuffled, synthetic_files, zip_handler
from webviewer.loading import LoadOptions, load

BY_DIRECTORY = "unzipping by the central directory"
IN_ORDER = "unzipping with stream-unzip"


@pytest.fixture
def ct(tmp_path):
    members = synthetic_files(tmp_path / "s", slices=16)
    return members, make_zip(shuffled(members))


@pytest.mark.parametrize("mode", ["stream-dicom", "stream-files"])
@pytest.mark.parametrize("ranges", [True, False])
async def test_http_load_uses_the_directory_when_the_server_answers_range(aiohttp_server, caplog, ct, mode, ranges):
    _, data = ct
    server = await serve(aiohttp_server, {"/ct.zip": zip_handler(data, ranges=ranges, chunk=3001)})
    url = str(server.make_url("/ct.zip"))
    reference = await load(url, "batch")
    with caplog.at_level(logging.INFO, logger="webviewer.loading.run"):
        r = await load(url, mode)
    assert (BY_DIRECTORY in caplog.text) is ranges
    assert (IN_ORDER in caplog.text) is not ranges
    assert np.array_equal(r.volume.hu, reference.volume.hu)
    assert r.fallback is None


async def test_local_zip_uses_the_directory_and_inflate_workers_zero_does_not(tmp_path, caplog, ct):
    _, data = ct
    path = tmp_path / "ct.zip"
    path.write_bytes(data)
    with caplog.at_level(logging.INFO, logger="webviewer.loading.run"):
        parallel = await load(path, "stream-dicom")
        assert BY_DIRECTORY in caplog.text and IN_ORDER not in caplog.text
        caplog.clear()
        ordered = await load(path, "stream-dicom", options=LoadOptions(inflate_workers=0))
        assert IN_ORDER in caplog.text and BY_DIRECTORY not in caplog.text
    assert np.array_equal(parallel.volume.hu, ordered.volume.hu)


async def test_archive_that_changes_between_requests_still_loads(aiohttp_server, caplog, ct):
    """The Range probe sees one archive, the download another (e.g. a ZIP built anew per request)."""
    members, data = ct
    other = make_zip(shuffled(members, seed=99))
    assert len(other) == len(data) and other != data
    full, tail = zip_handler(other, ranges=False), zip_handler(data)

    async def handler(request):
        return await (tail if request.headers.get("Range") else full)(request)

    server = await serve(aiohttp_server, {"/ct.zip": handler})
    url = str(server.make_url("/ct.zip"))
    with caplog.at_level(logging.INFO):
        r = await load(url, "stream-dicom")
    assert "does not match its central directory" in caplog.text
    reference = await load(url, "batch")
    assert np.array_equal(r.volume.hu, reference.volume.hu)


async def test_size_mismatch_between_probe_and_download_uses_stream_unzip(aiohttp_server, caplog, ct):
    members, data = ct
    bigger = make_zip(members + [("extra/readme.txt", b"x" * 100)])
    full, tail = zip_handler(bigger, ranges=False), zip_handler(data)

    async def handler(request):
        return await (tail if request.headers.get("Range") else full)(request)

    server = await serve(aiohttp_server, {"/ct.zip": handler})
    with caplog.at_level(logging.INFO, logger="webviewer.loading.run"):
        r = await load(str(server.make_url("/ct.zip")), "stream-dicom")
    assert IN_ORDER in caplog.text
    assert r.volume.hu.shape[0] == 16


async def test_directory_sent_in_pieces_is_read_whole(aiohttp_server, tmp_path):
    """A Range body that arrives in pieces (a real network) must not give a cut-short directory."""
    import asyncio

    from aiohttp import web

    prefix = "study-0001/series-0002-with-a-long-folder-name-as-exports-have/"
    members = synthetic_files(tmp_path / "s", slices=600, rows=8, columns=8, prefix=prefix)
    data = make_zip(members)
    assert len(data) - 65558 > zipfile_start_dir(data)  # the directory lies before the tail: a second Range

    async def handler(request):
        rng = request.headers.get("Range")
        if not rng:
            return await zip_handler(data)(request)
        a, b = rng[6:].split("-")
        start, end = (len(data) - int(b), len(data)) if a == "" else (int(a), int(b) + 1)
        body = data[start:end]
        resp = web.StreamResponse(status=206, headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"})
        resp.content_length = len(body)
        await resp.prepare(request)
        for i in range(0, len(body), 4096):
            await resp.write(body[i : i + 4096])
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp

    server = await serve(aiohttp_server, {"/ct.zip": handler})
    r = await load(str(server.make_url("/ct.zip")), "stream-dicom")
    assert r.volume.hu.shape[0] == 600 and r.fallback is None


def zipfile_start_dir(data: bytes) -> int:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.start_dir


async def test_many_concurrent_streaming_loads_finish(tmp_path, ct):
    """Inflate jobs have their own pool: loads that hold the shared workers cannot starve them."""
    import asyncio

    from webviewer.loading import run as run_module

    _, data = ct
    path = tmp_path / "ct.zip"
    path.write_bytes(data)
    loads = run_module.WORKERS // 2 + 2  # more streaming loads than the shared pool has pairs of threads
    results = await asyncio.wait_for(asyncio.gather(*(load(path, "stream-dicom") for _ in range(loads))), 300)
    assert all(np.array_equal(r.volume.hu, results[0].volume.hu) for r in results)
