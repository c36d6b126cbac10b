"""Inputs the atheris harness found (make fuzz); each one crashed a parser with a non-project exception."""

from __future__ import annotations

import struct

import pytest
from fuzz_targets import LIMITS, TARGETS, run_target, seeds, zip_bytes

from webviewer.errors import ArchiveError, WebViewerError
from webviewer.loading import load
from webviewer.loading.unzip import extract_all

MODES = ("batch", "stream-files", "stream-dicom")

# unzip_directory-crash-5f75a6bc: local header says Deflate64 (method 9), the central directory says deflate;
# the stream fallback's inflater met a back-reference before the start of the data (BackwardsTooFar)
BACKWARDS_TOO_FAR = bytes.fromhex(
    "504b030414000000090051a07d5d11001cc71400000000100000070000006269672e64636dedc1010d000000d2a0f74f6d0f07"
    "14000000f06e504b0102140314000000080051a07d5d11001cc714000000001000000700000000000000000000008001000000"
    "006269672e646377504b0506000000000100010035000000390000000000"
)


def unsupported_version_zip() -> bytes:
    """unzip_batch-crash-93651a76: a central directory entry needing ZIP version 23.9 (zipfile raised
    NotImplementedError from its constructor)."""
    data = bytearray(zip_bytes([("1.dcm", seeds()["dicom_header"][0])]))
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<H", data, cd + 6, 239)  # version needed to extract
    return bytes(data)


def test_unsupported_zip_version_is_an_archive_error():
    with pytest.raises(ArchiveError, match="cannot be read"):
        extract_all(unsupported_version_zip(), LIMITS)
    run_target("unzip_batch", unsupported_version_zip())


def test_deflate_back_reference_before_the_start_is_an_archive_error():
    with pytest.raises(ArchiveError, match="corrupted compressed data"):
        TARGETS["unzip_directory"](BACKWARDS_TOO_FAR)
    with pytest.raises(ArchiveError):
        TARGETS["unzip_stream"](BACKWARDS_TOO_FAR)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", [unsupported_version_zip, lambda: BACKWARDS_TOO_FAR])
async def test_found_inputs_fail_cleanly_in_every_mode(tmp_path, mode, make):
    path = tmp_path / "found.zip"
    path.write_bytes(make())
    try:
        result = await load(path, mode)
    except WebViewerError as exc:
        assert str(exc)
    else:
        assert result.volume.hu.size > 0
