"""Validate one DICOM member, read its header, and decode its pixels into HU.

- ``read_header``: DICM marker at offset 128, then a small scanner reads the needed fields of little-endian files
  up to PixelData (about 0.1 ms for a 512x512 CT slice; pydicom reads anything else: big endian, deflate, other
  character sets). Non-images raise ``NotAnImageSlice`` (skip and list), broken DICOM raises ``DicomError``.
- ``decode_hu``: uncompressed pixels are viewed with ``np.frombuffer`` at the PixelData offset and rescaled
  straight into the caller's slot; compressed syntaxes (RLE, JPEG Lossless, JPEG-LS, JPEG 2000) are decoded by
  pydicom's pixel plugins (pylibjpeg, pyjpegls).
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.multival import MultiValue
from pydicom.uid import UID

from webviewer.errors import DicomError

log = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
NATIVE_SYNTAXES = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE})
_PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
_PIXEL_TAG_BE = b"\x7f\xe0\x00\x10"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
#: faster lossless decoders where several are installed (measured on 512x512: CharLS ~3x libjpeg for JPEG-LS,
#: pylibjpeg-rle ~3x pydicom's numpy RLE); the others are tried if the preferred one fails
_PREFERRED_PLUGINS = {
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
    "1.2.840.10008.1.2.5": "pylibjpeg",
}
_INT16 = np.dtype(np.int16)
_FLOAT32 = np.dtype(np.float32)


class NotAnImageSlice(Exception):  # noqa: N818 - name fixed by the team contract
    """The member is not a CT image slice (DICOMDIR, junk, no pixels): skip it and list it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


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


class HUOverflow(ValueError):  # noqa: N818
    """This slice's HU do not fit the int16 ``out``: promote the volume to float32 and decode again."""


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


# ----------------------------------------------------------------------------------------------- header fields
# keyword -> (tag, kind); kind: "uid" | "cs" | "text" | "ds" (list of floats) | "is" | "us" (int) | "present"
_FIELDS: dict[str, tuple[int, str]] = {
    "SpecificCharacterSet": (0x00080005, "cs"),
    "SOPClassUID": (0x00080016, "uid"),
    "SOPInstanceUID": (0x00080018, "uid"),
    "Modality": (0x00080060, "text"),
    "StudyDescription": (0x00081030, "text"),
    "SeriesDescription": (0x0008103E, "text"),
    "PatientName": (0x00100010, "text"),
    "SliceThickness": (0x00180050, "ds"),
    "ImagerPixelSpacing": (0x00181164, "ds"),
    "StudyInstanceUID": (0x0020000D, "uid"),
    "SeriesInstanceUID": (0x0020000E, "uid"),
    "SeriesNumber": (0x00200011, "is"),
    "InstanceNumber": (0x00200013, "is"),
    "ImagePositionPatient": (0x00200032, "ds"),
    "ImageOrientationPatient": (0x00200037, "ds"),
    "SamplesPerPixel": (0x00280002, "us"),
    "NumberOfFrames": (0x00280008, "is"),
    "Rows": (0x00280010, "us"),
    "Columns": (0x00280011, "us"),
    "PixelSpacing": (0x00280030, "ds"),
    "BitsAllocated": (0x00280100, "us"),
    "BitsStored": (0x00280101, "us"),
    "PixelRepresentation": (0x00280103, "us"),
    "WindowCenter": (0x00281050, "ds"),
    "WindowWidth": (0x00281051, "ds"),
    "RescaleIntercept": (0x00281052, "ds"),
    "RescaleSlope": (0x00281053, "ds"),
    "DirectoryRecordSequence": (0x00041220, "present"),
}
_BY_TAG = {tag: (kw, kind) for kw, (tag, kind) in _FIELDS.items()}
_SIMPLE_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO_IR 192"}


class _Unsupported(Exception):
    """The fast scanner met something it does not handle: use pydicom instead."""


class _Truncated(Exception):
    """An element runs past the end of the file."""


def _element_header(data: bytes, pos: int, explicit: bool) -> tuple[int, int, int]:
    """(tag, value length, header size) of the element at ``pos`` (little endian)."""
    group, elem = struct.unpack_from("<HH", data, pos)
    if explicit and group != 0xFFFE:
        if data[pos + 4 : pos + 6] in _LONG_VRS:
            return (group << 16) | elem, struct.unpack_from("<I", data, pos + 8)[0], 12
        return (group << 16) | elem, struct.unpack_from("<H", data, pos + 6)[0], 8
    return (group << 16) | elem, struct.unpack_from("<I", data, pos + 4)[0], 8


def _skip_sequence(data: bytes, pos: int, explicit: bool, depth: int = 0) -> int:
    """Skip the items of an undefined-length sequence; return the position after its delimiter."""
    if depth > 16:
        raise _Unsupported("sequences nested too deep")
    while True:
        tag, length, size = _element_header(data, pos, False)
        pos += size
        if tag == 0xFFFEE0DD:
            return pos
        if tag != 0xFFFEE000:
            raise _Unsupported(f"unexpected tag {tag:08X} in a sequence")
        if length != 0xFFFFFFFF:
            pos += length
            continue
        while True:  # undefined-length item: elements until the item delimiter
            tag, length, size = _element_header(data, pos, explicit)
            if tag == 0xFFFEE00D:
                pos += 8
                break
            if length == 0xFFFFFFFF:
                nested_explicit = explicit and data[pos + 4 : pos + 6] != b"UN"
                pos = _skip_sequence(data, pos + size, nested_explicit, depth + 1)
            else:
                pos += size + length
            if pos > len(data):
                raise _Truncated("a sequence item runs past the end of the file")


def _scan(data: bytes) -> tuple[dict[int, bytes], str, int]:
    """Raw values of the wanted tags, the transfer syntax, and the offset of (7FE0,0010) (-1 if none)."""
    n = len(data)
    pos = 132
    raw: dict[int, bytes] = {}
    ts = ""
    while pos + 8 <= n:  # file meta: always explicit VR little endian
        tag, length, size = _element_header(data, pos, True)
        if tag >> 16 != 0x0002:
            break
        if tag in (0x00020002, 0x00020010):
            raw[tag] = data[pos + size : pos + size + length]
        pos += size + length
    if pos > n:
        raise _Truncated(f"the file meta information runs past the end of the file ({n} bytes)")
    ts = raw.pop(0x00020010, b"").rstrip(b"\x00 ").decode("ascii")
    if ts in (EXPLICIT_VR_BE, DEFLATED_LE) or not ts.startswith("1.2.840.10008.1.2"):
        raise _Unsupported(f"transfer syntax {ts!r}")
    explicit = ts != IMPLICIT_VR_LE
    if explicit and pos + 8 <= n and not data[pos + 4 : pos + 6].isalpha():
        # implicit VR written under an explicit syntax (seen in the wild; pydicom reads it the same way)
        explicit = False
    while pos + 8 <= n:
        tag, length, size = _element_header(data, pos, explicit)
        if tag == 0x7FE00010:
            return raw, ts, pos
        if tag > 0x7FE00010:
            return raw, ts, -1
        if length == 0xFFFFFFFF:
            if tag in _BY_TAG:
                raw[tag] = b""
            nested_explicit = explicit and data[pos + 4 : pos + 6] != b"UN"
            pos = _skip_sequence(data, pos + size, nested_explicit)
            continue
        pos += size
        if tag in _BY_TAG:
            raw[tag] = data[pos : pos + length]
        pos += length
    if pos != n:
        raise _Truncated(f"an element runs past the end of the file ({n} bytes)")
    return raw, ts, -1


def _convert(kind: str, value: bytes, utf8: bool):
    if kind == "us":
        return struct.unpack_from("<H", value)[0] if len(value) >= 2 else None
    if kind == "present":
        return True
    if kind == "text":
        text = value.decode("utf-8" if utf8 else "latin-1").strip(" \x00")
        return text or None
    text = value.decode("ascii").strip(" \x00")
    if not text:
        return None
    if kind in ("uid", "cs"):
        return text
    if kind == "is":
        return int(text.split("\\")[0])
    return [float(v) for v in text.split("\\")]


def _fields_fast(data: bytes) -> tuple[dict, int]:
    raw, ts, pixel_pos = _scan(data)
    charset = raw.get(0x00080005, b"").decode("ascii").strip(" \x00")
    if charset not in _SIMPLE_CHARSETS:
        raise _Unsupported(f"character set {charset}")
    utf8 = charset == "ISO_IR 192"
    out: dict = {"TransferSyntaxUID": ts}
    sop_class = raw.pop(0x00020002, b"")
    out["MediaStorageSOPClassUID"] = sop_class.rstrip(b"\x00 ").decode("ascii")
    for tag, value in raw.items():
        kw, kind = _BY_TAG[tag]
        v = _convert(kind, value, utf8)
        if v is not None:
            out[kw] = v
    return out, pixel_pos


def _value(ds: pydicom.Dataset, kw: str, kind: str):
    if kind == "present":
        return True if kw in ds else None
    v = ds.get(kw)
    if v is None or v == "":
        return None
    many = isinstance(v, MultiValue | list | tuple)
    if kind == "ds":
        return [float(x) for x in v] if many else [float(v)]
    if kind in ("is", "us"):
        return int(v[0] if many else v)
    if kind == "cs" and many:
        return "\\".join(str(x) for x in v)
    return str(v).strip(" \x00") or None


def _fields_pydicom(name: str, data: bytes) -> tuple[dict, int]:
    """The same fields through pydicom (any syntax, any character set); offset of (7FE0,0010) or -1."""
    fp = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True)
        meta = ds.file_meta
        ts = str(meta.get("TransferSyntaxUID", EXPLICIT_VR_LE))
        out: dict = {
            "TransferSyntaxUID": ts,
            "MediaStorageSOPClassUID": str(meta.get("MediaStorageSOPClassUID", "") or ""),
        }
        for kw, (_tag, kind) in _FIELDS.items():
            v = _value(ds, kw, kind)
            if v is not None:
                out[kw] = v
    except Exception as exc:
        raise DicomError(
            f"{name}: corrupt DICOM ({exc}). Remove the file from the archive or export the study again."
        ) from exc
    offset = fp.tell()
    if ts == DEFLATED_LE:  # inflated into another stream: find PixelData by a full read
        return out, (0 if "PixelData" in _full(name, data) else -1)
    tag = data[offset : offset + 4]
    return out, (offset if tag == (_PIXEL_TAG_BE if ts == EXPLICIT_VR_BE else _PIXEL_TAG_LE) else -1)


def read_fields(name: str, data: bytes, *, fast: bool = True) -> tuple[dict, int]:
    """Validate the DICM marker and read the header fields the loader needs (keyword -> python value).

    Returns the fields and the offset of the (7FE0,0010) element (-1: no pixel data). A small scanner reads
    little-endian files (several times faster than pydicom); pydicom reads anything it does not handle.
    """
    if not data:
        raise NotAnImageSlice(name, "empty file")
    if len(data) < 132 or data[128:132] != b"DICM":
        head = data[:512]
        kind = "text file" if head and all(32 <= b < 127 or b in b"\r\n\t" for b in head) else "not DICOM"
        raise NotAnImageSlice(name, f"{kind} (no DICM marker at offset 128)")
    if fast:
        try:
            return _fields_fast(data)
        except _Truncated as exc:  # unless pydicom finds the pixels anyway, the file is broken
            fields, offset = _fields_pydicom(name, data)
            if offset < 0:
                raise DicomError(
                    f"{name}: truncated DICOM file ({exc}). Download or export the study again."
                ) from exc
            return fields, offset
        except (_Unsupported, struct.error, ValueError, UnicodeDecodeError, KeyError, IndexError) as exc:
            log.debug("%s: fast header scan gave up (%s); using pydicom", name, exc)
    return _fields_pydicom(name, data)


def _float_tuple(f: dict, kw: str, n: int, name: str) -> tuple[float, ...]:
    v = f.get(kw)
    if v is None or len(v) != n:
        count = 0 if v is None else len(v)
        raise DicomError(f"{name}: {kw} has {count} values, expected {n}. The file is damaged; re-export it.")
    return tuple(v)


def read_header(name: str, data: bytes, *, fast: bool = True) -> SliceHeader:
    """Validate one member and read its slice header.

    Raises NotAnImageSlice for anything that is not a CT image slice (skip and report it), and DicomError for a
    file that claims to be DICOM (DICM marker) but cannot be parsed. ``fast=False`` forces pydicom.
    """
    f, offset = read_fields(name, data, fast=fast)
    sop_class = f.get("MediaStorageSOPClassUID") or f.get("SOPClassUID") or ""
    if sop_class == DICOMDIR_SOP_CLASS or f.get("DirectoryRecordSequence"):
        raise NotAnImageSlice(name, "DICOMDIR (Media Storage Directory), not an image")
    if offset < 0:
        raise NotAnImageSlice(name, f"no pixel data (SOP class {sop_class or 'unknown'})")
    if (f.get("SamplesPerPixel") or 1) != 1:
        raise NotAnImageSlice(name, "colour image (SamplesPerPixel > 1), not a CT slice")
    if (f.get("NumberOfFrames") or 1) > 1:
        raise NotAnImageSlice(name, "multi-frame image (not supported; export single-frame slices)")
    if not f.get("ImagePositionPatient") or not f.get("ImageOrientationPatient"):
        raise NotAnImageSlice(
            name, "image without ImagePositionPatient/ImageOrientationPatient (not a volume slice)"
        )
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
    )


def _full(name: str, data: bytes) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:
        raise DicomError(
            f"{name}: corrupt DICOM ({exc}). Remove the file or export the study again."
        ) from exc


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


def _stored_dtype(header: SliceHeader) -> np.dtype:
    kind = "i" if header.pixel_representation == 1 else "u"
    order = ">" if header.transfer_syntax == EXPLICIT_VR_BE else "<"
    return np.dtype(f"{order}{kind}{header.bits_allocated // 8}")


def stored_pixels(data: bytes, header: SliceHeader) -> np.ndarray:
    """Stored values (rows, columns) as pydicom's ``pixel_array`` gives them (read-only view when native)."""
    if header.is_native:
        dtype = _stored_dtype(header)
        return np.frombuffer(
            data, dtype=dtype, count=header.rows * header.columns, offset=header.pixel_offset
        ).reshape(header.rows, header.columns)
    ds = _full(header.name, data)
    plugin = _PREFERRED_PLUGINS.get(header.transfer_syntax, "")
    try:
        try:
            ds.pixel_array_options(decoding_plugin=plugin)
            arr = ds.pixel_array
        except Exception:
            if not plugin:
                raise
            log.debug("%s: plugin %s failed, trying the others", header.name, plugin)
            ds.pixel_array_options(decoding_plugin="")
            arr = ds.pixel_array
    except Exception as exc:
        raise DicomError(
            f"{header.name}: cannot decode {UID(header.transfer_syntax).name} pixel data ({exc}). "
            "Install the pylibjpeg/pyjpegls plugins or export the study uncompressed."
        ) from exc
    if arr.shape != (header.rows, header.columns):
        raise DicomError(f"{header.name}: decoded {arr.shape}, expected ({header.rows}, {header.columns}).")
    return arr


def slice_dtype(hu_range: tuple[float, float] | None, header: SliceHeader) -> np.dtype:
    """The dtype a slice needs: the header's, or float32 when integral HU fall outside int16."""
    if header.hu_dtype != _INT16 or hu_range is None:
        return header.hu_dtype
    return _INT16 if hu_range[0] >= -32768 and hu_range[1] <= 32767 else _FLOAT32


def _wrap16(value: float) -> np.int16:
    return np.int16(((int(value) + 32768) % 65536) - 32768)


def _corrected(raw: np.ndarray, header: SliceHeader) -> np.ndarray:
    """A native-endian copy of ``raw`` with the unused high bits corrected as pydicom does."""
    arr = raw.astype(raw.dtype.newbyteorder("="), copy=True)
    shift = arr.dtype.itemsize * 8 - header.bits_stored
    np.left_shift(arr, shift, out=arr)
    np.right_shift(arr, shift, out=arr)
    return arr


def decode_hu(data: bytes, header: SliceHeader, out: np.ndarray | None = None) -> np.ndarray:
    """HU of one slice (rows, columns) = stored * RescaleSlope + RescaleIntercept, written into ``out``.

    ``out`` (if given) must have the slice shape and dtype int16 or float32. Without ``out`` the result is
    int16 when slope/intercept are integers and this slice's HU fit int16, else float32. An int16 ``out`` for a
    slice that needs float32 raises HUOverflow (subclass of ValueError) before anything is written: the caller
    promotes its volume to float32 and decodes again. Unused high bits (BitsStored < BitsAllocated) follow
    pydicom (masked when unsigned, sign-extended when signed). No full-size temporaries on the int16 path.
    """
    shape = (header.rows, header.columns)
    if out is not None and out.shape != shape:
        raise ValueError(f"{header.name}: out has shape {out.shape}, slice is {shape}")
    raw = stored_pixels(data, header)
    fix_bits = header.is_native and header.bits_stored < header.bits_allocated
    slope, intercept = header.rescale_slope, header.rescale_intercept
    need = header.hu_dtype
    if need == _INT16 and not header.int16_always_fits:
        if fix_bits:
            raw, fix_bits = _corrected(raw, header), False
        lo, hi = (int(raw.min()), int(raw.max())) if raw.size else (0, 0)
        ends = (lo * slope + intercept, hi * slope + intercept)
        need = slice_dtype((min(ends), max(ends)), header)
    if out is None:
        out = np.empty(shape, dtype=need)
    elif out.dtype == _INT16 and need != _INT16:
        raise HUOverflow(f"{header.name}: HU need {need}, out is int16")
    if out.dtype == _INT16:
        np.copyto(out, raw, casting="unsafe")
        if fix_bits:
            shift = 16 - header.bits_stored
            if header.pixel_representation == 1:
                np.left_shift(out, shift, out=out)
                np.right_shift(out, shift, out=out)
            else:
                np.bitwise_and(out, (1 << header.bits_stored) - 1, out=out)
        # int16 arithmetic wraps modulo 2**16; the final HU fit int16 (checked), so the result is exact
        if slope != 1:
            np.multiply(out, _wrap16(slope), out=out)
        if intercept != 0:
            np.add(out, _wrap16(intercept), out=out)
        return out
    if fix_bits:
        raw = _corrected(raw, header)
    if need == _INT16 and slope == 1 and abs(intercept) < 2**23:  # integral HU below 2**24: exact in float32
        np.copyto(out, raw, casting="unsafe")
        if intercept != 0:
            np.add(out, np.float32(intercept), out=out)
        return out
    # float rescale (or integral HU beyond int16): compute in float64 (one slice temporary), round once
    tmp = np.multiply(raw, slope, dtype=np.float64)
    tmp += intercept
    np.copyto(out, tmp, casting="unsafe")
    return out
