"""Inputs the atheris harness found (make fuzz); each one crashed a parser with a non-project exception."""

from __future__ import annotations

import struct
import zipfile

import pytest
from fuzz_targets import LIMITS, TARGETS, run_target, seeds, zip_bytes

from webviewer.errors import ArchiveError, DicomError, WebViewerError
from webviewer.loading import LoadMode, load
from webviewer.loading.dicom import decode_hu, read_header
from webviewer.loading.unzip import extract_all

MODES = tuple(m.value for m in LoadMode)

# unzip_directory-crash-5f75a6bc: local header says Deflate64 (method 9), the central directory says deflate;
# the stream fallback's inflater met a back-reference before the start of the data (BackwardsTooFar)
BACKWARDS_TOO_FAR = bytes.fromhex(
    "504b030414000000090051a07d5d11001cc71400000000100000070000006269672e64636dedc1010d000000d2a0f74f6d0f07"
    "14000000f06e504b0102140314000000080051a07d5d11001cc714000000001000000700000000000000000000008001000000"
    "006269672e646377504b0506000000000100010035000000390000000000"
)

# unzip_batch-crash-38787f3b: a central directory entry with an empty name (zipfile's is_dir() raised IndexError)
EMPTY_NAME_ZIP = bytes.fromhex(
    "504b03041400000008006da07d5d11001cc71400000000100000f9ffffff9d916707140000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000009b0000000000000000000000000000000000000000"
    "000000000000000000b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9"
    "b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9b9"
    "b9b9b9b9b9b9b9b9b9b9b9b90000000000000000000000000000004c000000000000000000000000000000000000000000000000"
    "000000000000f06e504b010214410000006da07d5d11001cc7140000000010000007000000070000000000000000000000800100"
    "0000006269672e64636d504b0506000000000100010036000000390000000000"
)
# hu_decoder-crash-1c804d1b: an RLE frame that makes pylibjpeg-rle's Rust decoder panic (pyo3 PanicException,
# a BaseException that `except Exception` let through)
RLE_PANIC_SLICE = bytes.fromhex(
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000004449434d02000000554c0400ce000000020001004f42000002000000"
    "00010200020055491a00312e322e3834302e31303030382e352e312e342e312e312e32000200030055494000312e322e3832362e"
    "302e312e333638303034332e382e3439382e31333039333739323939303130363232393032313935303238303433363037333333"
    "313933340200100055491400312e322e3834302e31303030382e312e322e35000200120055491c00312e322e3832362e302e312e"
    "333638303034332e382e3439382e31000200130053480e0050594449434f4d20332e302e32200800160055491a00312e322e3834"
    "302e31303030382e352e312e342e312e312e32000800180055494000312e322e3832362e302e312e333638303034332e382e3439"
    "382e3133303933373932393930313036323239303231393530323830343336303733333331393334080060004353020043542000"
    "0d0055494000312e322e3832362e302e312e333638303034332e382e3439382e3132313439363739363431393938363438313738"
    "31303233303237333534373531353635373120000e0055490600312e322e33002000320044530600305c305c3220200037004453"
    "0c00315c305c305c305c315c3020280002005553020001002800040043530c004d4f4e4f4348524f4d4532202800100055530200"
    "0800280011005553020008002800300044530800302e355c302e3720280000015553020010002800010155530200100028000201"
    "555302000f00280003015553020001002800521044530200302028005310445302003120e07f10004f420000fffffffffeff00e0"
    "0400000000000000feff00e098000000020000004000000050000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000f900f900f900fffffeff00e00400000000000000feff00e0"
    "98000000020000004000000050000000000000000000000000000000000000000000000000000000000000000000000000000033"
    "343536370738393a3b3c3d3e3ffeffdde000000000"
)

# unzip_batch-crash-49ba98d7: a member offset that makes zipfile seek before the start (ValueError)
NEGATIVE_SEEK_ZIP = bytes.fromhex(
    "504b00000414030000089fa07d5d11001cc71400000000100000f9ffffff9d916707140000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000053606d500000000000000000000000000000000000"
    "00000000000000000000000000004c000000000000000000000000000000000000000000000000000000000000f06e504b010214"
    "0308006da07d5d11001cc71400000000100000070000000700000000000000000000008001000000006269672e64636d504b0506"
    "000000000100010035000000390000400000"
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


def test_a_member_without_a_name_is_skipped():
    members = extract_all(EMPTY_NAME_ZIP, LIMITS)
    assert [m.skip_reason for m in members if m.name == ""] == ["directory entry"]


def test_a_member_offset_before_the_start_is_an_archive_error():
    with pytest.raises(ArchiveError, match="corrupted or truncated"):
        extract_all(NEGATIVE_SEEK_ZIP, LIMITS)


def broken_member_zip(method: int) -> bytes:
    """unzip_batch-crash-58920f2a: a bzip2 member whose stream header is damaged (bz2 raised OSError "Invalid
    data stream"); LZMA likewise (lzma.LZMAError)."""
    data = bytearray(zip_bytes([("a.dcm", seeds()["dicom_header"][0])], method))
    start = 30 + len("a.dcm")  # the member's data follows its local header and name
    data[start:start + 8] = bytes(b ^ 0x5A for b in data[start:start + 8])
    return bytes(data)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_damaged_bzip2_or_lzma_member_is_an_archive_error(method):
    with pytest.raises(ArchiveError):
        extract_all(broken_member_zip(method), LIMITS)


def test_a_decoder_panic_is_a_dicom_error():
    header = read_header("panic.dcm", RLE_PANIC_SLICE)
    with pytest.raises(DicomError, match="cannot decode RLE"):
        decode_hu(RLE_PANIC_SLICE, header)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", [unsupported_version_zip, lambda: BACKWARDS_TOO_FAR, lambda: EMPTY_NAME_ZIP, lambda: NEGATIVE_SEEK_ZIP,
                                  lambda: broken_member_zip(zipfile.ZIP_BZIP2),
                                  lambda: zip_bytes([("panic.dcm", RLE_PANIC_SLICE)])])
async def test_found_inputs_fail_cleanly_in_every_mode(tmp_path, mode, make):
    path = tmp_path / "found.zip"
    path.write_bytes(make())
    try:
        result = await load(path, mode)
    except WebViewerError as exc:
        assert str(exc)
    else:
        assert result.volume.hu.size > 0
