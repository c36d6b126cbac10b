"""One CT image slice's header: validated from the scanned fields into an immutable ``SliceHeader``."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from webviewer.errors import DicomError
from webviewer.loading.dicom.scan import (
    _LONG_VRS,
    DICOMDIR_SOP_CLASS,
    EXPLICIT_VR_BE,
    IMPLICIT_VR_LE,
    NATIVE_SYNTAXES,
    MultiFrameImage,
    NotAnImageSlice,
    read_fields,
)

_INT16 = np.dtype(np.int16)
_FLOAT32 = np.dtype(np.float32)


def skip_reason_for_name(name: str) -> str | None:
    """Why a member must be skipped from its name alone (macOS metadata, directory entries), else None."""
    n = name.replace("\\", "/")
    if not n or n.endswith("/"):
        return "directory entry"
    parts = n.split("/")
    if "__MACOSX" in parts:
        return "macOS resource fork (__MACOSX/)"
    base = parts[-1]
    if base == ".DS_Store":
        return "macOS folder metadata (.DS_Store)"
    if base.startswith("._"):
        return "macOS resource fork (._ file)"
    if base.lower() in {"thumbs.db", "desktop.ini"}:
        return "Windows folder metadata"
    return None


@dataclass(frozen=True)
class SliceHeader:
    """What the loader needs from one image slice; immutable and cheap to keep for every slice."""

    name: str
    series_uid: str
    sop_uid: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]  # DICOM order: (row spacing, column spacing)
    rows: int
    columns: int
    rescale_slope: float
    rescale_intercept: float
    #: int16 when slope and intercept are integers, else float32 (see ``int16_always_fits``)
    hu_dtype: np.dtype
    transfer_syntax: str
    window: tuple[float, float] | None
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    #: byte offset of the pixel values in the file (native syntaxes), else -1
    pixel_offset: int
    # descriptive tags
    study_uid: str = ""
    modality: str = ""
    patient_name: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    slice_thickness: float | None = None
    #: SOP class of the file (CT Image Storage, Enhanced CT Image Storage, ...)
    sop_class: str = ""
    #: frames of the file this slice came from (1 for a classic single-frame slice), and this slice's frame index
    frame_count: int = 1
    frame_index: int = 0

    @property
    def int16_always_fits(self) -> bool:
        """Every storable value maps into int16; if not, decode_hu checks the slice's actual values."""
        return int16_fits(
            self.rescale_slope, self.rescale_intercept, self.bits_stored, self.pixel_representation == 1
        )

    @property
    def is_native(self) -> bool:
        return self.pixel_offset >= 0

    @property
    def slice_nbytes(self) -> int:
        return self.rows * self.columns * self.hu_dtype.itemsize


def choose_hu_dtype(slope: float, intercept: float) -> np.dtype:
    """int16 when RescaleSlope and RescaleIntercept are integers, else float32."""
    return _INT16 if float(slope).is_integer() and float(intercept).is_integer() else _FLOAT32


def int16_fits(slope: float, intercept: float, bits_stored: int, signed: bool) -> bool:
    """Whether every value storable in ``bits_stored`` bits maps into int16 after the rescale."""
    lo, hi = (
        (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    )
    ends = (lo * slope + intercept, hi * slope + intercept)
    return min(ends) >= -32768 and max(ends) <= 32767


def _float_tuple(f: dict, kw: str, n: int, name: str) -> tuple[float, ...]:
    v = f.get(kw)
    if v is None or len(v) != n:
        count = 0 if v is None else len(v)
        raise DicomError(f"{name}: {kw} has {count} values, expected {n}. The file is damaged; re-export it.")
    return tuple(v)


def _check_is_slice(name: str, f: dict, offset: int, sop_class: str) -> None:
    """Raise NotAnImageSlice (or MultiFrameImage) unless the fields describe one single-frame CT slice."""
    if sop_class == DICOMDIR_SOP_CLASS or f.get("DirectoryRecordSequence"):
        raise NotAnImageSlice(name, "DICOMDIR (Media Storage Directory), not an image")
    if offset < 0:
        raise NotAnImageSlice(name, f"no pixel data (SOP class {sop_class or 'unknown'})")
    if (f.get("SamplesPerPixel") or 1) != 1:
        raise NotAnImageSlice(name, "colour image (SamplesPerPixel > 1), not a CT slice")
    if (f.get("NumberOfFrames") or 1) > 1 or ("NumberOfFrames" in f and not f.get("ImagePositionPatient")):
        raise MultiFrameImage(name, "multi-frame image (read its frames with dicom.frames)")
    if not f.get("ImagePositionPatient") or not f.get("ImageOrientationPatient"):
        raise NotAnImageSlice(
            name, "image without ImagePositionPatient/ImageOrientationPatient (not a volume slice)"
        )


def read_header(name: str, data: bytes, *, fast: bool = True) -> SliceHeader:
    """Validate one member and read its slice header.

    Raises NotAnImageSlice for anything that is not a CT image slice (skip and report it), and DicomError for a
    file that claims to be DICOM (DICM marker) but cannot be parsed. ``fast=False`` forces pydicom.
    """
    f, offset = read_fields(name, data, fast=fast)
    sop_class = f.get("MediaStorageSOPClassUID") or f.get("SOPClassUID") or ""
    _check_is_slice(name, f, offset, sop_class)
    rows, columns = f.get("Rows") or 0, f.get("Columns") or 0
    if rows <= 0 or columns <= 0:
        raise DicomError(f"{name}: Rows/Columns missing or zero. The file is damaged; re-export it.")
    bits_allocated = f.get("BitsAllocated") or 16
    bits_stored = f.get("BitsStored") or bits_allocated
    pixel_repr = f.get("PixelRepresentation") or 0
    if bits_allocated not in (8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        raise DicomError(f"{name}: unsupported BitsAllocated {bits_allocated} / BitsStored {bits_stored}.")
    slope = float((f.get("RescaleSlope") or [1.0])[0] or 1.0)
    intercept = float((f.get("RescaleIntercept") or [0.0])[0])
    spacing_kw = "PixelSpacing" if "PixelSpacing" in f else "ImagerPixelSpacing"
    spacing = _float_tuple(f, spacing_kw, 2, name) if spacing_kw in f else (1.0, 1.0)
    ts = f["TransferSyntaxUID"]
    pixel_offset = -1
    if ts in NATIVE_SYNTAXES:
        pixel_offset = _native_pixel_offset(name, data, offset, ts, rows * columns * bits_allocated // 8)
    wc, ww = f.get("WindowCenter"), f.get("WindowWidth")
    window = (wc[0], ww[0]) if wc and ww and ww[0] > 0 else None
    thickness = f.get("SliceThickness")
    return SliceHeader(
        name=name,
        series_uid=f.get("SeriesInstanceUID") or "",
        sop_uid=f.get("SOPInstanceUID") or "",
        position=_float_tuple(f, "ImagePositionPatient", 3, name),  # type: ignore[arg-type]
        orientation=_float_tuple(f, "ImageOrientationPatient", 6, name),  # type: ignore[arg-type]
        pixel_spacing=spacing,  # type: ignore[arg-type]
        rows=rows,
        columns=columns,
        rescale_slope=slope,
        rescale_intercept=intercept,
        hu_dtype=choose_hu_dtype(slope, intercept),
        transfer_syntax=ts,
        window=window,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=pixel_repr,
        pixel_offset=pixel_offset,
        study_uid=f.get("StudyInstanceUID") or "",
        modality=f.get("Modality") or "",
        patient_name=f.get("PatientName") or "",
        study_description=f.get("StudyDescription") or "",
        series_description=f.get("SeriesDescription") or "",
        series_number=f.get("SeriesNumber"),
        instance_number=f.get("InstanceNumber"),
        slice_thickness=thickness[0] if thickness else None,
        sop_class=sop_class,
    )


def _native_pixel_offset(name: str, data: bytes, offset: int, ts: str, need: int) -> int:
    """Offset of the first pixel byte after the (7FE0,0010) element header; checks the length."""
    big = ts == EXPLICIT_VR_BE
    if ts == IMPLICIT_VR_LE:
        (length,) = struct.unpack_from("<I", data, offset + 4)
        start = offset + 8
    elif data[offset + 4 : offset + 6] in _LONG_VRS:
        (length,) = struct.unpack_from(">I" if big else "<I", data, offset + 8)
        start = offset + 12
    else:
        (length,) = struct.unpack_from(">H" if big else "<H", data, offset + 6)
        start = offset + 8
    if length == 0xFFFFFFFF:
        raise DicomError(
            f"{name}: encapsulated pixel data in an uncompressed transfer syntax; re-export the study."
        )
    if length < need or start + need > len(data):
        raise DicomError(
            f"{name}: pixel data is truncated ({min(length, len(data) - start)} of {need} bytes). "
            "The file is damaged; download or export it again."
        )
    return start
