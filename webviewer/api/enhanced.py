"""Enhanced CT writer: classic single-frame CT slices into one Enhanced CT Image Storage file (pydicom).

Used by the Enhanced CT sample and by the tests that compare a multi-frame file with the classic series it was
made from. The geometry goes where a scanner puts it: pixel spacing, orientation and (when every slice shares it)
the rescale in ``SharedFunctionalGroupsSequence``; position, frame content and (when slices differ) the rescale
in ``PerFrameFunctionalGroupsSequence``. Frames keep the slices' stored pixel values byte for byte.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from .dataset import series_template, slice_dataset

ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription", "Modality", "Manufacturer",
    "SeriesDescription", "SeriesNumber", "FrameOfReferenceUID", "PositionReferenceIndicator", "Rows", "Columns",
    "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
)


def _item(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _rescale(ds: Dataset) -> tuple[str, str]:
    return str(ds.get("RescaleSlope", "1") or "1"), str(ds.get("RescaleIntercept", "0") or "0")


def _frame_bytes(ds: Dataset) -> bytes:
    """The slice's stored pixel values, little endian, as they are in the file when native."""
    if not ds.file_meta.TransferSyntaxUID.is_compressed and ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2":
        need = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
        return bytes(ds.PixelData[:need])
    return ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()


def enhanced_from_slices(
    slices: Sequence[Dataset],
    *,
    shuffle_seed: int | None = None,
    series_uid: str | None = None,
    per_frame_rescale: bool | None = None,
) -> Dataset:
    """One explicit VR little endian Enhanced CT dataset holding ``slices`` as frames.

    ``shuffle_seed`` shuffles the frame order (a reader must sort by position, not by frame number);
    ``per_frame_rescale`` forces (True) or forbids (False) per-frame rescale; by default it is per frame only when
    the slices' rescales differ. Compress the result with ``ds.compress(...)`` for an encapsulated file.
    """
    order = list(range(len(slices)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    first = slices[0]
    rescales = {_rescale(s) for s in slices}
    per_frame = len(rescales) > 1 if per_frame_rescale is None else per_frame_rescale
    if not per_frame and len(rescales) > 1:
        raise ValueError("the slices' rescales differ: they need per-frame rescale")
    sop = generate_uid()
    ds = Dataset()
    for keyword in _COPIED:
        if keyword in first:
            setattr(ds, keyword, first.data_element(keyword).value)
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT_STORAGE, sop
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(slices)
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.SharedFunctionalGroupsSequence = DicomSequence([_shared(first, per_frame)])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(
        [_per_frame(slices[i], k, per_frame) for k, i in enumerate(order)]
    )
    ds.PixelData = b"".join(_frame_bytes(slices[i]) for i in order)
    ds["PixelData"].VR = "OW" if int(first.BitsAllocated) > 8 else "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_CT_STORAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    return ds


def _shared(first: Dataset, per_frame_rescale: bool) -> Dataset:
    group = Dataset()
    measures = _item(PixelSpacing=list(first.PixelSpacing))
    if "SliceThickness" in first:
        measures.SliceThickness = first.SliceThickness
    group.PixelMeasuresSequence = DicomSequence([measures])
    group.PlaneOrientationSequence = DicomSequence(
        [_item(ImageOrientationPatient=list(first.ImageOrientationPatient))]
    )
    if "WindowCenter" in first and "WindowWidth" in first:
        group.FrameVOILUTSequence = DicomSequence(
            [_item(WindowCenter=first.WindowCenter, WindowWidth=first.WindowWidth)]
        )
    if not per_frame_rescale:
        group.PixelValueTransformationSequence = DicomSequence([_transformation(first)])
    return group


def _transformation(ds: Dataset) -> Dataset:
    slope, intercept = _rescale(ds)
    return _item(RescaleSlope=slope, RescaleIntercept=intercept, RescaleType="HU")


def _per_frame(ds: Dataset, k: int, per_frame_rescale: bool) -> Dataset:
    group = Dataset()
    group.FrameContentSequence = DicomSequence(
        [_item(FrameAcquisitionNumber=k + 1, InStackPositionNumber=int(ds.get("InstanceNumber") or k + 1),
               DimensionIndexValues=[1, int(ds.get("InstanceNumber") or k + 1)])]
    )
    group.PlanePositionSequence = DicomSequence([_item(ImagePositionPatient=list(ds.ImagePositionPatient))])
    if per_frame_rescale:
        group.PixelValueTransformationSequence = DicomSequence([_transformation(ds)])
    return group


def write_enhanced_series(folder: str | os.PathLike, spec, *, progress: bool = False) -> Path:
    """The phantom of ``spec`` (``webviewer.api.samples.SeriesSpec``) as one Enhanced CT file in ``folder``,
    frames in shuffled order (a reader sorts them by position)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = spec.series_uid or generate_uid()
    template = series_template(spec, spec.study_uid or generate_uid(), series_uid,
                         generate_uid(entropy_srcs=[series_uid, "frame"]))
    indices = range(spec.n_slices)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"writing {folder.name}", unit="frame", leave=False)
    slices = [slice_dataset(spec, template, k, series_uid) for k in indices]
    ds = enhanced_from_slices(slices, shuffle_seed=spec.seed, series_uid=series_uid)
    slices.clear()
    path = folder / "CT_ENHANCED.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
