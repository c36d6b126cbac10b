"""Helpers for the pipeline tests: ZIP builders (ZIP64, data descriptors, junk), loopback HTTP handlers, observers."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from webviewer.loading import LoadObserver, ProgressEvent


class _NonSeekable(io.RawIOBase):
    """A write-only stream without seek/tell: zipfile then writes data descriptors (flag bit 3)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)


def make_zip(
    members: Iterable[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    force_zip64: bool = False,
    data_descriptors: bool = False,
) -> bytes:
    """A ZIP of ``members``; ``data_descriptors`` writes to a non-seekable stream (sizes after the data)."""
    out = _NonSeekable() if data_descriptors else io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            with zf.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)
    return bytes(out.buf) if data_descriptors else out.getvalue()


def folder_files(folder: Path, *, prefix: str = "") -> list[tuple[str, bytes]]:
    """(name, bytes) of every file in a folder except SOURCE.md, sorted by name."""
    return [
        (prefix + p.name, p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "SOURCE.md"
    ]


def zip_handler(
    data: bytes,
    *,
    chunked: bool = False,
    chunk: int = 65536,
    ranges: bool = True,
    drop_after: int | None = None,
    stall_after: int | None = None,
    requests: list | None = None,
    content_type: str = "application/zip",
    stalled: asyncio.Event | None = None,
):
    """An aiohttp handler serving ``data``: Content-Length or chunked, optional Range, drop or stall midway."""

    async def handler(request: web.Request) -> web.StreamResponse:
        rng = request.headers.get("Range")
        if requests is not None:
            requests.append(rng)
        body, status, headers = data, 200, {"Content-Type": content_type}
        if ranges:
            headers["Accept-Ranges"] = "bytes"
            if rng and rng.startswith("bytes="):
                a, b = rng[6:].split("-")
                size = len(data)
                start, end = (size - int(b), size) if a == "" else (int(a), (int(b) + 1) if b else size)
                start = max(0, start)
                body, status = data[start:end], 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        resp = web.StreamResponse(status=status, headers=headers)
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(body)
        await resp.prepare(request)
        sent = 0
        for i in range(0, len(body), chunk):
            if drop_after is not None and sent >= drop_after:
                request.transport.abort()
                return resp
            if stall_after is not None and sent >= stall_after:
                if stalled is not None:
                    stalled.set()
                await asyncio.sleep(3600)
            part = body[i : i + chunk]
            await resp.write(part)
            sent += len(part)
        await resp.write_eof()
        return resp

    return handler


def static_handler(body: bytes, *, status: int = 200, content_type: str = "text/html"):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type=content_type)

    return handler


async def serve(aiohttp_server, routes: dict[str, object]) -> object:
    """Start a loopback server with ``{path: handler}``; returns the TestServer (``.make_url(path)``)."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return await aiohttp_server(app)


class RecordingObserver(LoadObserver):
    """Records every call and the thread it came on."""

    def __init__(self) -> None:
        import threading

        self.events: list[ProgressEvent] = []
        self.placed: list[int] = []
        self.allocated = 0
        self.threads: set[int] = set()
        self._threading = threading

    def _mark(self) -> None:
        self.threads.add(self._threading.get_ident())

    def on_progress(self, event: ProgressEvent) -> None:
        self._mark()
        self.events.append(event)

    def on_volume_allocated(self, buffer) -> None:
        self._mark()
        self.allocated += 1

    def on_slices_placed(self, buffer, placed: int) -> None:
        self._mark()
        self.placed.append(placed)

    @property
    def states(self) -> list[str]:
        """Distinct consecutive states, in order."""
        out: list[str] = []
        for e in self.events:
            if not out or out[-1] != e.state.value:
                out.append(e.state.value)
        return out


def synthetic_files(
    folder: Path, *, prefix: str = "", name_prefix: str = "IM", **spec_fields
) -> list[tuple[str, bytes]]:
    """Write a synthetic series (webviewer.api.samples) into ``folder``; return its (name, bytes), name order."""
    from webviewer.api.samples import SeriesSpec, write_series

    spec_fields.setdefault("rows", 32)
    spec_fields.setdefault("columns", 32)
    spec_fields.setdefault("slices", 12)
    paths = write_series(folder, SeriesSpec(**spec_fields), name_prefix=name_prefix)
    return sorted((prefix + p.name, p.read_bytes()) for p in paths)


def shuffled(members: list, seed: int = 7) -> list:
    import random

    out = list(members)
    random.Random(seed).shuffle(out)
    return out
