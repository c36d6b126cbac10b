"""The CT API: an aiohttp application serving the catalog and each CT as a streamed, throttled ZIP.

Routes (``prefix`` defaults to ``/api``)::

    GET       /api/cts                     JSON list of catalog entries
    GET       /api/cts/{id}                one entry; 404 JSON for an unknown id
    GET|HEAD  /api/cts/{id}/archive        the ZIP: Content-Length, Accept-Ranges, Range (206/416),
                                           ?rate=100mbit&latency=10 or ?profile=4g (400 JSON for bad values)
    GET       /api/profiles                the network profiles the UI offers
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from webviewer.errors import ControlSignal

from . import throttle
from .catalog import Catalog, CatalogEntry
from .throttle import Pacer, chunk_size_for, parse_latency, parse_profile, parse_rate

log = logging.getLogger(__name__)


@dataclass
class ApiSettings:
    """Server-wide defaults; per-request query parameters override them."""

    rate: float | None = None  # bytes/s, None = unlimited
    latency_ms: float = 0.0


CATALOG_KEY = web.AppKey("webviewer_catalog", Catalog)
SETTINGS_KEY = web.AppKey("webviewer_api_settings", ApiSettings)

#: ASCII digits only (``\d`` would take Arabic-Indic digits), at most 19 of them (beyond any file size)
_RANGE_RE = re.compile(r"^[ \t]*bytes[ \t]*=[ \t]*([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})[ \t]*$",
                       re.IGNORECASE | re.ASCII)
#: a longer Range header is refused (416) without being parsed
MAX_RANGE_HEADER = 200
#: a client that accepts no byte for this long is dropped (seconds)
WRITE_TIMEOUT_S = 30.0
#: no download may be paced to last longer than this (seconds): ?rate= below size / this is refused
MAX_DURATION_S = 3600.0


class RangeNotSatisfiable(ControlSignal):
    """The Range header cannot be served (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` for a single ``bytes=`` range, None to serve the whole file.

    Multiple ranges are ignored (whole file, as RFC 9110 allows); malformed or unsatisfiable ranges raise
    :class:`RangeNotSatisfiable`.
    """
    if header is None or not header.strip():
        return None
    if len(header) > MAX_RANGE_HEADER:
        raise RangeNotSatisfiable(f"Range header longer than {MAX_RANGE_HEADER} characters")
    if "," in header and header.strip().lower().startswith("bytes"):
        return None
    m = _RANGE_RE.match(header)
    if not m:
        raise RangeNotSatisfiable(f"malformed Range {header[:60]!r}")
    first, last = m.groups()
    if not first and not last:
        raise RangeNotSatisfiable(f"malformed Range {header!r}")
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable("empty suffix range")
        return max(0, size - n), size
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(f"range {header!r} outside 0-{size - 1}")
    return start, end + 1


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


class CtApi:
    """The handlers, bound to one catalog and settings (so they mount on any aiohttp app)."""

    def __init__(self, catalog: Catalog, settings: ApiSettings) -> None:
        self.catalog = catalog
        self.settings = settings
        #: injectable for tests: the latency sleep and the pacer class
        self.sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
        self.pacer_factory: Callable[[float | None], Pacer] = Pacer
        self.write_timeout_s = WRITE_TIMEOUT_S
        self.max_duration_s = MAX_DURATION_S
        #: archive responses in progress, and counters of how the others ended (for tests and the soak)
        self.active = 0
        self.stats = {"completed": 0, "client_left": 0, "write_timeout": 0}
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no archive response is in progress."""
        await self._idle.wait()

    def _entry(self, request: web.Request) -> CatalogEntry | None:
        return self.catalog.get(request.match_info.get("id", ""))

    async def list_cts(self, request: web.Request) -> web.Response:
        return web.json_response([e.to_json() for e in self.catalog.entries()])

    async def get_ct(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        if entry is None:
            return _json_error(404, "No CT with this id. GET /api/cts lists the available ids.")
        return web.json_response(entry.to_json())

    async def profiles(self, request: web.Request) -> web.Response:
        return web.json_response([p.to_json() for p in throttle.PROFILES.values()])

    def network(self, query) -> tuple[float | None, float]:
        """(rate, latency_ms) for a request: server defaults, then ?profile=, then ?rate= / ?latency=."""
        rate, latency = self.settings.rate, self.settings.latency_ms
        if "profile" in query:
            profile = parse_profile(query["profile"])
            rate, latency = profile.rate_bytes_per_s, profile.latency_ms
        if "rate" in query:
            rate = parse_rate(query["rate"])
        if "latency" in query:
            latency = parse_latency(query["latency"])
        return rate, latency

    async def archive(self, request: web.Request) -> web.StreamResponse:
        entry = self._entry(request)
        if entry is None:
            return _json_error(404, "No CT with this id. GET /api/cts lists the available ids.")
        try:
            rate, latency_ms = self.network(request.query)
        except ValueError as exc:
            return _json_error(400, str(exc))
        try:
            fh = open(entry.zip_path, "rb")  # noqa: SIM115 - closed below; opening a local file does not block
        except OSError:
            log.error("archive of %s is missing: %s", entry.id, entry.zip_path)
            return _json_error(410, "The archive of this CT is gone from the server; restart the API to rescan.")
        self.active += 1
        self._idle.clear()
        try:
            return await self._respond(request, fh, entry, rate, latency_ms)
        finally:
            fh.close()
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    def _too_slow(self, rate: float | None, size: int) -> str | None:
        """Why ``rate`` is refused for a body of ``size`` bytes (it would last over max_duration_s), else None."""
        if rate is None or size / rate <= self.max_duration_s:
            return None
        floor = size / self.max_duration_s
        return (f"rate {throttle.format_rate(rate)} would take {size / rate / 3600:.1f} h for this "
                f"{size} B archive; the most a download may take is {self.max_duration_s / 3600:g} h, "
                f"so use at least {throttle.format_rate(floor)} ({floor:.0f} bytes/s) or unlimited")

    async def _respond(self, request: web.Request, fh, entry: CatalogEntry, rate: float | None,
                       latency_ms: float) -> web.StreamResponse:
        st = os.fstat(fh.fileno())  # size of the file being sent, even if it is replaced meanwhile
        size = st.st_size
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        headers = {
            "Content-Type": "application/zip",
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Cache-Control": "no-cache",
            "Content-Disposition": f'attachment; filename="{entry.id}.zip"',
        }
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range.strip() != etag:
            range_header = None
        try:
            byte_range = parse_range(range_header, size)
        except RangeNotSatisfiable as exc:
            return web.json_response({"error": f"{exc}; the archive has {size} bytes", "status": 416},
                                     status=416, headers={"Content-Range": f"bytes */{size}",
                                                          "Accept-Ranges": "bytes"})
        status, start, end = 200, 0, size
        if byte_range is not None:
            status, (start, end) = 206, byte_range
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        too_slow = self._too_slow(rate, end - start)
        if too_slow:
            return _json_error(400, too_slow)
        headers["Content-Length"] = str(end - start)
        resp = web.StreamResponse(status=status, headers=headers)
        try:
            if request.method != "HEAD" and latency_ms > 0:
                await self.sleep(latency_ms / 1000.0)
                if _gone(request):
                    raise ConnectionResetError("the client left during the latency wait")
            await resp.prepare(request)
            if request.method != "HEAD":
                await self._send(request, resp, fh, start, end, rate)
            self.stats["completed"] += 1
        except (ConnectionError, TimeoutError) as exc:  # the client left or stopped reading: drop it
            timed_out = isinstance(exc, TimeoutError)
            self.stats["write_timeout" if timed_out else "client_left"] += 1
            log.info("archive %s: %s", entry.id,
                     f"no byte accepted for {self.write_timeout_s:g} s" if timed_out else "the client left")
            if request.transport is not None:
                request.transport.abort()
        return resp

    async def _send(self, request: web.Request, resp: web.StreamResponse, fh, start: int, end: int,
                    rate: float | None) -> None:
        """Send ``[start, end)`` of the open file in paced chunks with ``loop.sendfile`` (the kernel copies the
        bytes: no chunk buffers in this process, so clients that vanish leave no heap behind).

        Each chunk must be accepted within ``write_timeout_s`` (TimeoutError otherwise); a client that left
        raises ConnectionError before the next chunk.
        """
        pacer = self.pacer_factory(rate)
        chunk = chunk_size_for(rate)
        loop = asyncio.get_running_loop()
        pos = start
        while pos < end:
            n = min(chunk, end - pos)
            await pacer.wait(n)
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the client left")
            try:
                async with asyncio.timeout(self.write_timeout_s):
                    sent = await loop.sendfile(transport, fh, pos, n, fallback=True)
            except RuntimeError as exc:  # asyncio: "Transport is closing" (the client left meanwhile)
                if transport.is_closing():
                    raise ConnectionResetError(str(exc)) from exc
                raise
            if sent < n:
                raise OSError(f"{fh.name} shrank while it was being sent")
            pos += sent
        await resp.write_eof()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


API_KEY = web.AppKey("webviewer_api", CtApi)


def add_api_routes(
    app: web.Application,
    catalog: Catalog,
    *,
    rate: float | str | None = None,
    latency_ms: float | str = 0.0,
    prefix: str = "/api",
) -> CtApi:
    """Mount the API routes on an existing aiohttp app (the trame server mounts the API through this).

    ``rate`` (bytes/s, or a string such as ``100mbit``) and ``latency_ms`` are the server defaults; each archive
    request may override them with ``?rate=``, ``?latency=`` or ``?profile=``. Returns the handler object.
    """
    api = CtApi(catalog, ApiSettings(rate=parse_rate(rate), latency_ms=parse_latency(latency_ms)))
    prefix = prefix.rstrip("/")
    app.router.add_routes([
        web.get(f"{prefix}/cts", api.list_cts),
        web.get(f"{prefix}/cts/{{id}}", api.get_ct),
        web.get(f"{prefix}/cts/{{id}}/archive", api.archive),  # GET also registers HEAD
        web.get(f"{prefix}/profiles", api.profiles),
    ])
    return api


@web.middleware
async def _json_not_found(request: web.Request, handler):
    """Unknown paths under /api/ (traversal attempts included) get a JSON 404, not an HTML page."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith("/api/") or request.path == "/api":
            return _json_error(404, "Not found. GET /api/cts lists the CTs.")
        raise
    except web.HTTPMethodNotAllowed as exc:
        return _json_error(405, f"Method not allowed; use {', '.join(sorted(exc.allowed_methods))}.")


def create_app(
    catalog: Catalog, *, rate: float | str | None = None, latency_ms: float | str = 0
) -> web.Application:
    """The standalone API application (JSON 404s for unknown /api paths). Bad ``rate``/``latency_ms``: ValueError."""
    app = web.Application(middlewares=[_json_not_found])
    api = add_api_routes(app, catalog, rate=rate, latency_ms=latency_ms)
    app[CATALOG_KEY] = catalog
    app[SETTINGS_KEY] = api.settings
    app[API_KEY] = api
    return app


async def start_api_server(
    catalog: Catalog,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: logging.Logger | None = None,
    **kw: Any,
) -> tuple[web.AppRunner, str]:
    """Start the API in the running loop (port 0 = a free port); return the runner and the base URL.

    ``kw`` goes to :func:`create_app` (``rate``, ``latency_ms``). Stop it with ``await runner.cleanup()``.
    """
    app = create_app(catalog, **kw)
    runner = web.AppRunner(app, access_log=access_log)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    addr = runner.addresses[0]
    bound_host, bound_port = addr[0], addr[1]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"
