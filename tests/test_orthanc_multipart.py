"""The incremental multipart/related parser: chunk-boundary matrix (1, 7, 65536), with and without part
Content-Length, preamble/epilogue, malformed and truncated bodies, limits."""

from __future__ import annotations

import pytest

from webviewer.errors import LimitExceededError, SourceError
from webviewer.loading import Limits
from webviewer.orthanc.multipart import (
    MultipartError,
    MultipartParser,
    boundary_from_content_type,
    iter_parts,
)
from webviewer.orthanc.sources import iter_part_members

BOUNDARY = "b0und-ary"
PAYLOADS = [b"DICM" * 50, b"", b"x\r\n--b0und-ar", b"\r\n--b0und-arX" * 3 + b"tail", bytes(range(256)) * 40]
#: only a Content-Length lets a part contain its own delimiter (RFC 2046 forbids it otherwise)
WITH_DELIMITER = b"\r\n--b0und-aryX" * 3 + b"tail"


def body(payloads, *, lengths: bool, preamble: bytes = b"", epilogue: bytes = b"", padding: bytes = b"") -> bytes:
    out = bytearray(preamble)
    for i, p in enumerate(payloads):
        out += (b"\r\n" if out else b"") + f"--{BOUNDARY}".encode() + padding + b"\r\n"
        out += b"Content-Type: application/dicom\r\n"
        if lengths:
            out += f"Content-Length: {len(p)}\r\n".encode()
        out += f"Content-Location: http://x/instances/{i}\r\n\r\n".encode() + p
    out += f"\r\n--{BOUNDARY}--".encode() + epilogue
    return bytes(out)


def chunked(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 65536])
@pytest.mark.parametrize("lengths", [True, False])
def test_parts_whatever_the_chunking(size, lengths):
    data = body(PAYLOADS, lengths=lengths, preamble=b"ignored preamble", epilogue=b"\r\nignored", padding=b"  ")
    parts = list(iter_parts(chunked(data, size), BOUNDARY))
    assert [p.data for p in parts] == PAYLOADS
    assert all(p.content_type == "application/dicom" for p in parts)


def test_content_length_allows_the_delimiter_inside_a_part():
    parts = list(iter_parts(chunked(body([WITH_DELIMITER, b"z"], lengths=True), 7), BOUNDARY))
    assert [p.data for p in parts] == [WITH_DELIMITER, b"z"]


def test_parts_arrive_as_soon_as_they_end():
    data = body(PAYLOADS[:2], lengths=False)
    parser = MultipartParser(BOUNDARY)
    first_end = data.index(f"\r\n--{BOUNDARY}\r\n".encode(), 10) + len(BOUNDARY) + 4
    assert parser.feed(data[: first_end - 3]) == []  # the delimiter is not complete yet
    got = parser.feed(data[first_end - 3 : first_end])
    assert [p.data for p in got] == [PAYLOADS[0]]
    assert [p.data for p in parser.feed(data[first_end:])] == [PAYLOADS[1]]
    assert parser.finished
    parser.close()


@pytest.mark.parametrize("lengths", [True, False])
def test_truncated_body_is_a_source_error(lengths):
    data = body(PAYLOADS, lengths=lengths)
    with pytest.raises(SourceError, match="before its closing boundary"):
        list(iter_parts(chunked(data[:-40], 7), BOUNDARY))


def test_wrong_content_length_is_malformed():
    data = body([b"abcdef"], lengths=True).replace(b"Content-Length: 6", b"Content-Length: 4")
    with pytest.raises(MultipartError, match="Content-Length"):
        list(iter_parts([data], BOUNDARY))


def test_not_multipart_is_malformed():
    with pytest.raises(MultipartError, match="boundary"):
        list(iter_parts([b"<html>" + b"x" * 70000], BOUNDARY))
    with pytest.raises(SourceError, match="empty"):
        list(iter_parts([], BOUNDARY))


def test_boundary_from_header_or_body():
    assert boundary_from_content_type('multipart/related; type="application/dicom"; boundary=abc-1') == "abc-1"
    assert boundary_from_content_type('multipart/related; boundary="a b"; type=x') == "a b"
    assert boundary_from_content_type("multipart/related") is None
    parts = list(iter_parts(chunked(body(PAYLOADS, lengths=True), 7), lambda: None))  # sniffed from line 1
    assert len(parts) == len(PAYLOADS)


def test_members_names_limits_and_other_types():
    data = body([b"a", b"b"], lengths=True).replace(b"Content-Type: application/dicom\r\nContent-Length: 1\r\n"
                                                    b"Content-Location: http://x/instances/1",
                                                    b"Content-Type: text/plain\r\nContent-Length: 1\r\n"
                                                    b"Content-Location: http://x/instances/1")
    members = list(iter_part_members([data], BOUNDARY, Limits()))
    assert [(m.name, m.data) for m in members] == [("0", b"a"), ("1", None)]
    assert "text/plain" in members[1].skip_reason
    with pytest.raises(LimitExceededError):
        list(iter_part_members([body(PAYLOADS, lengths=True)], BOUNDARY, Limits(max_members=2)))
    with pytest.raises(LimitExceededError):
        list(iter_part_members([body(PAYLOADS, lengths=False)], BOUNDARY, Limits(max_member_bytes=1000)))
