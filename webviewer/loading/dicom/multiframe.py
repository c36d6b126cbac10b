"""Multi-frame CT (Enhanced CT Image Storage, legacy converted multi-frame CT): one header, one SliceHeader per frame.

The geometry of each frame comes from the functional groups, per frame first and shared otherwise, as Slicer reads
them: ``PlanePositionSequence`` (position), ``PlaneOrientationSequence`` (orientation), ``PixelMeasuresSequence``
(pixel spacing, thickness), ``PixelValueTransformationSequence`` (rescale), ``FrameVOILUTSequence`` (window) and
``FrameContentSequence`` (in-stack position, kept as the instance number). Top-level tags fill what the groups
lack. Each frame then is an ordinary slice: the same sort, the same warnings, the same HU decode.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset

from webviewer.errors import DicomError
from webviewer.loading.dicom.header import SliceHeader, choose_hu_dtype
from webviewer.loading.dicom.scan import EXPLICIT_VR_BE, IMPLICIT_VR_LE, NATIVE_SYNTAXES, NotAnImageSlice
from webviewer.loading.limits import check_pixels

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_CONVERTED_CT = "1.2.840.10008.5.1.4.1.1.2.2"
SOP_CLASS_NAMES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    ENHANCED_CT: "Enhanced CT Image Storage",
    LEGACY_CONVERTED_CT: "Legacy Converted Enhanced CT Image Storage",
}


@dataclass(frozen=True)
class FrameSet:
    """A multi-frame object's frames and where their pixel values start; each frame's header is built from its
    functional group when it is first asked for (the first frame's at once), so the first frame is out early."""

    name: str
    count: int
    first: SliceHeader
    #: bytes of one native frame (Rows x Columns x BitsAllocated/8)
    frame_bytes: int
    #: offset in the file of the first pixel value byte (native) or of the first item tag (encapsulated)
    pixel_start: int
    #: PixelData value length (native), else -1
    pixel_length: int
    encapsulated: bool
    #: Extended Offset Table (encapsulated), else None
    extended_offsets: tuple[int, ...] | None = None
    make_header: Callable[[int], SliceHeader] | None = field(default=None, repr=False, compare=False)

    def header(self, index: int) -> SliceHeader:
        """The header of frame ``index`` (file order)."""
        if index == 0 or self.make_header is None:
            return self.first
        return self.make_header(index)

    @property
    def headers(self) -> list[SliceHeader]:
        """Every frame's header (file order)."""
        return [self.header(i) for i in range(self.count)]


def sop_class_name(uid: str) -> str:
    return SOP_CLASS_NAMES.get(uid, uid or "unknown")


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of ``seq_owner.<keyword>`` (a functional group macro), or None."""
    if seq_owner is None or keyword not in seq_owner:
        return None
    seq = seq_owner[keyword].value
    return seq[0] if seq else None


#: value -> (functional group macro, attribute); the attribute is also the top-level fallback
_MACROS = {
    "position": ("PlanePositionSequence", "ImagePositionPatient"),
    "orientation": ("PlaneOrientationSequence", "ImageOrientationPatient"),
    "spacing": ("PixelMeasuresSequence", "PixelSpacing"),
    "thickness": ("PixelMeasuresSequence", "SliceThickness"),
    "slope": ("PixelValueTransformationSequence", "RescaleSlope"),
    "intercept": ("PixelValueTransformationSequence", "RescaleIntercept"),
    "wc": ("FrameVOILUTSequence", "WindowCenter"),
    "ww": ("FrameVOILUTSequence", "WindowWidth"),
    "stack": ("FrameContentSequence", "InStackPositionNumber"),
}


def _group_values(group: Dataset | None) -> dict:
    """The geometry values one functional group (a per-frame item, or the shared one) holds."""
    out: dict = {}
    if group is None:
        return out
    for key, (macro, keyword) in _MACROS.items():
        item = _item(group, macro)
        if item is not None and keyword in item:
            value = item[keyword].value
            if value is not None and value != "":
                out[key] = value
    return out


def _base_values(ds: Dataset, shared: Dataset | None, frames: int) -> dict:
    """Top-level tags, overridden by the shared functional group: what every frame has unless its own group says."""
    out = {}
    for key, (_macro, keyword) in _MACROS.items():
        if key != "stack" and (key != "position" or frames == 1) and keyword in ds:
            value = ds[keyword].value
            if value is not None and value != "":
                out[key] = value
    shared_values = _group_values(shared)
    shared_values.pop("stack", None)  # frame content is per frame
    return {**out, **shared_values}


def _floats(value, n: int, what: str, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{name}: {what} is not numeric ({value!r}). The file is damaged; re-export it.") from exc
    if len(out) != n:
        raise DicomError(f"{name}: {what} has {len(out)} values, expected {n}. The file is damaged; re-export it.")
    return out


def _first(value) -> float:
    """The first value of a possibly multi-valued number (WindowCenter may hold several)."""
    return float(value[0]) if isinstance(value, Sequence) and not isinstance(value, str) else float(value)


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip(" \x00")


def _frame_header(values: dict, base: dict, index: int, name: str) -> SliceHeader:
    position, orientation = values.get("position"), values.get("orientation")
    if position is None:
        raise NotAnImageSlice(name, f"multi-frame image without a position for frame {index + 1} (not a volume)")
    if orientation is None:
        raise NotAnImageSlice(name, "multi-frame image without ImageOrientationPatient (not a volume)")
    spacing, thickness = values.get("spacing") or (1.0, 1.0), values.get("thickness")
    slope, intercept = values.get("slope") or 1.0, values.get("intercept") or 0.0
    wc, ww = values.get("wc"), values.get("ww")
    window = (_first(wc), _first(ww)) if wc is not None and ww is not None and _first(ww) > 0 else None
    stack = values.get("stack")
    slope, intercept = float(slope), float(intercept)
    return SliceHeader(
        **base["common"],
        name=f"{name} [frame {index + 1}]",
        position=_floats(position, 3, "ImagePositionPatient", name),  # type: ignore[arg-type]
        orientation=_floats(orientation, 6, "ImageOrientationPatient", name),  # type: ignore[arg-type]
        pixel_spacing=_floats(spacing, 2, "PixelSpacing", name),  # type: ignore[arg-type]
        rescale_slope=slope or 1.0,
        rescale_intercept=intercept,
        hu_dtype=choose_hu_dtype(slope or 1.0, intercept),
        window=window,
        instance_number=int(stack) if stack is not None else index + 1,
        slice_thickness=float(thickness) if thickness is not None else None,
        pixel_offset=base["offset"](index),
        frame_index=index,
    )


def _common(ds: Dataset, ts: str, sop_class: str, frames: int) -> dict:
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    bits_allocated = int(ds.get("BitsAllocated") or 16)
    bits_stored = int(ds.get("BitsStored") or bits_allocated)
    return {
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "sop_uid": _text(ds, "SOPInstanceUID"),
        "rows": rows,
        "columns": columns,
        "transfer_syntax": ts,
        "bits_allocated": bits_allocated,
        "bits_stored": bits_stored,
        "pixel_representation": int(ds.get("PixelRepresentation") or 0),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "modality": _text(ds, "Modality"),
        "patient_name": _text(ds, "PatientName"),
        "study_description": _text(ds, "StudyDescription"),
        "series_description": _text(ds, "SeriesDescription"),
        "series_number": int(ds.SeriesNumber) if ds.get("SeriesNumber") not in (None, "") else None,
        "sop_class": sop_class,
        "frame_count": frames,
    }


def _check_image(name: str, common: dict, ds: Dataset) -> None:
    if int(ds.get("SamplesPerPixel") or 1) != 1:
        raise NotAnImageSlice(name, "colour image (SamplesPerPixel > 1), not a CT volume")
    if common["rows"] <= 0 or common["columns"] <= 0:
        raise DicomError(f"{name}: Rows/Columns missing or zero. The file is damaged; re-export it.")
    ba, bs = common["bits_allocated"], common["bits_stored"]
    if ba not in (8, 16, 32) or not 1 <= bs <= ba:
        raise DicomError(f"{name}: unsupported BitsAllocated {ba} / BitsStored {bs}.")


def _pixel_element(name: str, head: bytes, pos: int, ts: str) -> tuple[int, int]:
    """(value start, value length; 0xFFFFFFFF when encapsulated) of the PixelData element at ``pos``."""
    big = ts == EXPLICIT_VR_BE
    if len(head) < pos + 12:
        raise DicomError(f"{name}: the file ends inside its PixelData element. Download or export it again.")
    if ts == IMPLICIT_VR_LE:
        return pos + 8, int.from_bytes(head[pos + 4 : pos + 8], "little")
    vr = head[pos + 4 : pos + 6]
    if vr in (b"OB", b"OW", b"UN", b"OD", b"OF", b"OL", b"OV"):
        return pos + 12, int.from_bytes(head[pos + 8 : pos + 12], "big" if big else "little")
    return pos + 8, int.from_bytes(head[pos + 6 : pos + 8], "big" if big else "little")


def read_frame_set(name: str, head: bytes, pixel_pos: int, max_volume_bytes: int | None = None) -> FrameSet:
    """The frames of a multi-frame file from its header bytes; ``head`` runs at least 12 bytes past ``pixel_pos``
    (the offset of the PixelData tag). Raises NotAnImageSlice (not a volume), DicomError (damaged) or
    LimitExceededError (the frames would exceed ``max_volume_bytes`` at 2 bytes per voxel; FrameStream checks
    again at float32 when a frame's rescale needs it)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(head[:pixel_pos]), stop_before_pixels=True, force=True)
    except Exception as exc:
        raise DicomError(f"{name}: corrupt multi-frame DICOM header ({exc}). Export the study again.") from exc
    meta = getattr(ds, "file_meta", Dataset())
    ts = str(meta.get("TransferSyntaxUID", "") or "1.2.840.10008.1.2.1")
    sop_class = str(meta.get("MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", "") or "")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames < 1:
        raise DicomError(f"{name}: NumberOfFrames is {frames}. The file is damaged; export it again.")
    common = _common(ds, ts, sop_class, frames)
    _check_image(name, common, ds)
    rows, columns = common["rows"], common["columns"]
    if max_volume_bytes is not None:  # before any frame header, slot or decode: a hostile NumberOfFrames costs nothing
        check_pixels(name, rows, columns, frames=frames, bytes_per_sample=2, limit=max_volume_bytes)
    start, length = _pixel_element(name, head, pixel_pos, ts)
    frame_bytes = common["rows"] * common["columns"] * common["bits_allocated"] // 8
    encapsulated = length == 0xFFFFFFFF
    if encapsulated == (ts in NATIVE_SYNTAXES):
        raise DicomError(f"{name}: pixel data encoding does not match transfer syntax {ts}; re-export the study.")
    if not encapsulated and length not in (frames * frame_bytes, frames * frame_bytes + 1):
        raise DicomError(
            f"{name}: NumberOfFrames is {frames} ({frames * frame_bytes} bytes of {common['columns']}x"
            f"{common['rows']} frames) but PixelData holds {length} bytes. The file is damaged; export it again."
        )
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if per_frame and len(per_frame) != frames:
        raise DicomError(
            f"{name}: NumberOfFrames is {frames} but the per-frame functional groups describe {len(per_frame)} "
            "frames. The file is damaged; export it again."
        )
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    base = {
        "frames": frames,
        "common": common,
        "offset": (lambda i: -1) if encapsulated else (lambda i: start + i * frame_bytes),
    }
    every = _base_values(ds, shared, frames)

    def make_header(i: int) -> SliceHeader:
        return _frame_header({**every, **_group_values(per_frame[i] if per_frame else None)}, base, i, name)

    eot = ds.get("ExtendedOffsetTable")
    offsets = tuple(int.from_bytes(eot[i : i + 8], "little") for i in range(0, len(eot), 8)) if eot else None
    return FrameSet(name, frames, make_header(0), frame_bytes, start, -1 if encapsulated else length, encapsulated,
                    offsets, make_header)
