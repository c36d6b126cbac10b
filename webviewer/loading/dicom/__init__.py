"""Validate one DICOM member, read its header, and decode its pixels into HU.

- ``scan``: the DICM check and the header fields (a fast little-endian scanner, pydicom otherwise);
- ``header``: ``SliceHeader`` and ``read_header`` (non-images raise ``NotAnImageSlice``, broken DICOM
  ``DicomError``);
- ``hu``: ``decode_hu``, stored pixels rescaled into HU straight into the caller's slot.
"""

from webviewer.loading.dicom.header import (
    SliceHeader,
    choose_hu_dtype,
    int16_fits,
    read_header,
    skip_reason_for_name,
)
from webviewer.loading.dicom.hu import HUOverflow, decode_hu, slice_dtype, stored_pixels
from webviewer.loading.dicom.scan import (
    DICOMDIR_SOP_CLASS,
    NATIVE_SYNTAXES,
    NotAnImageSlice,
    read_fields,
)

__all__ = [
    "DICOMDIR_SOP_CLASS",
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
