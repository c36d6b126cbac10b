"""Load sources for Orthanc: its archive ZIP (all three modes) and a DICOMweb WADO-RS series (multipart).

Both are :class:`~webviewer.loading.source.HttpSource` subclasses, so the engine streams them like any URL:

- :class:`OrthancArchiveSource` adds the credentials, clear 401/404 messages, and the instance count from the
  REST API (Orthanc streams the ZIP without a Content-Length and ignores Range, so the central-directory probe
  would only start a second archive).
- :class:`DicomWebSource` asks for ``multipart/related; type="application/dicom"`` and gives the engine the
  parts as members (:meth:`stream_members` for the streaming modes, :meth:`extract_members` for batch), each one
  the moment its last byte arrived; the instance count comes from QIDO-RS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from urllib.parse import urlsplit

import aiohttp

from webviewer.errors import BadInputError, HttpStatusError, LoadCancelledError, SourceError
from webviewer.loading.limits import Limits
from webviewer.loading.source import CHUNK_BYTES, HttpSource, SourceOptions, register_url_source
from webviewer.loading.unzip import Member
from webviewer.orthanc.auth import OrthancAuth
from webviewer.orthanc.client import OrthancClient
from webviewer.orthanc.http import status_error
from webviewer.orthanc.multipart import boundary_from_content_type, iter_parts
from webviewer.orthanc.urls import OrthancUrl, parse_orthanc_url

log = logging.getLogger(__name__)
#: the end-of-central-directory record is in the last 22 + 65535 (comment) bytes of a ZIP
_EOCD_WINDOW = 22 + 65535

DICOM_TYPE = "application/dicom"
#: as stored (no transcoding); the pixels decode the same either way, this spares Orthanc the work
WADO_ACCEPT = f'multipart/related; type="{DICOM_TYPE}"; transfer-syntax=*'


def _auth_of(options: SourceOptions | None, auth: OrthancAuth | None) -> OrthancAuth:
    if auth is not None:
        return auth
    return OrthancAuth.from_headers(getattr(options, "auth", None), getattr(options, "headers", None))


class _OrthancHttp(HttpSource):
    """HttpSource with credentials in every request and Orthanc's error messages."""

    what = "resource"
    server_label = "Orthanc"
    #: the engine asks :meth:`member_count` up front: progress without Content-Length, PoC2 preallocation
    knows_instance_count = True

    def __init__(self, location: str, options: SourceOptions | None = None, *, url: OrthancUrl | None = None,
                 auth: OrthancAuth | None = None) -> None:
        super().__init__(location, options)
        parsed = url or parse_orthanc_url(location)
        if parsed is None:
            raise BadInputError(f"{location} is not an Orthanc archive or DICOMweb series URL.")
        self.url = parsed
        self.auth = _auth_of(options, auth)
        extra = dict(getattr(self.options, "headers", None) or {})
        if self.auth.enabled:  # one Authorization header, from the credentials
            extra = {k: v for k, v in extra.items() if k.lower() != "authorization"}
        self.request_headers = {**extra, **self.auth.headers()}

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout(), read_bufsize=CHUNK_BYTES,
                                                  headers=self.request_headers)
        return self._session

    async def directory(self) -> None:
        """Orthanc builds its archives as it sends them: no Range request, so no directory up front."""
        return None

    def _status_error(self, status: int, reason: str = "") -> HttpStatusError:
        return status_error(status, self.location, auth=self.auth, what=self.what, reason=reason)


class OrthancArchiveSource(_OrthancHttp):
    """``{orthanc}/{studies|series|patients}/{id}/archive``: a ZIP streamed without Content-Length."""

    kind = "http"

    @property
    def what(self) -> str:  # type: ignore[override]
        return {"studies": "study", "patients": "patient"}.get(self.url.level, "series")

    @property
    def name(self) -> str:
        return f"Orthanc {self.what} {self.url.resource_id[:8]}"

    async def chunks(self) -> AsyncIterator[bytes]:
        """The ZIP's bytes; an answer cut short (Orthanc stopped: no Content-Length to tell) is a SourceError."""
        tail = b""
        received = 0
        try:
            async with contextlib.aclosing(super().chunks()) as inner:
                async for chunk in inner:
                    received += len(chunk)
                    tail = (tail + chunk[-_EOCD_WINDOW:])[-_EOCD_WINDOW:]
                    yield chunk
        except HttpStatusError as exc:
            raise self._status_error(exc.status) from None
        if self.size is None and b"PK\x05\x06" not in tail:
            raise SourceError(
                f"Orthanc's archive {self.location} ended after {received} bytes without the end of the ZIP: the "
                "server stopped or the connection dropped. Retry the load when Orthanc runs again."
            )

    async def member_count(self) -> int | None:
        """Instances below the resource, from the REST API (None if it cannot tell)."""
        client = OrthancClient(self.url.root, user=self.auth.user, password=self.auth.password,
                               token=self.auth.token, timeout_s=self.options.connect_timeout_s)
        try:
            return await client.count_instances(self.url.level, self.url.resource_id)
        except (SourceError, KeyError, TypeError, ValueError) as exc:
            log.debug("instance count of %s unknown: %s", self.location, exc)
            return None
        finally:
            await client.close()


class DicomWebSource(_OrthancHttp):
    """A WADO-RS series: ``{dicomweb root}/studies/{uid}/series/{uid}``, answered as multipart/related."""

    kind = "dicomweb"
    what = "series"

    def __init__(self, location: str, options: SourceOptions | None = None, **kw) -> None:
        super().__init__(location, options, **kw)
        if self.url.kind != "dicomweb":
            raise BadInputError(f"{location} is not a DICOMweb series URL (…/studies/{{uid}}/series/{{uid}}).")
        self.boundary: str | None = None
        self.instances: int | None = None

    @property
    def name(self) -> str:
        return f"DICOMweb series {self.url.series_uid}"

    async def chunks(self) -> AsyncIterator[bytes]:
        session = await self._get_session()
        received = 0
        try:
            async with session.get(self.location, headers={"Accept": WADO_ACCEPT}) as resp:
                if resp.status >= 400:
                    raise self._status_error(resp.status, resp.reason or "")
                if resp.status != 200:
                    raise SourceError(f"The DICOMweb server answered HTTP {resp.status} for {self.location}.")
                ctype = resp.headers.get("Content-Type", "")
                if not ctype.lower().startswith("multipart/related"):
                    raise BadInputError(
                        f"{self.location} answered {ctype or 'no Content-Type'}, not multipart/related: it is not a "
                        "WADO-RS series address. Check the study and series UIDs and the DICOMweb root."
                    )
                self.boundary = boundary_from_content_type(ctype)
                if resp.content_length is not None:
                    self.size = resp.content_length
                    self.limits.check_archive(resp.content_length)
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    received += len(chunk)
                    if received > self.limits.max_archive_bytes:
                        self.limits.check_archive(received)
                    yield chunk
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise self.client_error(exc, received) from exc

    async def member_count(self) -> int | None:
        """NumberOfSeriesRelatedInstances from QIDO-RS (None if the server does not say)."""
        url = f"{self.url.root}/studies/{self.url.study_uid}/series"
        params = {"SeriesInstanceUID": self.url.series_uid, "includefield": "00201209"}
        try:
            session = await self._get_session()
            async with asyncio.timeout(self.options.connect_timeout_s), session.get(
                url, params=params, headers={"Accept": "application/dicom+json"}
            ) as resp:
                if resp.status >= 400:
                    if resp.status in (401, 403):
                        raise self._status_error(resp.status)
                    return None
                body = await resp.json(content_type=None)
            value = body[0]["00201209"]["Value"][0] if body else None
            self.instances = int(value) if value is not None else None
            return self.instances
        except HttpStatusError:
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError, LookupError, TypeError, ValueError) as exc:
            log.debug("QIDO instance count of %s failed: %r", self.location, exc)
            return None

    # -- members, for the engine ------------------------------------------------------------------------
    def stream_members(self, chunks: Iterable[bytes], limits: Limits,
                       consumed: Callable[[], int] | None = None) -> Iterator[Member]:
        """Each part as a Member the moment its closing boundary arrived (streaming modes)."""
        return iter_part_members(chunks, lambda: self.boundary, limits, source=self.location)

    def extract_members(self, buffer: bytes, limits: Limits, *, on_member: Callable[[Member], None] | None = None,
                        should_stop: Callable[[], bool] | None = None) -> list[Member]:
        """Batch: split the whole downloaded body into members."""
        view = memoryview(buffer)
        pieces = (view[i : i + CHUNK_BYTES] for i in range(0, len(view), CHUNK_BYTES))  # parser holds <= 1 part
        out = []
        for m in iter_part_members(pieces, lambda: self.boundary, limits, source=self.location):
            if should_stop is not None and should_stop():
                raise LoadCancelledError()
            out.append(m)
            if on_member is not None:
                on_member(m)
        return out


def iter_part_members(chunks: Iterable[bytes], boundary: Callable[[], str | None] | str, limits: Limits, *,
                      source: str = "") -> Iterator[Member]:
    """Multipart parts as Members (``instance-00001.dcm``, ...), with the member limits checked."""
    count = total = 0
    for part in iter_parts(chunks, boundary, max_part_bytes=limits.max_member_bytes):
        count += 1
        limits.check_members(count)
        name = _part_name(part.headers, count)
        limits.check_member(name, len(part.data))
        total += len(part.data)
        limits.check_total(total)
        ctype = part.content_type
        if ctype and ctype != DICOM_TYPE:
            yield Member(name, None, f"part is {ctype}, not {DICOM_TYPE}")
            continue
        yield Member(name, part.data)
    if count == 0:
        log.info("DICOMweb answer from %s held no parts", source)


def _part_name(headers: dict[str, str], index: int) -> str:
    loc = headers.get("content-location", "")
    if loc:
        tail = urlsplit(loc).path.rstrip("/").rsplit("/", 1)[-1]
        if tail:
            return tail
    return f"instance-{index:05d}.dcm"


def orthanc_source(location: str, options: SourceOptions | None = None) -> HttpSource | None:
    """The Orthanc source for an archive or DICOMweb series URL, else None (the engine's hook)."""
    url = parse_orthanc_url(location)
    if url is None:
        return None
    if url.kind == "dicomweb":
        return DicomWebSource(location, options, url=url)
    return OrthancArchiveSource(location, options, url=url)


def register_with_engine() -> None:
    """Make ``webviewer.loading.open_source`` open Orthanc archive and DICOMweb URLs with these sources."""
    register_url_source(orthanc_source)


__all__ = ["DicomWebSource", "OrthancArchiveSource", "iter_part_members", "orthanc_source", "register_with_engine"]
