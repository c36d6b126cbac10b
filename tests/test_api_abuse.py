"""The CT API under abuse (issue 13): absurd Ranges, endless rates, clients that vanish or stop reading."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import pytest
from aiohttp import web

from webviewer.api.app import API_KEY, add_api_routes, create_app, parse_range, start_api_server
from webviewer.api.catalog import Catalog, CatalogEntry

SIZE = 8_000_000


@pytest.fixture(scope="module")
def blob_catalog(tmp_path_factory) -> Catalog:
    path: Path = tmp_path_factory.mktemp("abuse") / "blob.zip"
    with open(path, "wb") as fh:  # sparse: no disk, no page cache
        fh.truncate(SIZE)
    entry = CatalogEntry(id="blob", name="blob", modality="OT", slices=0, rows=0, columns=0, dicom_bytes=0,
                         zip_bytes=SIZE, description="abuse", zip_path=path)
    return Catalog([entry])


def bare_app(catalog: Catalog) -> web.Application:
    """The routes as the trame server mounts them (no API middleware)."""
    app = web.Application()
    add_api_routes(app, catalog)
    return app


@pytest.mark.parametrize("factory", [create_app, bare_app])
@pytest.mark.parametrize("header", [
    "bytes=" + "9" * 5000 + "-", "bytes=0-" + "1" * 5000, "bytes=-" + "7" * 30, "bytes=١-٥", "bytes=0-٥",
    "bytes=" + " " * 300 + "0-1", "bytes=0x10-20",
])
async def test_absurd_ranges_get_a_clean_416(aiohttp_client, blob_catalog, factory, header) -> None:
    client = await aiohttp_client(factory(blob_catalog))
    resp = await client.get("/api/cts/blob/archive", headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"
    assert "error" in await resp.json()


def test_parse_range_takes_ascii_digits_only() -> None:
    assert parse_range("bytes=1-5", 10) == (1, 6)
    assert parse_range("bytes=" + "0" * 19 + "-", 10) == (0, 10)
    with pytest.raises(Exception, match="malformed"):
        parse_range("bytes=١-٥", 10)


async def test_a_rate_that_would_last_over_an_hour_is_refused(aiohttp_client, blob_catalog) -> None:
    client = await aiohttp_client(create_app(blob_catalog))
    resp = await client.get("/api/cts/blob/archive?rate=1000")  # 8 MB at 1 kB/s: 2.2 h
    assert resp.status == 400
    assert "at least" in (await resp.json())["error"]
    resp = await client.get("/api/cts/blob/archive?rate=1000", headers={"Range": "bytes=0-499"})
    assert resp.status == 206 and len(await resp.read()) == 500  # a short range at that rate is allowed


async def _raw_get(base: str, query: str = "") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /api/cts/blob/archive{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_a_client_leaving_during_the_latency_wait_logs_no_error(blob_catalog, caplog) -> None:
    runner, base = await start_api_server(blob_catalog)
    api = runner.app[API_KEY]
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_sleep(_: float) -> None:
        entered.set()
        await release.wait()

    api.sleep = held_sleep
    try:
        with caplog.at_level(logging.INFO):
            _, writer = await _raw_get(base, "?latency=60000")
            await asyncio.wait_for(entered.wait(), 60)
            writer.transport.abort()
            await asyncio.sleep(0)  # let the loop see the reset before the wait ends
            await asyncio.wait_for(_until_closed(api), 60)
            release.set()
            await asyncio.wait_for(api.wait_idle(), 60)
    finally:
        await runner.cleanup()
    assert api.stats["client_left"] == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _until_closed(api) -> None:
    """The server's request transport sees the client's reset (event loop ordering, not a timed sleep)."""
    while not any(t.is_closing() for t in _server_transports(api)):
        await asyncio.sleep(0)


def _server_transports(api) -> list:
    return [o.transport for o in gc.get_objects() if isinstance(o, web.BaseRequest) and o.transport is not None]


async def test_abandoned_downloads_leave_the_object_count_flat(blob_catalog) -> None:
    runner, base = await start_api_server(blob_catalog)
    api = runner.app[API_KEY]
    api.write_timeout_s = 0.5  # the stalled readers are dropped after this (production: 30 s)
    gc.collect()
    gc.disable()  # cycles would only be freed by a full collection: count what is left without one
    try:
        for _ in range(3):
            stalled = [await _raw_get(base) for _ in range(20)]  # read one byte, then never read again
            for reader, _ in stalled:
                await reader.readexactly(1)
            for _ in range(20):  # read one byte and hang up
                reader, writer = await _raw_get(base)
                await reader.readexactly(1)
                writer.transport.abort()
            await asyncio.wait_for(api.wait_idle(), 120)
            for _, writer in stalled:
                writer.transport.abort()
        live = [o for o in gc.get_objects() if isinstance(o, web.BaseRequest | web.StreamResponse)]
    finally:
        gc.enable()
        await runner.cleanup()
    assert api.stats["write_timeout"] + api.stats["client_left"] == 120
    assert api.stats["write_timeout"] >= 60
    assert live == []
