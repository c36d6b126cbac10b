"""dicom.py: validation, skip reasons, header reading (fast scanner == pydicom), HU decoding vs pydicom."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import ct_dataset, folder_members, independent_hu, to_bytes
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import generate_uid
from realdata import real_series_dir

from webviewer.errors import DicomError
from webviewer.loading.dicom import (
    HUOverflow,
    NotAnImageSlice,
    SliceHeader,
    choose_hu_dtype,
    decode_hu,
    int16_fits,
    read_header,
    skip_reason_for_name,
)
from webviewer.loading.dicom.scan import _fields_fast

PHILIPS = "dcmqa-philips-headphantom-1mm"


# ------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    "name",
    ["__MACOSX/series/._I10", "__MACOSX/", "study/.DS_Store", ".DS_Store", "study/", "a/b/", "x/._IM1", ""],
)
def test_skip_reason_for_junk_names(name):
    assert skip_reason_for_name(name)


@pytest.mark.parametrize("name", ["I10", "study/series/IM0001.dcm", "DIRFILE", "CTHead1.dcm", "MACOSX/IM1"])
def test_no_skip_reason_for_slice_names(name):
    assert skip_reason_for_name(name) is None


# ------------------------------------------------------------------------------------------------ not images
def test_philips_dirfile_is_not_an_image_slice():
    data = (real_series_dir(PHILIPS) / "DIRFILE").read_bytes()
    with pytest.raises(NotAnImageSlice) as info:
        read_header("DIRFILE", data)
    assert "DICOMDIR" in info.value.reason
    assert info.value.name == "DIRFILE"


@pytest.mark.parametrize(
    ("data", "word"),
    [
        (b"", "empty"),
        (b"Hello, this is a README for the study export.\n" * 10, "text"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2, "DICM"),
        (b"\x00" * 100, "DICM"),
    ],
)
def test_junk_is_not_an_image_slice(data, word):
    with pytest.raises(NotAnImageSlice) as info:
        read_header("junk", data)
    assert word in info.value.reason


def test_dicom_without_pixel_data_is_skipped():
    ds = ct_dataset()
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # basic text SR
    with pytest.raises(NotAnImageSlice) as info:
        read_header("report.dcm", to_bytes(ds))
    assert "no pixel data" in info.value.reason


def test_dicomdir_by_sop_class_is_skipped():
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    ds.FileSetID = "X"
    with pytest.raises(NotAnImageSlice, match="DICOMDIR"):
        read_header("DICOMDIR", to_bytes(ds))


def test_image_without_position_is_skipped():
    ds = ct_dataset()
    del ds.ImagePositionPatient
    with pytest.raises(NotAnImageSlice, match="ImagePositionPatient"):
        read_header("sc.dcm", to_bytes(ds))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("cut", [200, 400])
def test_truncated_dicom_is_a_dicom_error_naming_the_file(cut):
    data = to_bytes(ct_dataset(rows=16, columns=16))
    with pytest.raises(DicomError, match="IM_broken"):
        read_header("IM_broken", data[:cut] if cut < len(data) - 100 else data[:-100])


def test_truncated_pixel_data_is_a_dicom_error():
    data = to_bytes(ct_dataset(rows=16, columns=16))
    with pytest.raises(DicomError, match="IM7.*truncated"):
        read_header("IM7", data[:-10])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_garbage_after_dicm_is_a_dicom_error():
    data = b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + bytes(range(256)) * 4
    with pytest.raises(DicomError, match="bad.dcm"):
        read_header("bad.dcm", data)


# ------------------------------------------------------------------------------------------------ headers
def test_fast_header_equals_pydicom_header_on_real_series(real_series):
    _name, folder, count = real_series
    seen = 0
    for name, data in folder_members(folder):
        try:
            fast = read_header(name, data)
        except NotAnImageSlice:
            continue
        assert fast == read_header(name, data, fast=False), name
        seen += 1
    assert seen == count


def test_philips_header_fields():
    data = (real_series_dir(PHILIPS) / "I10").read_bytes()
    h = read_header("I10", data)
    assert isinstance(h, SliceHeader)
    assert (h.rows, h.columns) == (512, 512)
    assert h.pixel_spacing == (0.451171875, 0.451171875)
    assert h.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert h.position == (-115.5, -1.85, 694.21)
    assert (h.rescale_slope, h.rescale_intercept) == (1.0, -1024.0)
    assert (h.bits_allocated, h.bits_stored, h.pixel_representation) == (16, 12, 0)
    assert h.hu_dtype == np.int16
    assert h.window == (40.0, 80.0)  # first of the multi-valued 40\40, 80\80
    assert h.series_description == "STD BRAIN 1MM, iDose"
    assert h.patient_name == "HEAD"
    assert h.transfer_syntax == "1.2.840.10008.1.2.1"
    assert h.is_native


def test_implicit_vr_header_and_pixels():
    ds = ct_dataset(rows=8, columns=6, implicit=True, intercept=-1024, signed=False, bits_stored=12)
    data = to_bytes(ds)
    h = read_header("implicit.dcm", data)
    assert h.transfer_syntax == "1.2.840.10008.1.2"
    assert h == read_header("implicit.dcm", data, fast=False)
    ref = pydicom.dcmread(io.BytesIO(data)).pixel_array.astype(np.float64) - 1024
    assert np.array_equal(decode_hu(data, h), ref)


@pytest.mark.parametrize(
    ("slope", "intercept", "dtype"),
    [
        (1, -1024, np.int16),
        (1, 0, np.int16),
        (2, -1024, np.int16),
        (0.5, -1024, np.float32),
        (1, -1024.5, np.float32),
    ],
)
def test_hu_dtype_choice(slope, intercept, dtype):
    assert choose_hu_dtype(slope, intercept) == np.dtype(dtype)


@pytest.mark.parametrize(
    ("slope", "intercept", "bits", "signed", "fits"),
    [
        (1, -1024, 12, False, True),
        (1, 0, 16, True, True),
        (1, -1024, 16, True, False),  # -32768 - 1024 does not fit int16
        (1, -1024, 16, False, False),  # 65535 - 1024 does not fit
        (2, -1024, 12, False, True),
    ],
)
def test_int16_always_fits(slope, intercept, bits, signed, fits):
    assert int16_fits(slope, intercept, bits, signed) is fits


# ------------------------------------------------------------------------------------------------ pixels
def test_decode_real_series_matches_pydicom(real_series):
    _name, folder, count = real_series
    members = folder_members(folder)
    ref, order = independent_hu(members)
    by_name = dict(members)
    assert len(order) == count
    for k, name in enumerate(order):
        h = read_header(name, by_name[name])
        hu = decode_hu(by_name[name], h)
        assert hu.dtype == np.int16
        assert np.array_equal(hu.astype(np.float64), ref[k]), name


def test_decode_into_out_slot_and_float_out():
    ds = ct_dataset(rows=4, columns=5, signed=False, bits_stored=12, intercept=-1024)
    data = to_bytes(ds)
    h = read_header("a", data)
    out = np.full((4, 5), 7, dtype=np.int16)
    assert decode_hu(data, h, out=out) is out
    f32 = np.empty((4, 5), dtype=np.float32)
    decode_hu(data, h, out=f32)
    assert np.array_equal(f32, out.astype(np.float32))
    with pytest.raises(ValueError):
        decode_hu(data, h, out=np.empty((5, 4), dtype=np.int16))


@pytest.mark.parametrize("signed", [False, True])
def test_unused_high_bits_follow_pydicom(signed):
    """BitsStored 12 with junk in the 4 unused high bits: masked (unsigned) / sign-extended (signed), as pydicom."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1 << 16, size=(6, 7), dtype=np.uint32).astype(np.uint16)
    pixels = raw.view(np.int16) if signed else raw
    data = to_bytes(
        ct_dataset(rows=6, columns=7, pixels=pixels, signed=signed, bits_stored=12, intercept=-1000)
    )
    h = read_header("bits.dcm", data)
    ref = pydicom.dcmread(io.BytesIO(data)).pixel_array.astype(np.float64) - 1000
    hu = decode_hu(data, h)
    assert hu.dtype == np.int16
    assert np.array_equal(hu.astype(np.float64), ref)


def test_float_rescale_gives_float32():
    data = to_bytes(
        ct_dataset(rows=5, columns=5, signed=False, bits_stored=12, slope=0.37, intercept=-1000.25)
    )
    h = read_header("f.dcm", data)
    assert h.hu_dtype == np.float32
    hu = decode_hu(data, h)
    ref = pydicom.dcmread(io.BytesIO(data)).pixel_array.astype(np.float64) * 0.37 - 1000.25
    assert hu.dtype == np.float32
    assert np.array_equal(hu, ref.astype(np.float32))
    with pytest.raises(ValueError):
        decode_hu(data, h, out=np.empty((5, 5), dtype=np.int16))


def test_signed_16_bit_with_intercept_stays_int16_when_the_values_fit():
    """GE-style: signed 16 bits stored, intercept -1024. int16 unless this slice's HU really overflow."""
    pixels = np.array([[-1000, -2000, 0, 3000]], dtype=np.int16)
    data = to_bytes(ct_dataset(rows=1, columns=4, pixels=pixels, intercept=-1024))
    h = read_header("s.dcm", data)
    assert h.hu_dtype == np.int16 and not h.int16_always_fits
    hu = decode_hu(data, h)
    assert hu.dtype == np.int16 and hu.tolist() == [[-2024, -3024, -1024, 1976]]


def test_hu_beyond_int16_give_float32_and_refuse_an_int16_out():
    pixels = np.array([[-32768, -2000, 0, 32767]], dtype=np.int16)
    data = to_bytes(ct_dataset(rows=1, columns=4, pixels=pixels, intercept=-1024))
    h = read_header("s.dcm", data)
    hu = decode_hu(data, h)
    assert hu.dtype == np.float32
    assert hu.tolist() == [[-33792.0, -3024.0, -1024.0, 31743.0]]
    out = np.full((1, 4), 5, dtype=np.int16)
    with pytest.raises(HUOverflow):
        decode_hu(data, h, out=out)
    assert out.tolist() == [[5, 5, 5, 5]]  # nothing written
    f32 = np.empty((1, 4), dtype=np.float32)
    assert decode_hu(data, h, out=f32).tolist() == hu.tolist()


def test_int16_wraparound_arithmetic_is_exact():
    """slope 2: stored 16000 * 2 wraps in int16 before the intercept brings it back in range."""
    pixels = np.array([[16000, 100]], dtype=np.int16)
    data = to_bytes(ct_dataset(rows=1, columns=2, pixels=pixels, slope=2, intercept=-20000))
    h = read_header("w.dcm", data)
    hu = decode_hu(data, h)
    assert hu.dtype == np.int16 and hu.tolist() == [[12000, -19800]]


# ------------------------------------------------------------------------------------------------ other syntaxes
def _rewrite(ds: Dataset, syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    pydicom.filewriter.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def test_big_endian_is_decoded_like_pydicom():
    ds = ct_dataset(rows=4, columns=5, intercept=-1024, signed=False, bits_stored=12)
    ds.PixelData = ds.pixel_array.astype(">u2").tobytes()
    data = _rewrite(ds, pydicom.uid.ExplicitVRBigEndian)
    h = read_header("be.dcm", data)
    assert h.transfer_syntax == pydicom.uid.ExplicitVRBigEndian and h.is_native
    ref = pydicom.dcmread(io.BytesIO(data)).pixel_array.astype(np.float64) - 1024
    assert np.array_equal(decode_hu(data, h), ref)


def test_deflated_dataset_is_decoded_like_pydicom():
    data = _rewrite(
        ct_dataset(rows=4, columns=5, intercept=-1024), pydicom.uid.DeflatedExplicitVRLittleEndian
    )
    h = read_header("deflated.dcm", data)
    assert not h.is_native
    ref = pydicom.dcmread(io.BytesIO(data)).pixel_array.astype(np.float64) - 1024
    assert np.array_equal(decode_hu(data, h), ref)


def test_other_character_sets_fall_back_to_pydicom():
    ds = ct_dataset()
    ds.SpecificCharacterSet = "ISO_IR 144"
    ds.PatientName = "Иванов^Иван"
    assert read_header("cyr.dcm", to_bytes(ds)).patient_name == "Иванов^Иван"


@pytest.mark.parametrize("implicit", [False, True])
def test_fast_scanner_skips_nested_sequences(implicit):
    ds = ct_dataset(implicit=implicit)
    inner = Dataset()
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inner.ReferencedSOPInstanceUID = generate_uid()
    item = Dataset()
    item.ReferencedImageSequence = [inner, inner]
    item.CodeValue = "X"
    ds.ReferencedImageSequence = [item]
    ds.SourceImageSequence = []
    # undefined lengths everywhere (delimiters), as many scanners write them
    for seq in (ds["ReferencedImageSequence"], item["ReferencedImageSequence"], ds["SourceImageSequence"]):
        seq.is_undefined_length = True
        for it in seq.value:
            it.is_undefined_length_sequence_item = True
    data = to_bytes(ds)
    assert b"\xfe\xff\xdd\xe0" in data and b"\xfe\xff\x0d\xe0" in data
    fields, offset = _fields_fast(data)  # must not need the pydicom fallback
    assert offset > 0 and fields["Rows"] == 8
    assert read_header("seq.dcm", data) == read_header("seq.dcm", data, fast=False)


def test_fast_scanner_reads_real_series_without_fallback(real_series):
    _name, folder, _count = real_series
    for name, data in folder_members(folder):
        if name != "DIRFILE":
            _fields_fast(data)


PYDICOM_FILES = sorted((Path(pydicom.__file__).parent / "data/test_files").glob("*.dcm"))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda p: p.name)
def test_pydicom_test_files_agree_with_pydicom(path):
    """pydicom's own odd files: the fast scanner and pydicom agree (header or outcome), pixels match."""
    data = path.read_bytes()

    def outcome(fast: bool):
        try:
            return read_header(path.name, data, fast=fast)
        except (NotAnImageSlice, DicomError) as exc:
            return type(exc)

    fast, slow = outcome(True), outcome(False)
    if path.name == "rtplan_truncated.dcm":  # pydicom reads a truncated file quietly; we call it broken
        assert fast is DicomError
        return
    assert fast == slow
    if isinstance(fast, SliceHeader):
        ds = pydicom.dcmread(io.BytesIO(data))
        ref = ds.pixel_array.astype(np.float64) * fast.rescale_slope + fast.rescale_intercept
        assert np.array_equal(decode_hu(data, fast).astype(np.float64), ref)


def test_decode_into_slot_makes_no_slice_sized_temporary():
    import tracemalloc

    data = (real_series_dir(PHILIPS) / "I10").read_bytes()  # BitsStored 12, unsigned, intercept -1024
    h = read_header("I10", data)
    out = np.empty((512, 512), dtype=np.int16)
    decode_hu(data, h, out=out)  # warm up
    tracemalloc.start()
    try:
        decode_hu(data, h, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak  # a 512x512 int16 slice is 512 KiB
