"""Multi-frame members in the pipelines: decoded frames for batch/PoC1, frames placed as they stream for PoC2.

A multi-frame file (Enhanced CT) becomes one slice per frame; from there on it goes the way of classic slices
(the same plan, sort, warnings and HU decode). In PoC2 the unzip layer offers every member to :func:`divert_for`
once its first 64 KiB are out; a multi-frame file gets a :class:`FramePlacer` that places each frame into the
SliceBuffer the moment its bytes are inflated, so the file is never held whole.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from webviewer.loading import dicom
from webviewer.loading.members import Member, MemberSink, ThreadedSink

if TYPE_CHECKING:
    from webviewer.loading.run import LoadRun
    from webviewer.loading.volume import SliceBuffer

log = logging.getLogger(__name__)
_FRAMES_TAG = b"\x28\x00\x08\x00"
#: inflated bytes that may wait for the placing thread: enough for the inflater to keep going while the header
#: is parsed and the volume allocated (the queue drains long before the volume is full, so it adds little to the peak)
SINK_QUEUE_BYTES = 32 << 20


def number_of_frames(head: bytes) -> int:
    """NumberOfFrames from the first bytes of a little-endian DICOM file (0 when absent or unreadable)."""
    if head[128:132] != b"DICM":
        return 0
    at = head.find(_FRAMES_TAG, 132)
    if at < 0:
        return 0
    try:
        if head[at + 4 : at + 6] == b"IS":
            (length,) = struct.unpack_from("<H", head, at + 6)
            value = head[at + 8 : at + 8 + length]
        else:
            (length,) = struct.unpack_from("<I", head, at + 4)
            value = head[at + 8 : at + 8 + min(length, 12)]
        return int(value.decode("ascii").strip(" \x00").split("\\")[0])
    except (struct.error, ValueError, UnicodeDecodeError):
        return 0


def frame_slices(run: LoadRun, m: Member) -> list[tuple[Any, np.ndarray]]:
    """Batch, PoC1: every frame of a multi-frame member decoded into HU (the "datasets" component)."""
    assert m.data is not None
    out: list[tuple[Any, np.ndarray]] = []

    def on_header(frames: dicom.FrameSet) -> None:
        log.info("%s: %d frames of %s", m.name, frames.count, dicom.sop_class_name(frames.first.sop_class))

    def on_frame(header: dicom.SliceHeader, data) -> None:
        run.check_stop()
        arr = dicom.decode_hu(data, header)
        out.append((header, arr))
        run.metrics.components.add("datasets", arr.nbytes)
        run.reporter.tick()

    if not _read_or_skip(run, m, on_header, on_frame):
        return []
    run.metrics.bytes_dicom += len(m.data)
    run.reporter.files_parsed += 1
    return out


def place_frames(run: LoadRun, buffer: SliceBuffer, m: Member) -> bool:
    """PoC2, a multi-frame member held whole (a folder, or too small to divert): place its frames."""
    assert m.data is not None
    placer = FramePlacer(run, buffer, m.name)
    if not _read_or_skip(run, m, placer.on_header, placer.on_frame):
        return False
    run.metrics.bytes_dicom += len(m.data)
    run.reporter.files_parsed += 1
    return True


def _read_or_skip(run: LoadRun, m: Member, on_header, on_frame) -> bool:
    try:
        dicom.read_frames(m.name, m.data, on_header, on_frame, run.limits.max_volume_bytes)  # type: ignore[arg-type]
    except dicom.NotAnImageSlice as exc:
        run.skip(m.name, exc.reason)
        return False
    return True


class FramePlacer:
    """Places the frames of one multi-frame file into the PoC2 SliceBuffer as they come (thread: the unzip one)."""

    def __init__(self, run: LoadRun, buffer: SliceBuffer, name: str) -> None:
        self.run, self.buffer, self.name = run, buffer, name

    def on_header(self, frames: dicom.FrameSet) -> None:
        """Reserve the slots before any frame is decoded (the volume limit was checked on the header)."""
        self.buffer.expect(frames.count, self.name)
        reporter = self.run.reporter
        others = max((reporter.slices_total or 1) - 1, self.buffer.placed)
        reporter.slices_total = others + frames.count
        reporter.emit(force=True)
        log.info("%s: %d frames of %dx%d, placed as they stream", self.name, frames.count,
                 frames.first.columns, frames.first.rows)

    def on_frame(self, header: dicom.SliceHeader, data) -> None:
        run = self.run
        run.check_stop()
        self.buffer.place(header.name, header, data)
        run.metrics.first_slice()
        run.metrics.components.set("volume", self.buffer.nbytes)
        run.reporter.slices_placed_changed(self.buffer, self.buffer.placed)


class FrameSink:
    """A MemberSink: the streamed bytes of one multi-frame member, through a FrameStream into a FramePlacer."""

    def __init__(self, run: LoadRun, buffer: SliceBuffer, name: str) -> None:
        self.run, self.name, self.nbytes = run, name, 0
        self.skip_reason: str | None = None
        placer = FramePlacer(run, buffer, name)
        self.stream = dicom.FrameStream(name, placer.on_header, placer.on_frame, run.limits.max_volume_bytes)

    def feed(self, part: bytes) -> None:
        self.run.check_stop()
        self.nbytes += len(part)
        if self.skip_reason is not None:
            return
        try:
            self.stream.feed(part)
        except dicom.NotAnImageSlice as exc:  # not a volume after all (no positions): drain it, list it
            self.skip_reason = exc.reason

    def abort(self) -> None:
        """Nothing to stop: the frames placed so far go with the buffer."""

    def close(self) -> None:
        run = self.run
        if self.skip_reason is not None:
            run.skip(self.name, self.skip_reason)
            return
        self.stream.close()
        run.metrics.bytes_dicom += self.nbytes
        run.reporter.files_extracted += 1
        run.reporter.files_parsed += 1
        run.reporter.tick()


def divert_for(run: LoadRun, buffer: SliceBuffer, submit: Callable[..., Any]):
    """The unzip ``divert`` hook of a PoC2 load: multi-frame members stream into ``buffer`` frame by frame."""

    def divert(name: str, head: bytes) -> MemberSink | None:
        if number_of_frames(head) < 2:
            return None
        return ThreadedSink(FrameSink(run, buffer, name), submit, SINK_QUEUE_BYTES, crc=True)  # CRC, place there

    return divert
