"""Validate one DICOM member, read its header, and decode its pixels into HU.

- ``scan``: the DICM check and the header fields (a fast little-endian scanner, pydicom otherwise);
- ``header``: ``SliceHeader`` and ``read_header`` (non-images raise ``NotAnImageSlice``, broken DICOM
  ``DicomError``);
- ``hu``: ``decode_hu``, stored pixels rescaled into HU straight into the caller's slot;
- ``multiframe`` and ``frames``: Enhanced (multi-frame) CT, one ``SliceHeader`` per frame from the functional
  groups, frames cut (native) or decoded (encapsulated) one by one as the file's bytes arrive (``FrameStream``).
"""

from webviewer.loading.dicom.frames import FrameStream, decode_frame, read_frames
from webviewer.loading.dicom.header import (
    SliceHeader,
    choose_hu_dtype,
    int16_fits,
    read_header,
    skip_reason_for_name,
)
from webviewer.loading.dicom.hu import HUOverflow, decode_hu, slice_dtype, stored_pixels
from webviewer.loading.dicom.multiframe import (
    ENHANCED_CT,
    FrameSet,
    read_frame_set,
    sop_class_name,
)
from webviewer.loading.dicom.scan import (
    DICOMDIR_SOP_CLASS,
    NATIVE_SYNTAXES,
    MultiFrameImage,
    NotAnImageSlice,
    read_fields,
)

__all__ = [
    "DICOMDIR_SOP_CLASS",
    "ENHANCED_CT",
    "FrameSet",
    "FrameStream",
    "MultiFrameImage",
    "decode_frame",
    "read_frame_set",
    "read_frames",
    "sop_class_name",
    "NATIVE_SYNTAXES",
    "HUOverflow",
    "NotAnImageSlice",
    "SliceHeader",
    "choose_hu_dtype",
    "decode_hu",
    "int16_fits",
    "read_fields",
    "read_header",
    "skip_reason_for_name",
    "slice_dtype",
    "stored_pixels",
]
