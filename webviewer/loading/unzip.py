"""Unzipping: members of a streamed ZIP (streaming modes) and of a ZIP in memory (batch).

Streaming modes cut members by the central directory when it is known (``zipdir``, see
:func:`iter_zip_members`), else stream-unzip inflates them in order (:func:`iter_stream_members`). Batch reads
zipfile's directory and inflates each member straight from the buffer (:func:`read_member`). All inflate with
``webviewer.loading.inflate`` (zlib).

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

import concurrent.futures
import io
import logging
import lzma
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import stream_unzip as su
from stream_inflate import StreamInflateError

from webviewer.errors import ArchiveError, LoadCancelledError, NotStreamableError, WebViewerError
from webviewer.loading.bridge import ChunkBridge, Prefetch
from webviewer.loading.inflate import INFLATE_ERRORS
from webviewer.loading.limits import Limits
from webviewer.loading.members import DIVERT_PROBE_BYTES, Divert, Member, MemberSink, divert_member
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
from webviewer.loading.zipstream import STREAMED

__all__ = ["ChunkBridge", "Member", "Prefetch", "extract_all", "iter_stream_members", "iter_zip_members"]

log = logging.getLogger(__name__)

#: output bytes per zlib call inside stream-unzip (its default; larger was no faster with small input chunks)
UNZIP_CHUNK_BYTES = 1 << 16



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
        return NotStreamableError(
            f"The ZIP stores member {member or '?'} uncompressed with a data descriptor, which cannot be "
            "unzipped while it streams.",
            to_mode="batch",
        )
    if isinstance(exc, (su.UnsupportedCompressionTypeError, su.UnsupportedFlagsError)):
        return NotStreamableError(
            f"The ZIP uses a compression or feature stream-unzip does not support{where}.", to_mode="batch"
        )
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
        raise NotStreamableError(
            f"The member {name!r} is larger than the streaming limit ({limits.max_stream_member_bytes} bytes).",
            to_mode="batch",
        )


def iter_stream_members(
    chunks: Iterable[bytes],
    limits: Limits,
    *,
    consumed: Callable[[], int] | None = None,
    on_member_bytes: Callable[[int], None] | None = None,
    divert: Divert | None = None,
) -> Iterator[Member]:
    """Stream-unzip ``chunks`` and yield each member whole, the moment its last byte (and CRC) checks out.

    Junk names (``__MACOSX/``, ``.DS_Store``, directories) are drained without keeping their bytes. Limits:
    member count, per-member and total uncompressed bytes, and the compression ratio against ``consumed()``
    (compressed bytes read so far) are checked as bytes come out, before they pile up. ``divert(name, head)`` is
    asked once per member when DIVERT_PROBE_BYTES have come out: a sink it returns gets the member's bytes as they
    come (never held whole, so the streaming limit does not apply) and the member is yielded ``streamed``.
    """
    name: str | None = None
    state = _Unzipped()
    count = 0
    try:
        for raw_name, size, member_chunks in su.stream_unzip(chunks, chunk_size=UNZIP_CHUNK_BYTES):
            name = _decode_name(raw_name)
            count += 1
            limits.check_members(count)
            if size is not None:
                limits.check_member(name, size)
                limits.check_total(state.total + size)
                if divert is None:
                    _check_streamable(name, size, limits)
            yield _take_member(name, member_chunks, limits, state, consumed, on_member_bytes, divert)
            name = None
    except BaseException as exc:
        if state.sink is not None:  # a member failed while it streamed to a sink: stop the sink's thread
            state.sink.abort()
        # the inflater's own errors too (stream-inflate's BackwardsTooFar, zlib.error)
        if isinstance(exc, (su.UnzipError, StreamInflateError, *INFLATE_ERRORS)) and not isinstance(exc, WebViewerError):
            raise map_stream_unzip_error(exc, name) from exc
        raise


@dataclass
class _Unzipped:
    """Bytes unzipped so far in one stream-unzip pass, and the sink of the member streaming now."""

    total: int = 0
    sink: MemberSink | None = None


def _take_member(
    name: str,
    member_chunks: Iterable[bytes],
    limits: Limits,
    state: _Unzipped,
    consumed: Callable[[], int] | None,
    on_member_bytes: Callable[[int], None] | None,
    divert: Divert | None,
) -> Member:
    """Read one member of stream-unzip to its end: its bytes, a skip, or its bytes streamed to a divert sink."""
    reason = _skip_reason(name)
    parts: list[bytes] = []
    nbytes = 0
    ask = divert is not None and reason is None
    for part in member_chunks:
        nbytes += len(part)
        state.total += len(part)
        if nbytes > limits.max_member_bytes:
            limits.check_member(name, nbytes)
        if state.sink is None and nbytes > limits.max_stream_member_bytes:
            _check_streamable(name, nbytes, limits)
        if state.total > limits.max_total_bytes:
            limits.check_total(state.total)
        if consumed is not None:
            limits.check_ratio(state.total, consumed())
        if state.sink is not None:
            state.sink.feed(part)
        elif reason is None:
            parts.append(part)
            if on_member_bytes is not None:
                on_member_bytes(len(part))
            if ask and nbytes >= DIVERT_PROBE_BYTES:
                ask = False
                state.sink = divert_member(divert, name, parts)  # type: ignore[arg-type]
    if state.sink is not None:
        closing, state.sink = state.sink, None
        closing.close()
        return Member(name, None, None, streamed=True)
    if reason is not None:
        return Member(name, None, reason)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    parts.clear()
    return Member(name, data)


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
    divert: Divert | None = None,
    stream_min: int = 16 << 20,
) -> Iterator[Member]:
    """The members of a streamed ZIP, in stream order, each the moment it is complete and checked.

    With the central directory (``entries`` from ``zipdir.streamable_directory``) members are cut by offset
    and inflated ``workers`` at once on ``submit``'s threads; without it, or if the stream's first member is
    not what the directory says, stream-unzip inflates them one after the other. ``divert`` is offered every
    member on the stream-unzip path, and members of ``stream_min`` bytes or more on the directory path.
    """
    if entries is None or submit is None:
        yield from iter_stream_members(chunks, limits, consumed=consumed, divert=divert)
        return
    check_directory_limits(entries, limits, archive_bytes or sum(e.compressed_size for e in entries))
    for entry in entries:  # a large member may stream to a divert sink; if not, its held bytes are checked
        if divert is None or entry.size < stream_min:
            _check_streamable(entry.name, entry.size, limits)
    try:
        for entry, data, reason in iter_directory_members(
            chunks, entries, skip_reason=_skip_reason, submit=submit, workers=workers, divert=divert,
            stream_min=stream_min, check_held=lambda name, n: _check_streamable(name, n, limits),
        ):
            streamed = reason == STREAMED
            yield Member(entry.name, data, None if streamed else reason, streamed=streamed)
    except DirectoryMismatch as mismatch:
        log.warning("the archive's first member does not match its central directory; unzipping it in order")
        yield from iter_stream_members(mismatch.replay, limits, consumed=consumed, divert=divert)


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
        check_directory_limits(entries_from_zipfile(infos), limits, len(buffer))
        out: list[Member] = []
        for info in infos:
            if should_stop is not None and should_stop():
                raise LoadCancelledError()
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
