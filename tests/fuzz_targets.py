"""Entry points that strangers' bytes reach, as one-argument functions for hypothesis and atheris (issue 13).

Each target takes bytes and either returns or raises one of ``EXPECTED``; anything else is a finding.
``peak_above`` measures the process's peak RSS growth (VmHWM) around a call, so a target can be held to the
memory limit it was given.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import struct
import zipfile
from collections.abc import Callable, Iterator

from webviewer.api.app import RangeNotSatisfiable, parse_range
from webviewer.errors import WebViewerError
from webviewer.loading.dicom import NotAnImageSlice, decode_hu, read_header
from webviewer.loading.limits import Limits, MiB
from webviewer.loading.unzip import extract_all, iter_stream_members, iter_zip_members
from webviewer.loading.zipdir import (
    check_directory_limits,
    parse_central_directory,
    parse_eocd,
    streamable_directory,
)
from webviewer.orthanc.multipart import iter_parts

EXPECTED: tuple[type[BaseException], ...] = (WebViewerError, NotAnImageSlice, RangeNotSatisfiable)
#: the limits every target runs under; a target's peak memory must stay below max_volume_bytes + slack
LIMITS = Limits(max_archive_bytes=64 * MiB, max_member_bytes=32 * MiB, max_stream_member_bytes=32 * MiB,
                max_total_bytes=64 * MiB, max_members=2_000, max_volume_bytes=64 * MiB,
                ratio_check_min_bytes=1 * MiB)
MEMORY_SLACK = 32 * MiB
_POOL = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="fuzz-inflate")


def _chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def zip_directory(data: bytes) -> None:
    """The ZIP directory reader: end record, central directory, stream plan, limits."""
    entries = _entries(data)
    if entries is not None:
        check_directory_limits(entries, LIMITS, len(data))
        streamable_directory(entries)


def unzip_stream(data: bytes) -> None:
    """stream-unzip path (PoC modes), fed in 7-byte chunks."""
    consumed = [0]

    def counted() -> Iterator[bytes]:
        for c in _chunks(data):
            consumed[0] += len(c)
            yield c

    for _member in iter_stream_members(counted(), LIMITS, consumed=lambda: consumed[0]):
        pass


def unzip_directory(data: bytes) -> None:
    """The central-directory path: members cut by offset and inflated on worker threads."""
    entries = _entries(data)
    entries = None if entries is None else streamable_directory(entries)
    if entries is None:
        return
    for _member in iter_zip_members(_chunks(data, 4096), LIMITS, entries=entries, archive_bytes=len(data),
                                    submit=_POOL.submit):
        pass


def _entries(data: bytes):
    """The directory as HttpSource reads it; like its caller, ValueError / struct.error mean "no directory"."""
    try:
        end = parse_eocd(data[-65_557:], max(0, len(data) - 65_557))
        return parse_central_directory(data[end.cd_offset:end.cd_offset + end.cd_size], end.concat)
    except (ValueError, struct.error):
        return None


def unzip_batch(data: bytes) -> None:
    """Batch path: zipfile on the whole buffer."""
    extract_all(data, LIMITS)


def dicom_header(data: bytes) -> None:
    """The DICOM header scanner (fast scanner and its pydicom fallback)."""
    read_header("fuzz.dcm", data)


def hu_decoder(data: bytes) -> None:
    """Header, then pixels to HU (native and compressed), under the volume limit."""
    header = read_header("fuzz.dcm", data)
    decode_hu(data, header, max_bytes=LIMITS.max_volume_bytes)


def multipart(data: bytes) -> None:
    """Orthanc's multipart/related parser; the first line may carry the boundary."""
    boundary = data[:70].split(b"\r\n", 1)[0].lstrip(b"-").decode("latin-1")
    for _part in iter_parts(_chunks(data, 13), boundary or "b", max_part_bytes=LIMITS.max_member_bytes):
        pass


def range_header(data: bytes) -> None:
    """The Range header parser on a 1 MB archive."""
    text = data.decode("utf-8", errors="surrogateescape")
    result = parse_range(text, 1_000_000)
    if result is not None:
        start, end = result
        assert 0 <= start < end <= 1_000_000, (text, result)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "zip_directory": zip_directory,
    "unzip_stream": unzip_stream,
    "unzip_directory": unzip_directory,
    "unzip_batch": unzip_batch,
    "dicom_header": dicom_header,
    "hu_decoder": hu_decoder,
    "multipart": multipart,
    "range": range_header,
}


def _hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def peak_above() -> Iterator[list[int]]:
    """``with peak_above() as peak:`` ... ``peak[0]``: VmHWM growth in bytes during the block (Linux)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    start = _hwm()
    out = [0]
    try:
        yield out
    finally:
        out[0] = _hwm() - start


def run_target(name: str, data: bytes) -> None:
    """Call one target: expected errors are swallowed, anything else propagates (a finding)."""
    with contextlib.suppress(*EXPECTED):
        TARGETS[name](data)


def zip_bytes(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def seeds() -> dict[str, list[bytes]]:
    """Small valid inputs for every target (synthetic: native, implicit VR and RLE slices; ZIPs; multipart)."""
    from dicom_helpers import ct_dataset, to_bytes
    from pydicom.pixels import compress

    native = to_bytes(ct_dataset(rows=8, columns=8, position=(0.0, 0.0, 1.0), series_uid="1.2.3"))
    implicit = to_bytes(ct_dataset(rows=6, columns=4, implicit=True, slope=0.5, intercept=-1024))
    ds = ct_dataset(rows=8, columns=8, position=(0.0, 0.0, 2.0), series_uid="1.2.3")
    compress(ds, "1.2.840.10008.1.2.5", encoding_plugin="pydicom")
    rle = to_bytes(ds)
    slices = [native, implicit, rle]
    members = [("a/1.dcm", native), ("a/2.dcm", rle), ("DICOMDIR", b"junk"), ("__MACOSX/._1.dcm", b"x")]
    zips = [zip_bytes(members), zip_bytes(members, zipfile.ZIP_STORED), zip_bytes([("big.dcm", bytes(4096))])]
    body = b"".join(b"--frontier\r\nContent-Type: application/dicom\r\n\r\n" + s + b"\r\n" for s in slices)
    parts = [body + b"--frontier--\r\n"]
    ranges = [b"bytes=0-99", b"bytes=-500", b"bytes=10-", b"bytes=0-0,5-9", b"Bytes = 7 - 8"]
    return {"zip_directory": zips, "unzip_stream": zips, "unzip_directory": zips, "unzip_batch": zips,
            "dicom_header": slices, "hu_decoder": slices, "multipart": parts, "range": ranges}
