"""Pixels of one slice into HU: native pixels viewed in place, compressed ones decoded by pydicom's plugins.

Uncompressed pixels are viewed with ``np.frombuffer`` at the PixelData offset and rescaled straight into the
caller's slot; compressed syntaxes (RLE, JPEG Lossless, JPEG-LS, JPEG 2000) are decoded by pydicom's pixel plugins
(pylibjpeg, pyjpegls).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from pydicom.uid import UID

from webviewer.errors import ControlSignal, DicomError
from webviewer.loading.dicom.header import _FLOAT32, _INT16, SliceHeader
from webviewer.loading.dicom.scan import EXPLICIT_VR_BE, _full
from webviewer.loading.limits import Limits, check_pixels

log = logging.getLogger(__name__)

#: faster lossless decoders where several are installed (measured on 512x512: CharLS ~3x libjpeg for JPEG-LS,
#: pylibjpeg-rle ~3x pydicom's numpy RLE); the others are tried if the preferred one fails
_PREFERRED_PLUGINS = {
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
    "1.2.840.10008.1.2.5": "pylibjpeg",
}


#: what a decoder failure is not: everything else it raises (pyo3's PanicException included) is a DicomError
_NOT_DECODER_ERRORS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def decode_with_plugins(header: SliceHeader, decode: Callable[[str], np.ndarray], what: str) -> np.ndarray:
    """``decode(plugin)`` with the preferred plugin for the syntax, then with any; a failure is a DicomError.

    Everything a decoder raises is its failure, a Rust decoder's panic (pyo3's PanicException, a BaseException)
    included, except the interpreter's own KeyboardInterrupt, SystemExit and GeneratorExit.
    """
    plugin = _PREFERRED_PLUGINS.get(header.transfer_syntax, "")
    try:
        try:
            return decode(plugin)
        except BaseException as exc:
            if not plugin or isinstance(exc, _NOT_DECODER_ERRORS):
                raise
            log.debug("%s: plugin %s failed, trying the others", header.name, plugin)
            return decode("")
    except BaseException as exc:
        if isinstance(exc, _NOT_DECODER_ERRORS):
            raise
        raise DicomError(
            f"{header.name}: cannot decode {UID(header.transfer_syntax).name} {what} ({exc}). "
            "Install the pylibjpeg/pyjpegls plugins or export the study uncompressed."
        ) from exc


class HUOverflow(ControlSignal, ValueError):  # noqa: N818
    """This slice's HU do not fit the int16 ``out``: promote the volume to float32 and decode again."""


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

    def decode(plugin: str) -> np.ndarray:
        ds.pixel_array_options(decoding_plugin=plugin)
        return ds.pixel_array

    arr = decode_with_plugins(header, decode, "pixel data")
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


def check_slice(data: bytes, header: SliceHeader, max_bytes: int | None = None,
                series_shape: tuple[int, int] | None = None) -> int:
    """Pixel bytes this slice decodes to, checked (limits.check_pixels) before any decoder runs."""
    return check_pixels(
        header.name, header.rows, header.columns, frames=getattr(header, "frames", 1) or 1,
        bytes_per_sample=max(header.bits_allocated // 8, 1), samples=1,
        limit=Limits.max_volume_bytes if max_bytes is None else max_bytes,
        encoded_bytes=None if header.is_native else len(data), transfer_syntax=header.transfer_syntax,
        series_shape=series_shape,
    )


def decode_hu(data: bytes, header: SliceHeader, out: np.ndarray | None = None, *,
              max_bytes: int | None = None) -> np.ndarray:
    """HU of one slice (rows, columns) = stored * RescaleSlope + RescaleIntercept, written into ``out``.

    ``out`` (if given) must have the slice shape and dtype int16 or float32. Without ``out`` the result is
    int16 when slope/intercept are integers and this slice's HU fit int16, else float32. An int16 ``out`` for a
    slice that needs float32 raises HUOverflow (subclass of ValueError) before anything is written: the caller
    promotes its volume to float32 and decodes again. Unused high bits (BitsStored < BitsAllocated) follow
    pydicom (masked when unsigned, sign-extended when signed). No full-size temporaries on the int16 path.
    ``max_bytes`` (default: the default max_volume_bytes) bounds the decoded slice, checked before decoding.
    """
    shape = (header.rows, header.columns)
    if out is not None and out.shape != shape:
        raise ValueError(f"{header.name}: out has shape {out.shape}, slice is {shape}")
    check_slice(data, header, max_bytes)  # before the decoder allocates
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
