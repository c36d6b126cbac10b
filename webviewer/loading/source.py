"""Where the ZIP bytes come from: an http(s) URL (aiohttp client), a local .zip file, or a local folder.

Every source can be read again from the start (``chunks()`` opens a new request or file each time): a fallback
to a safer mode after bytes were consumed restarts the download.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

from webviewer.errors import BadInputError, HttpStatusError, SourceError, WebViewerError
from webviewer.loading.http_errors import client_error
from webviewer.loading.limits import Limits
from webviewer.loading.members import Member
from webviewer.loading.zipdir import (
    ZipEntry,
    check_zip_magic,
    entries_from_zipfile,
    parse_central_directory,
    parse_eocd,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # read size for files and for the HTTP stream (aiohttp returns what it has, up to this)
EOCD_TAIL_BYTES = 65536 + 22
MAX_CENTRAL_DIR_BYTES = 8 << 20


@dataclass
class SourceOptions:
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 30.0
    limits: Limits | None = None
    #: HTTP basic credentials (user, password) and extra request headers (e.g. Authorization: Bearer ...)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: dict[str, str] | None = field(default=None, repr=False)


_UNKNOWN = object()
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class Source:
    """What the engine reads a CT from. ``kind`` is "http", "file" or "folder".

    The body is a ZIP unless a source splits it itself (DICOMweb's multipart): such a source overrides
    :meth:`stream_members` and :meth:`extract_members`, which return None here (the engine unzips the body).
    """

    kind = "source"
    #: total bytes when known (Content-Length, file size)
    size: int | None = None
    #: the source knows its instance count before the body arrives (Orthanc): progress has a total in every mode
    knows_instance_count = False
    #: the archive size seen by the central-directory probe, to compare with the download's (None: not probed)
    probed_size: int | None = None
    #: False: no body to unzip, the members are the source's own files (a folder), read with :meth:`iter_members`
    has_body = True

    def __init__(self, location: str, options: SourceOptions | None = None) -> None:
        self.location = location
        self.options = options or SourceOptions()
        self.limits = self.options.limits or Limits()

    @property
    def name(self) -> str:
        """A display name: the last path segment without .zip."""
        path = urlsplit(self.location).path if "://" in self.location else self.location
        stem = unquote(path.rstrip("/").rsplit("/", 1)[-1]) or self.location
        return stem[:-4] if stem.lower().endswith(".zip") else stem

    async def chunks(self) -> AsyncIterator[bytes]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield b""

    async def member_count(self) -> int | None:
        """Number of likely image members from the central directory, if cheaply known."""
        return None

    async def directory(self) -> list[ZipEntry] | None:
        """The ZIP's central directory entries if they can be had before the download (local file, Range)."""
        return None

    def stream_members(self, chunks: Iterable[bytes], limits: Limits,
                       consumed: Callable[[], int] | None = None) -> Iterator[Member] | None:
        """The members of a streamed body that is not a ZIP, as they complete; None: the engine unzips it."""
        return None

    def extract_members(self, buffer: bytes, limits: Limits, *, on_member: Callable[[Member], None] | None = None,
                        should_stop: Callable[[], bool] | None = None) -> list[Member] | None:
        """The members of a whole downloaded body that is not a ZIP; None: the engine unzips it."""
        return None

    def read_local(self) -> bytes | None:
        """The whole body read from local storage in this (worker) thread; None: download it with chunks()."""
        return None

    def local_chunks(self) -> Iterator[bytes] | None:
        """The body's chunks read on the calling (worker) thread, no event-loop hops; None: download with chunks()."""
        return None

    def iter_members(self) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of each member of a source without a body (``has_body`` False)."""
        raise NotImplementedError(f"{type(self).__name__} has a body to unzip, not members of its own")

    async def close(self) -> None:
        """Release network resources."""


def _count_members(names_sizes: Iterable[tuple[str, int]]) -> int:
    from webviewer.loading.dicom import skip_reason_for_name

    return sum(1 for name, size in names_sizes if size > 0 and skip_reason_for_name(name) is None)


def _count_entries(entries: list[ZipEntry]) -> int:
    return _count_members((e.name, e.size) for e in entries)


class FileSource(Source):
    kind = "file"

    def __init__(self, location: str, options: SourceOptions | None = None) -> None:
        super().__init__(location, options)
        self.path = Path(location)
        if not self.path.is_file():
            raise BadInputError(f"{location} does not exist or is not a file. Give a .zip file, a folder or a URL.")
        self.size = self.path.stat().st_size
        self._directory: list[ZipEntry] | None | object = _UNKNOWN

    def local_chunks(self, chunk_bytes: int | None = None) -> Iterator[bytes]:
        """Read the file in chunks (for a worker thread; no event loop hops)."""
        chunk_bytes = chunk_bytes or CHUNK_BYTES  # module global: tests vary it (chunk-boundary matrix)
        self.limits.check_archive(self.size or 0)
        with open(self.path, "rb") as f:
            head: bytes | None = b""
            while chunk := f.read(chunk_bytes):
                if head is not None:
                    head += chunk
                    if len(head) < 4:
                        continue
                    check_zip_magic(head, str(self.path))
                    chunk, head = head, None
                yield chunk
            if head is not None:
                check_zip_magic(head, str(self.path))

    async def chunks(self) -> AsyncIterator[bytes]:
        it = self.local_chunks()
        while True:
            chunk = await asyncio.to_thread(next, it, None)
            if chunk is None:
                return
            yield chunk

    def read_local(self) -> bytes:
        self.limits.check_archive(self.size or 0)
        data = self.path.read_bytes()
        check_zip_magic(data[:512], str(self.path))
        return data

    async def member_count(self) -> int | None:
        entries = await self.directory()
        return None if entries is None else _count_entries(entries)

    async def directory(self) -> list[ZipEntry] | None:
        if self._directory is _UNKNOWN:

            def read() -> list[ZipEntry] | None:
                try:
                    with zipfile.ZipFile(self.path) as zf:
                        return entries_from_zipfile(zf.infolist())
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, struct.error, EOFError):
                    return None  # the load reads the archive itself and reports what is wrong

            self._directory = await asyncio.to_thread(read)
        return self._directory


class FolderSource(Source):
    """A folder of DICOM files: its files are the members (no ZIP)."""

    kind = "folder"
    has_body = False

    def __init__(self, location: str, options: SourceOptions | None = None) -> None:
        super().__init__(location, options)
        self.path = Path(location)
        self.files = sorted(p for p in self.path.rglob("*") if p.is_file())
        self.limits.check_members(len(self.files))
        self.size = sum(p.stat().st_size for p in self.files)
        self.limits.check_total(self.size)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def iter_members(self) -> Iterator[tuple[str, bytes]]:
        """(relative posix name, bytes) of every file, sorted by path."""
        for p in self.files:
            size = p.stat().st_size
            rel = p.relative_to(self.path).as_posix()
            self.limits.check_member(rel, size)
            yield rel, p.read_bytes()

    async def member_count(self) -> int | None:
        return _count_members([(p.relative_to(self.path).as_posix(), p.stat().st_size) for p in self.files])


class HttpSource(Source):
    """An http(s) URL serving a ZIP; connect and stall timeouts; streams chunked or Content-Length bodies."""

    kind = "http"
    #: how error messages name the server
    server_label = "the server"

    def __init__(self, location: str, options: SourceOptions | None = None) -> None:
        super().__init__(location, options)
        self._session: aiohttp.ClientSession | None = None
        self.accept_ranges = False
        self._directory: list[ZipEntry] | None | object = _UNKNOWN
        self._directory_lock = asyncio.Lock()
        self._entry_count: int | None = None

    def _timeout(self) -> aiohttp.ClientTimeout:
        o = self.options
        return aiohttp.ClientTimeout(total=None, connect=o.connect_timeout_s, sock_connect=o.connect_timeout_s,
                                     sock_read=o.stall_timeout_s)

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = dict(self.options.headers or {})
            if self.options.auth:
                headers["Authorization"] = aiohttp.encode_basic_auth(*self.options.auth)
            self._session = aiohttp.ClientSession(
                timeout=self._timeout(), read_bufsize=CHUNK_BYTES, headers=headers or None
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def client_error(self, exc: BaseException, received: int | None = None) -> WebViewerError:
        """The viewer's error for an aiohttp failure (or timeout) while reading this source."""
        o = self.options
        return client_error(exc, self.location, server=self.server_label, connect_timeout_s=o.connect_timeout_s,
                            stall_timeout_s=o.stall_timeout_s, received=received)

    async def chunks(self) -> AsyncIterator[bytes]:
        session = await self._get_session()
        received = 0
        try:
            async with session.get(self.location) as resp:
                if resp.status >= 400:
                    raise HttpStatusError(resp.status, self.location)
                if resp.status != 200:
                    raise SourceError(f"The server answered HTTP {resp.status} for {self.location}; expected 200.")
                self.accept_ranges = resp.headers.get("Accept-Ranges", "").lower() == "bytes"
                if resp.content_length is not None:
                    self.size = resp.content_length
                    self.limits.check_archive(resp.content_length)
                head = b""
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    received += len(chunk)
                    if received > self.limits.max_archive_bytes:
                        self.limits.check_archive(received)
                    if head is not None:
                        head += chunk
                        if len(head) < 4:
                            continue
                        check_zip_magic(head, self.location)
                        chunk, head = head, None
                    yield chunk
                if head is not None:
                    check_zip_magic(head, self.location)
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise self.client_error(exc, received) from exc

    async def member_count(self) -> int | None:
        """Count members from the central directory read with Range requests; None if the server refuses."""
        entries = await self.directory()
        if entries is None:
            return self._entry_count
        return _count_entries(entries)

    async def directory(self) -> list[ZipEntry] | None:
        """The central directory read with Range requests (once; later calls reuse it); None if refused."""
        async with self._directory_lock:
            if self._directory is _UNKNOWN:
                try:
                    self._directory = await asyncio.wait_for(
                        self._probe_central_directory(), self.options.connect_timeout_s
                    )
                except (TimeoutError, aiohttp.ClientError, ConnectionError, ValueError, struct.error) as exc:
                    log.debug("central directory probe failed: %r", exc)
                    self._directory = None
        return self._directory  # type: ignore[return-value]

    async def _range(self, header: str) -> tuple[bytes, int, int] | None:
        """(body, first byte offset, archive size) of a Range request; None unless the server answered 206 with
        a whole, consistent body (aiohttp's ``read(n)`` returns what has arrived, so read to the end)."""
        session = await self._get_session()
        async with session.get(self.location, headers={"Range": header}) as resp:
            if resp.status != 206:
                resp.close()  # a 200 would send the whole archive: drop it
                return None
            match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if match is None:
                return None
            first, last, total = (int(g) for g in match.groups())
            if last - first + 1 > MAX_CENTRAL_DIR_BYTES + EOCD_TAIL_BYTES:
                return None
            body = bytearray()
            while chunk := await resp.content.read(1 << 16):
                body += chunk
                if len(body) > last - first + 1:
                    return None
            if len(body) != last - first + 1:
                return None
            return bytes(body), first, total

    async def _probe_central_directory(self) -> list[ZipEntry] | None:
        got = await self._range(f"bytes=-{EOCD_TAIL_BYTES}")
        if got is None:
            return None
        tail, tail_start, total = got
        if tail_start + len(tail) != total:
            return None
        self.probed_size = total
        end = parse_eocd(tail, tail_start)
        self._entry_count = end.entries
        if end.entries == 0:
            return []
        if end.cd_size > MAX_CENTRAL_DIR_BYTES:
            return None
        if end.cd_offset >= tail_start:
            cd = tail[end.cd_offset - tail_start : end.cd_offset - tail_start + end.cd_size]
        else:
            got = await self._range(f"bytes={end.cd_offset}-{end.cd_offset + end.cd_size - 1}")
            if got is None or got[1] != end.cd_offset:
                return None
            cd = got[0]
        entries = parse_central_directory(cd, end.concat)
        if len(cd) != end.cd_size or len(entries) != end.entries:
            log.debug("central directory incomplete: %d of %d entries", len(entries), end.entries)
            return None
        return entries


#: openers for http(s) URLs that an adapter knows better than a plain download (Orthanc archives, DICOMweb);
#: each returns its Source for a URL it recognises, else None. Adapters register through ``register_url_source``.
UrlOpener = Callable[[str, "SourceOptions | None"], "Source | None"]
_URL_OPENERS: list[UrlOpener] = []


def register_url_source(opener: UrlOpener) -> None:
    """Let an adapter open the http(s) URLs it recognises (called by the entry points; idempotent)."""
    if opener not in _URL_OPENERS:
        _URL_OPENERS.append(opener)


def _registered_source(location: str, options: SourceOptions | None) -> Source | None:
    for opener in _URL_OPENERS:
        source = opener(location, options)
        if source is not None:
            return source
    return None


def open_source(source: str | os.PathLike, options: SourceOptions | None = None) -> Source:
    """Pick the source type: http(s) URL, local folder, or local file."""
    text = os.fspath(source)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("http", "https"):
        special = _registered_source(text, options)
        return special if special is not None else HttpSource(text, options)
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif scheme:
        raise BadInputError(f"Unsupported source {text!r}: give an http(s) URL, a .zip file or a folder.")
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(str(path), options)
    if path.exists():
        return FileSource(str(path), options)
    raise BadInputError(f"{text} does not exist. Give an http(s) URL, a .zip file or a folder of DICOM files.")
