"""Unzipping: members of a streamed ZIP (streaming modes) and of a ZIP in memory (batch).

Streaming modes cut members by the central directory when it is known (``zipdir``, see
:func:`iter_zip_members`), else stream-unzip inflates them in order (:func:`iter_stream_members`). Batch reads
zipfile's directory and inflates each member straight from the buffer (:func:`read_member`). All inflate with
``webviewer.loading.inflate`` (ISA-L, else zlib).

Threading model (measured, see the pipeline note): the async download puts chunks of up to 1 MiB into a
:class:`ChunkBridge`, a byte-bounded queue; ONE worker thread iterates it synchronously through ``stream_unzip``
and parses/places the members. That is one lock hand-off per network chunk, instead of the two event-loop hops
per chunk (in and out) that ``async_stream_unzip`` makes, and the bound gives backpressure: the download waits
when the worker is behind, so compressed bytes in flight stay below ``max_bytes``.

Measured with zlib before ISA-L and the directory path (2 shared cores, in-memory chunks fed from an async
generator, best of 3):

=================================  ==========================  ==========================
unzip path                         Philips 32 MB ZIP, 64 KiB   seed 106 MB ZIP, 64 KiB
=================================  ==========================  ==========================
zlib only (members inflated)       276 ms                      861 ms
stream_unzip, no thread hops       271 ms                      812 ms
ChunkBridge -> one worker thread   315 ms (+16 %)              965 ms (+19 %)
async_stream_unzip                 424 ms (+56 %)              1640 ms (+102 %)
=================================  ==========================  ==========================

With 16 KiB chunks the async variant cost 672 ms against 372 ms for the bridge (Philips).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import io
import logging
import lzma
import queue
import struct
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import stream_unzip as su
from stream_inflate import StreamInflateError

from webviewer.errors import ArchiveError, LimitExceededError, NotStreamableError, WebViewerError
from webviewer.loading.inflate import INFLATE_ERRORS, install_in_stream_unzip
from webviewer.loading.limits import Limits
from webviewer.loading.zipdir import (
    LOCAL_HEADER,
    LOCAL_SIGNATURE,
    DirectoryMismatch,
    ZipEntry,
    check_directory_limits,
    entries_from_zipfile,
    inflate_checked,
    iter_directory_members,
)

log = logging.getLogger(__name__)

#: output bytes per zlib call inside stream-unzip (its default; larger was no faster with small input chunks)
UNZIP_CHUNK_BYTES = 1 << 16

install_in_stream_unzip()  # PoC1 and PoC2 inflate with the same library as batch (see webviewer.loading.inflate)


class Cancelled(Exception):
    """Raised inside the worker thread when the load was cancelled."""


class ChunkBridge:
    """A bounded, byte-counted queue from the event loop (producer) to one worker thread (consumer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_bytes: int = 8 << 20) -> None:
        self.loop = loop
        self.max_bytes = max_bytes
        self._items: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._space = asyncio.Event()
        self._space.set()
        self._eof = False
        self._cancelled = False
        self.consumed = 0
        self.peak_bytes = 0

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    async def put(self, chunk: bytes) -> None:
        """Queue a chunk; waits (without blocking the loop) while ``max_bytes`` are already queued."""
        while True:
            with self._cond:
                if self._cancelled:
                    return
                if self._bytes < self.max_bytes:
                    self._items.append(chunk)
                    self._bytes += len(chunk)
                    self.peak_bytes = max(self.peak_bytes, self._bytes)
                    self._cond.notify()
                    return
                self._space.clear()
            await self._space.wait()

    def close(self) -> None:
        """No more chunks (end of download)."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Wake the consumer with Cancelled and drop what is queued."""
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()
        self._signal_space()

    def _signal_space(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._space.set)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                while not self._items and not self._eof and not self._cancelled:
                    self._cond.wait()
                if self._cancelled:
                    raise Cancelled()
                if not self._items:
                    return
                was_full = self._bytes >= self.max_bytes
                chunk = self._items.popleft()
                self._bytes -= len(chunk)
                self.consumed += len(chunk)
                if was_full and self._bytes < self.max_bytes:
                    self._signal_space()
            yield chunk


class Prefetch:
    """Iterate ``source`` on another worker thread, at most ``depth`` items ahead of the consumer.

    Used by PoC2 so that inflating member k+1 (zlib, GIL released) overlaps parsing and placing member k.
    ``abort`` must make ``source`` stop (it is called, e.g. ChunkBridge.cancel, when the consumer stops early).
    """

    _END = object()

    def __init__(self, source: Iterable, depth: int, submit: Callable, abort: Callable[[], None]) -> None:
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._abort = abort
        self._job = submit(self._produce, source)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterable) -> None:
        try:
            for item in source:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((None, exc))

    def __iter__(self) -> Iterator:
        try:
            while True:
                item, exc = self._q.get()
                if exc is not None:
                    raise exc
                if item is self._END:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer and wait for it (it never blocks for long: its queue puts time out)."""
        if self._job.done():
            return
        self._stop.set()
        self._abort()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(BaseException):
            self._job.result()


@dataclass
class Member:
    """One archive member: its bytes, or why it was skipped (bytes then None)."""

    name: str
    data: bytes | None
    skip_reason: str | None = None


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _skip_reason(name: str) -> str | None:
    from webviewer.loading.dicom import skip_reason_for_name

    return skip_reason_for_name(name)


def map_stream_unzip_error(exc: Exception, member: str | None) -> WebViewerError:
    """Translate stream-unzip's exceptions into the viewer's hierarchy."""
    where = f" (member {member!r})" if member else ""
    if isinstance(exc, su.NotStreamUnzippable):
        if exc.args and isinstance(exc.args[0], bytes):
            member = _decode_name(exc.args[0])
        err = NotStreamableError(
            f"The ZIP stores member {member or '?'} uncompressed with a data descriptor, which cannot be "
            "unzipped while it streams."
        )
        err.to_mode = "batch"  # type: ignore[attr-defined]
        return err
    if isinstance(exc, (su.UnsupportedCompressionTypeError, su.UnsupportedFlagsError)):
        err = NotStreamableError(f"The ZIP uses a compression or feature stream-unzip does not support{where}.")
        err.to_mode = "batch"  # type: ignore[attr-defined]
        return err
    if isinstance(exc, su.TruncatedDataError):
        return ArchiveError(f"The archive is truncated{where}: it ends before its last member. Download it again.")
    if isinstance(exc, (su.DeflateError, StreamInflateError, *INFLATE_ERRORS)):
        return ArchiveError(f"The archive holds corrupted compressed data{where}. Export the study again.")
    if isinstance(exc, su.IntegrityError):
        return ArchiveError(f"The archive failed an integrity check{where} ({exc.__class__.__name__}). Export it again.")
    if isinstance(exc, (su.PasswordError, su.MissingPasswordError)):
        return ArchiveError(f"The archive is encrypted{where}. Export the study without a password.")
    if isinstance(exc, su.UnexpectedSignatureError):
        return ArchiveError(f"The archive is corrupt or not a ZIP{where} (unexpected signature). Export it again.")
    return ArchiveError(f"The archive could not be unzipped{where}: {exc.__class__.__name__}. Export it again.")


def _check_streamable(name: str, nbytes: int, limits: Limits) -> None:
    if nbytes > limits.max_stream_member_bytes:
        err = NotStreamableError(
            f"The member {name!r} is larger than the streaming limit ({limits.max_stream_member_bytes} bytes)."
        )
        err.to_mode = "batch"  # type: ignore[attr-defined]
        raise err


def iter_stream_members(
    chunks: Iterable[bytes],
    limits: Limits,
    *,
    consumed: Callable[[], int] | None = None,
    on_member_bytes: Callable[[int], None] | None = None,
) -> Iterator[Member]:
    """Stream-unzip ``chunks`` and yield each member whole, the moment its last byte (and CRC) checks out.

    Junk names (``__MACOSX/``, ``.DS_Store``, directories) are drained without keeping their bytes. Limits:
    member count, per-member and total uncompressed bytes, and the compression ratio against ``consumed()``
    (compressed bytes read so far) are checked as bytes come out, before they pile up.
    """
    name: str | None = None
    total = 0
    count = 0
    try:
        for raw_name, size, member_chunks in su.stream_unzip(chunks, chunk_size=UNZIP_CHUNK_BYTES):
            name = _decode_name(raw_name)
            count += 1
            limits.check_members(count)
            if size is not None:
                limits.check_member(name, size)
                limits.check_total(total + size)
                _check_streamable(name, size, limits)
            reason = _skip_reason(name)
            parts: list[bytes] = []
            nbytes = 0
            for part in member_chunks:
                nbytes += len(part)
                total += len(part)
                if nbytes > limits.max_member_bytes:
                    limits.check_member(name, nbytes)
                if nbytes > limits.max_stream_member_bytes:
                    _check_streamable(name, nbytes, limits)
                if total > limits.max_total_bytes:
                    limits.check_total(total)
                if consumed is not None:
                    limits.check_ratio(total, consumed())
                if reason is None:
                    parts.append(part)
                    if on_member_bytes is not None:
                        on_member_bytes(len(part))
            if reason is not None:
                yield Member(name, None, reason)
                continue
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            yield Member(name, data)
            name = None
    except (Cancelled, LimitExceededError, WebViewerError):
        raise
    except (su.UnzipError, StreamInflateError, *INFLATE_ERRORS) as exc:  # the inflater's own: BackwardsTooFar
        raise map_stream_unzip_error(exc, name) from exc


def member_span(view: memoryview, info: zipfile.ZipInfo) -> tuple[int, int]:
    """Where ``info``'s compressed bytes lie in the archive: after its local header, name and extra field."""
    start = info.header_offset
    if start < 0:
        raise ArchiveError(
            f"The archive is corrupt (member {info.filename!r} lies before its start: its directory offsets are "
            "wrong). Export it again."
        )
    if start + LOCAL_HEADER.size > len(view):
        raise ArchiveError(f"The archive is truncated (member {info.filename!r} lies past its end). Export it again.")
    signature, _, _, _, name_len, extra_len = LOCAL_HEADER.unpack_from(view, start)
    if signature != LOCAL_SIGNATURE:
        raise ArchiveError(
            f"The archive is corrupt (member {info.filename!r} has no local header where the directory says). "
            "Export it again."
        )
    begin = start + LOCAL_HEADER.size + name_len + extra_len
    end = begin + info.compress_size
    if end > len(view):
        raise ArchiveError(f"The archive is truncated (member {info.filename!r} lies past its end). Export it again.")
    return begin, end


def read_member(zf: zipfile.ZipFile, view: memoryview, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes, inflated with the loader's inflater and checked against the directory's size and CRC.

    Stored and deflated members are read straight from ``view`` (zipfile's own reader takes 0.90 s for the
    seed's members where this takes 0.59 s with the same zlib, and it cannot use another inflater). Encrypted
    members and other methods (bzip2, lzma, deflate64) go through zipfile, which reads or rejects them.
    """
    if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return zf.read(info)
    begin, end = member_span(view, info)
    return inflate_checked(view[begin:end], entries_from_zipfile([info])[0])


def raw_deflated_members(buffer: bytes) -> list[tuple[memoryview, int]]:
    """(compressed bytes, uncompressed size) of every deflated member of a ZIP, for inflate-alone references."""
    with zipfile.ZipFile(io.BytesIO(buffer)) as zf:
        view = memoryview(buffer)
        return [(view[slice(*member_span(view, i))], i.file_size)
                for i in zf.infolist() if i.compress_type == zipfile.ZIP_DEFLATED and not i.flag_bits & 0x1]


def iter_zip_members(
    chunks: Iterable[bytes],
    limits: Limits,
    *,
    consumed: Callable[[], int] | None = None,
    entries: list[ZipEntry] | None = None,
    archive_bytes: int | None = None,
    submit: Callable[..., concurrent.futures.Future] | None = None,
    workers: int = 2,
) -> Iterator[Member]:
    """The members of a streamed ZIP, in stream order, each the moment it is complete and checked.

    With the central directory (``entries`` from ``zipdir.streamable_directory``) members are cut by offset
    and inflated ``workers`` at once on ``submit``'s threads; without it, or if the stream's first member is
    not what the directory says, stream-unzip inflates them one after the other.
    """
    if entries is None or submit is None:
        yield from iter_stream_members(chunks, limits, consumed=consumed)
        return
    check_directory_limits(entries, limits, archive_bytes or sum(e.compressed_size for e in entries))
    for entry in entries:
        _check_streamable(entry.name, entry.size, limits)
    try:
        for entry, data, reason in iter_directory_members(
            chunks, entries, skip_reason=_skip_reason, submit=submit, workers=workers
        ):
            yield Member(entry.name, data, reason)
    except DirectoryMismatch as mismatch:
        log.warning("the archive's first member does not match its central directory; unzipping it in order")
        yield from iter_stream_members(mismatch.replay, limits, consumed=consumed)


def extract_all(
    buffer: bytes,
    limits: Limits,
    *,
    on_member: Callable[[Member], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Member]:
    """Batch unzip with zipfile on an in-memory buffer; limits checked on the central directory first."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(buffer))
    except NotImplementedError as exc:  # zipfile: "zip file version 23.9" and other unsupported features
        raise ArchiveError(f"The archive uses a ZIP feature that cannot be read ({exc}). Export it again.") from exc
    except (zipfile.BadZipFile, ValueError, struct.error, EOFError) as exc:
        raise ArchiveError(
            "The archive is truncated or not a ZIP (no end of central directory). Download or export it again."
        ) from exc
    with zf, memoryview(buffer) as view:
        infos = zf.infolist()
        limits.check_members(len(infos))
        total = 0
        for info in infos:
            limits.check_member(info.filename, info.file_size)
            total += info.file_size
            if info.file_size >= limits.ratio_check_min_bytes // 16:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.max_compression_ratio:
                    limits.check_ratio(max(info.file_size, limits.ratio_check_min_bytes), info.compress_size)
        limits.check_total(total)
        limits.check_ratio(total, len(buffer))
        out: list[Member] = []
        for info in infos:
            if should_stop is not None and should_stop():
                raise Cancelled()
            name = info.filename
            reason = "directory" if name.endswith("/") else _skip_reason(name)  # is_dir() fails on ""
            if reason is not None:
                member = Member(name, None, reason)
            else:
                try:
                    member = Member(name, read_member(zf, view, info))
                except (zipfile.BadZipFile, *INFLATE_ERRORS, EOFError, ValueError, struct.error, OSError,
                        lzma.LZMAError) as exc:  # OSError: bz2's "Invalid data stream" (in-memory buffer)
                    raise ArchiveError(
                        f"The archive holds corrupted or truncated data (member {name!r}: {exc}). Export it again."
                    ) from exc
                except (NotImplementedError, RuntimeError) as exc:
                    raise ArchiveError(f"Member {name!r} cannot be unzipped: {exc}.") from exc
            out.append(member)
            if on_member is not None:
                on_member(member)
        return out
