"""Hostile DICOM files whose header claims far more pixels than the file holds (compressed-pixel bombs)."""

from __future__ import annotations

import struct

from dicom_helpers import ct_dataset, to_bytes
from pydicom.encaps import encapsulate
from pydicom.uid import UID

RLE = "1.2.840.10008.1.2.5"
JPEG_LS = "1.2.840.10008.1.2.4.80"


def rle_frame(segments: int = 2, payload: bytes = b"\x81\x00" * 4) -> bytes:
    """An RLE frame: the 64-byte header (segment count and offsets) and short PackBits segments."""
    offsets = [64 + i * len(payload) for i in range(segments)] + [0] * (15 - segments)
    return struct.pack("<16I", segments, *offsets) + payload * segments


def bomb_slice(rows: int, columns: int, *, syntax: str = RLE, z: float = 0.0, series_uid: str | None = None,
               frame: bytes | None = None) -> bytes:
    """A CT slice whose header says ``rows`` x ``columns`` with a tiny encapsulated frame."""
    ds = ct_dataset(rows=2, columns=2, position=(0.0, 0.0, z), series_uid=series_uid)
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.Rows, ds.Columns = rows, columns
    ds.PixelData = encapsulate([frame if frame is not None else rle_frame()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return to_bytes(ds)
