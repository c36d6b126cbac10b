"""Frames out of one multi-frame file, fed in order as its bytes arrive (PoC2) or all at once (batch, PoC1).

:class:`FrameStream` keeps the header bytes until the PixelData element is found, reads the frames' geometry
(:func:`~webviewer.loading.dicom.multiframe.read_frame_set`), then hands each frame to ``on_frame(header, buffer)``
the moment its bytes are complete, ready for ``decode_hu``: native frames are memoryviews of the fed chunk when a
frame lies inside one chunk (no copy), else assembled in one frame-sized buffer; encapsulated frames (RLE, JPEG
Lossless, JPEG-LS, JPEG 2000) are split by the Extended or Basic Offset Table, else one fragment per frame (RLE)
or at the JPEG end-of-image marker, and decoded one by one with pydicom's pixel plugins. Only the current frame
is held, never the whole file.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections.abc import Callable

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder

from webviewer.errors import DicomError
from webviewer.loading.dicom.header import SliceHeader
from webviewer.loading.dicom.hu import decode_with_plugins
from webviewer.loading.dicom.multiframe import FrameSet, read_frame_set
from webviewer.loading.dicom.scan import EXPLICIT_VR_LE, _scan, _Truncated, _Unsupported
from webviewer.loading.limits import check_pixels

log = logging.getLogger(__name__)

FrameSink = Callable[[SliceHeader, "bytes | memoryview"], None]
#: a header longer than this is refused (a functional group per frame is ~0.5 KB: 100k frames fit)
MAX_HEADER_BYTES = 64 << 20
_RLE = "1.2.840.10008.1.2.5"
_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD


def _pixel_tag_offset(head: bytes) -> int | None:
    """Offset of the (7FE0,0010) tag once ``head`` reaches it; None while more bytes are needed."""
    try:
        _raw, _ts, pos = _scan(head)
    except (_Truncated, struct.error, IndexError):
        return None
    except _Unsupported as exc:
        raise DicomError(
            f"multi-frame file in an unsupported encoding for frame streaming ({exc}); export it as explicit VR "
            "little endian or a compressed syntax."
        ) from exc
    return pos if pos >= 0 and len(head) >= pos + 12 else None


class FrameStream:
    """Feed a multi-frame file's bytes in order; ``on_header`` sees the frames before any pixel, ``on_frame``
    gets each frame's header (``pixel_offset`` 0) and buffer."""

    def __init__(
        self,
        name: str,
        on_header: Callable[[FrameSet], None],
        on_frame: FrameSink,
        max_volume_bytes: int | None = None,
    ) -> None:
        self.name = name
        self.max_volume_bytes = max_volume_bytes
        self.on_header, self.on_frame = on_header, on_frame
        self.frames: FrameSet | None = None
        self.emitted = 0
        self._head: list[bytes] = []
        self._head_bytes = 0
        self._next_try = 0
        self._pending = bytearray()  # native: the current frame's bytes; encapsulated: unparsed item bytes
        self._skip = 0  # bytes between the PixelData value start and the current position still to drop
        self._frame_parts: list[bytes] = []  # encapsulated: fragments of the current frame
        self._offsets: list[int] | None = None
        self._relative = 0  # encapsulated: bytes since the first fragment item
        self._item_left = -1  # bytes of the current item's value still to read (-1: between items)
        self._item = bytearray()
        self._bot_seen = False
        self._ended = False
        self._float_checked = False

    # -- input -----------------------------------------------------------------------------------------------
    def feed(self, chunk: bytes | memoryview) -> None:
        """The next bytes of the file."""
        if not chunk:
            return
        if self.frames is None:
            self._head.append(bytes(chunk))
            self._head_bytes += len(chunk)
            if self._head_bytes < self._next_try:
                return
            self._try_header()
            return
        self._feed_pixels(memoryview(chunk))

    def close(self) -> FrameSet:
        """The file ended: every frame must have been delivered."""
        if self.frames is None:
            self._next_try = 0
            self._try_header(final=True)
        fs = self.frames
        assert fs is not None
        if fs.encapsulated and not self._ended and self._frame_parts:
            self._complete_frame()
        if self.emitted != fs.count:
            raise DicomError(
                f"{self.name}: NumberOfFrames is {fs.count} but the pixel data holds {self.emitted} frames. The file "
                "is damaged or truncated; export it again."
            )
        return fs

    def _try_header(self, final: bool = False) -> None:
        head = b"".join(self._head)
        self._head = [head]
        pos = _pixel_tag_offset(head)
        if pos is None:
            if final:
                raise DicomError(f"{self.name}: the multi-frame file ends before its pixel data. Export it again.")
            if self._head_bytes > MAX_HEADER_BYTES:
                raise DicomError(f"{self.name}: the multi-frame header is over {MAX_HEADER_BYTES >> 20} MB; refused.")
            self._next_try = max(self._head_bytes * 2, 1 << 16)
            return
        fs = read_frame_set(self.name, head, pos, self.max_volume_bytes)
        self.on_header(fs)
        self.frames = fs
        self._head = []
        self._offsets = list(fs.extended_offsets) if fs.extended_offsets else None
        self._feed_pixels(memoryview(head)[fs.pixel_start :])

    # -- pixels ----------------------------------------------------------------------------------------------
    def _feed_pixels(self, chunk: memoryview) -> None:
        assert self.frames is not None
        if self.frames.encapsulated:
            self._feed_items(chunk)
        else:
            self._feed_native(chunk, self.frames.frame_bytes)

    def _feed_native(self, chunk: memoryview, size: int) -> None:
        count = self.frames.count  # type: ignore[union-attr]
        while chunk.nbytes and self.emitted < count:
            if self._pending:
                take = min(size - len(self._pending), chunk.nbytes)
                self._pending += chunk[:take]
                chunk = chunk[take:]
                if len(self._pending) == size:
                    frame, self._pending = self._pending, bytearray()
                    self._emit(frame)
            elif chunk.nbytes >= size:
                self._emit(chunk[:size])
                chunk = chunk[size:]
            else:
                self._pending = bytearray(chunk)
                break

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        fs = self.frames
        assert fs is not None
        if self.emitted >= fs.count:
            raise DicomError(
                f"{self.name}: the pixel data holds more frames than NumberOfFrames ({fs.count}). The file is damaged; "
                "export it again."
            )
        header = fs.header(self.emitted)
        if header.hu_dtype.itemsize == 4 and not self._float_checked:  # a float rescale: the volume is float32
            self._float_checked = True
            if self.max_volume_bytes is not None:
                check_pixels(self.name, header.rows, header.columns, frames=fs.count, bytes_per_sample=4,
                             limit=self.max_volume_bytes)
        if fs.encapsulated:
            header, data = decode_frame(header, bytes(data))
        else:
            header = dataclasses.replace(header, pixel_offset=0)
        self.emitted += 1
        self.on_frame(header, data)

    # -- encapsulated: items after the PixelData element ---------------------------------------------------
    def _feed_items(self, chunk: memoryview) -> None:
        while chunk.nbytes and not self._ended:
            if self._item_left < 0:  # an item header: 8 bytes
                take = min(8 - len(self._pending), chunk.nbytes)
                self._pending += chunk[:take]
                chunk = chunk[take:]
                if len(self._pending) == 8:
                    self._start_item(bytes(self._pending))
                    self._pending = bytearray()
                continue
            take = min(self._item_left, chunk.nbytes)
            self._item += chunk[:take]
            chunk = chunk[take:]
            self._item_left -= take
            if self._item_left == 0:
                self._end_item()

    def _start_item(self, raw: bytes) -> None:
        group, elem, length = struct.unpack("<HHI", raw)
        tag = (group << 16) | elem
        if tag == _SEQ_END:
            self._ended = True
            if self._frame_parts:
                self._complete_frame()
            return
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise DicomError(f"{self.name}: encapsulated pixel data holds tag {tag:08X} where an item belongs; "
                             "the file is damaged. Export it again.")
        if self._bot_seen and self._offsets is not None and self._relative in self._offsets[1:]:
            self._complete_frame()  # this fragment starts the next frame
        self._item_left = length
        self._item = bytearray()
        if length == 0:
            self._end_item()

    def _end_item(self) -> None:
        self._item_left = -1
        item, self._item = bytes(self._item), bytearray()
        if not self._bot_seen:  # the Basic Offset Table
            self._bot_seen = True
            if self._offsets is None and item:
                self._offsets = [v for (v,) in struct.iter_unpack("<I", item)]
            return
        self._relative += 8 + len(item)
        self._frame_parts.append(item)
        fs = self.frames
        assert fs is not None
        if self._offsets is None and fs.count > 1 and self._fragment_ends_frame(item):
            self._complete_frame()

    def _fragment_ends_frame(self, item: bytes) -> bool:
        """Without offsets: RLE has one fragment per frame; JPEG-family frames end with the EOI marker."""
        if self.frames.first.transfer_syntax == _RLE:  # type: ignore[union-attr]
            return True
        return item.rstrip(b"\x00").endswith(b"\xff\xd9")

    def _complete_frame(self) -> None:
        parts, self._frame_parts = self._frame_parts, []
        self._emit(parts[0] if len(parts) == 1 else b"".join(parts))


def decode_frame(header: SliceHeader, compressed: bytes) -> tuple[SliceHeader, np.ndarray]:
    """One compressed frame decoded into its stored values, with a header that reads them as native pixels.

    ``bits_stored`` becomes ``bits_allocated``: the decoder already corrected the unused high bits, as it does
    for a single-frame slice, so ``decode_hu`` does not touch them again.
    """
    ts = header.transfer_syntax
    signed = header.pixel_representation == 1
    want = np.dtype(f"<{'i' if signed else 'u'}{header.bits_allocated // 8}")
    opts = {
        "rows": header.rows, "columns": header.columns, "samples_per_pixel": 1, "number_of_frames": 1,
        "bits_allocated": header.bits_allocated, "bits_stored": header.bits_stored,
        "pixel_representation": header.pixel_representation, "photometric_interpretation": "MONOCHROME2",
        "planar_configuration": 0,
    }
    src = encapsulate([compressed])
    arr = decode_with_plugins(
        header, lambda plugin: get_decoder(ts).as_array(src, decoding_plugin=plugin, **opts)[0], "frame"
    )
    if arr.shape != (header.rows, header.columns):
        raise DicomError(f"{header.name}: decoded {arr.shape}, expected ({header.rows}, {header.columns}).")
    arr = np.ascontiguousarray(arr, dtype=want)
    native = dataclasses.replace(
        header, transfer_syntax=EXPLICIT_VR_LE, pixel_offset=0, bits_stored=header.bits_allocated
    )
    return native, arr


def read_frames(
    name: str,
    data: bytes,
    on_header: Callable[[FrameSet], None],
    on_frame: FrameSink,
    max_volume_bytes: int | None = None,
) -> FrameSet:
    """Every frame of a multi-frame file held whole (batch, PoC1, a folder): native frames are views of ``data``."""
    stream = FrameStream(name, on_header, on_frame, max_volume_bytes)
    stream.feed(data)
    return stream.close()
