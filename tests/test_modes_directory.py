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
