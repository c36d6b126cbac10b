"""The DICOM datasets of a synthetic series: the shared template and one CT Image Storage slice (pydicom)."""

from __future__ import annotations

import datetime as _dt

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from .phantom import COMPRESSED_SYNTAXES, TRANSFER_SYNTAXES, SeriesSpec, phantom_hu, stored_pixels


def _ds_number(value: float) -> str:
    text = f"{value + 0.0:.6g}"
    return text if len(text) <= 16 else f"{value:.8e}"[:16]


def series_template(spec: SeriesSpec, study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    """The tags every slice of the series shares (patient, study, series, geometry, pixel description)."""
    now = _dt.datetime(2024, 1, 1, 12, 0, 0)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "webviewer synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic chest"
    ds.SeriesDescription = spec.description
    ds.PatientName = spec.patient_name
    ds.PatientID = f"SYN{spec.seed:05d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = _ds_number(spec.slice_spacing)
    ds.KVP = "120"
    ds.ReconstructionDiameter = _ds_number(spec.columns * spec.pixel_spacing[1])
    ds.GantryDetectorTilt = _ds_number(spec.gantry_tilt_deg)
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [_ds_number(v) for v in spec.orientation()]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.PixelSpacing = [_ds_number(v) for v in spec.pixel_spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 1 if spec.signed else 0
    ds.WindowCenter = _ds_number(spec.window[0])
    ds.WindowWidth = _ds_number(spec.window[1])
    ds.RescaleIntercept = _ds_number(spec.rescale_intercept)
    ds.RescaleSlope = _ds_number(spec.rescale_slope)
    ds.RescaleType = "HU"
    return ds


def slice_dataset(spec: SeriesSpec, template: Dataset, index: int, series_uid: str) -> Dataset:
    """Slice ``index`` of the series as a complete CT Image Storage dataset (file meta, pixels, syntax)."""
    ds = Dataset()
    ds.update(template)
    sop_uid = generate_uid(entropy_srcs=[series_uid, str(index)])
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [_ds_number(v) for v in spec.image_position(index)]
    ds.SliceLocation = _ds_number(spec.slice_positions()[index])
    hu = phantom_hu(spec, index)
    ds.PixelData = stored_pixels(spec, hu).tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "WEBVIEWER_SYN"
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128

    tsyntax = spec.transfer_syntax_uid
    if tsyntax in COMPRESSED_SYNTAXES:
        ds.compress(tsyntax, generate_instance_uid=False)
    elif tsyntax == ImplicitVRLittleEndian:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif tsyntax != ExplicitVRLittleEndian:
        raise ValueError(f"unsupported transfer syntax {spec.transfer_syntax!r}; use one of {sorted(TRANSFER_SYNTAXES)}")
    return ds
