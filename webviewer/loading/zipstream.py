"""One large ZIP member inflated as its compressed bytes arrive (the directory path), offered to a divert sink.

The directory path inflates a member in one call once all its bytes are in; for a large member that holds frames
(one Enhanced CT file) this inflates it piece by piece instead, and once the first DIVERT_PROBE_BYTES are out asks
``divert`` for a sink: the frames are then placed while the member downloads and it is never held whole. Size
and CRC-32 are checked against the directory entry at the end, as for a member inflated in one call.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from webviewer.errors import ArchiveError
from webviewer.loading.inflate import INFLATE_ERRORS, crc32, new_inflater
from webviewer.loading.members import DIVERT_PROBE_BYTES, Divert, MemberSink, divert_member

if TYPE_CHECKING:
    from webviewer.loading.zipdir import StreamWindow, ZipEntry

#: the reason ``iter_directory_members`` yields for a member whose bytes went to a sink
STREAMED = "\x00streamed"


def _pieces(window: StreamWindow, begin: int, end: int, name: str):
    """The member's compressed bytes ``[begin, end)`` as they arrive, dropped from the window once handed out."""
    pos = begin
    while pos < end:
        if window.end <= pos:
            window.fill(pos + 1, name)
        stop = min(window.end, end)
        yield window.take(pos, stop)
        pos = stop
        window.drop_before(pos)


def inflate_streaming(
    window: StreamWindow,
    entry: ZipEntry,
    begin: int,
    divert: Divert,
    check_held: Callable[[str, int], None] | None = None,
) -> tuple[bytes | None, bool]:
    """Inflate ``entry`` (its data starts at ``begin``) piece by piece: (bytes, False) if ``divert`` declined it,
    (None, True) if a sink took it. Raises ArchiveError on corrupt data, a wrong size or a bad CRC."""
    stored = entry.method == zipfile.ZIP_STORED
    inflater = None if stored else new_inflater()
    parts: list[bytes] = []
    sink: MemberSink | None = None
    asked, own_crc, produced, crc = False, False, 0, 0
    try:
        for piece in _pieces(window, begin, begin + entry.compressed_size, entry.name):
            out = bytes(piece) if inflater is None else inflater.decompress(piece, entry.size + 1 - produced)
            if inflater is not None and inflater.unconsumed_tail:
                raise _bad(entry, "inflates to more bytes than its directory entry says")
            produced += len(out)
            if sink is None or own_crc:
                crc = crc32(out, crc)
            if sink is not None:
                sink.feed(out)
                continue
            parts.append(out)
            if not asked and produced >= DIVERT_PROBE_BYTES:
                asked = True
                sink = divert_member(divert, entry.name, parts)
                own_crc = sink is not None and getattr(sink, "crc", None) is None  # else the sink's thread does it
            if asked and sink is None and check_held is not None:
                check_held(entry.name, produced)  # declined: held whole, so the streaming limit applies
        if produced != entry.size:
            raise _bad(entry, f"inflates to {'more' if produced > entry.size else 'fewer'} bytes than its directory "
                              "entry says")
    except INFLATE_ERRORS as exc:
        if sink is not None:
            sink.abort()
        raise ArchiveError(
            f"The archive holds corrupted compressed data (member {entry.name!r}). Export the study again."
        ) from exc
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    if sink is None:
        _check_crc(entry, crc)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), False
    sink.close()
    _check_crc(entry, crc if own_crc else sink.crc)  # type: ignore[attr-defined]
    return None, True


def _check_crc(entry: ZipEntry, crc: int) -> None:
    if crc != entry.crc:
        raise ArchiveError(
            f"The archive failed an integrity check (member {entry.name!r}: bad CRC-32). Export it again."
        )


def _bad(entry: ZipEntry, what: str) -> ArchiveError:
    return ArchiveError(f"The archive holds corrupted or truncated data (member {entry.name!r} {what}). "
                        "Export it again.")
