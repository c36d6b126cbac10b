"""Helpers for the DICOM/geometry/volume tests: an independent reading (plain pydicom + numpy), file builders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from webviewer.loading.dicom import NotAnImageSlice, SliceHeader, decode_hu, read_header


def folder_members(folder: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file in a real-series folder except its SOURCE.md, in name order."""
    return [
        (p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file() and p.name != "SOURCE.md"
    ]


def parse_members(members: list[tuple[str, bytes]]) -> tuple[list[tuple[SliceHeader, bytes]], list[str]]:
    """read_header over members: (header, data) pairs and the names of skipped members."""
    parsed, skipped = [], []
    for name, data in members:
        try:
            parsed.append((read_header(name, data), data))
        except NotAnImageSlice:
            skipped.append(name)
    return parsed, skipped


def decoded(parsed: list[tuple[SliceHeader, bytes]]) -> list[tuple[SliceHeader, np.ndarray]]:
    return [(h, decode_hu(data, h)) for h, data in parsed]


def independent_hu(members: list[tuple[str, bytes]]) -> tuple[np.ndarray, list[str]]:
    """HU volume read with nothing but pydicom + numpy: pixel_array * slope + intercept (float64), sorted by
    ImagePositionPatient projected on the ImageOrientationPatient normal. Returns (volume, names in order)."""
    datasets = []
    for name, data in members:
        ds = pydicom.dcmread(io.BytesIO(data))
        if "PixelData" not in ds:
            continue
        datasets.append((name, ds))
    iop = np.array([float(v) for v in datasets[0][1].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])

    def where(item) -> float:
        return float(np.dot(np.array([float(v) for v in item[1].ImagePositionPatient]), normal))

    datasets.sort(key=where)
    slices = [
        ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1)
        + float(ds.get("RescaleIntercept", 0) or 0)
        for _, ds in datasets
    ]
    return np.stack(slices), [name for name, _ in datasets]


def ct_dataset(
    *,
    rows: int = 8,
    columns: int = 8,
    position: tuple[float, float, float] = (0.0, 0.0, 0.0),
    pixels: np.ndarray | None = None,
    bits_stored: int = 16,
    signed: bool = True,
    slope: float = 1.0,
    intercept: float = 0.0,
    series_uid: str | None = None,
    implicit: bool = False,
) -> Dataset:
    """A minimal valid CT Image Storage dataset (explicit VR LE unless ``implicit``)."""
    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.ImagePositionPatient = [f"{v:g}" for v in position]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["0.5", "0.7"]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    if pixels is None:
        pixels = np.arange(rows * columns, dtype=np.int16 if signed else np.uint16).reshape(rows, columns)
    ds.PixelData = np.ascontiguousarray(pixels).astype("<i2" if signed else "<u2").tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
