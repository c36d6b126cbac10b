"""The CT volume, the PoC2 preallocated slice buffer, and the batch assembler.

Both ways to a volume share :func:`webviewer.loading.geometry.plan_volume` (series choice, order, spacing,
warnings) and :func:`webviewer.loading.dicom.decode_hu`, so they give the same volume bit for bit.

``skipped_files`` warning: the PIPELINE collects the names of skipped members (``NotAnImageSlice`` and
``skip_reason_for_name``) and passes them as ``skipped=`` to :meth:`SliceBuffer.finish` or
:func:`assemble_volume`; the warning is built here (geometry.plan_volume), never by the pipeline.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from webviewer.errors import DicomError, LimitExceededError
from webviewer.loading.allocator import allocate_volume
from webviewer.loading.dicom import HUOverflow, SliceHeader, decode_hu
from webviewer.loading.geometry import LoadWarning, VolumePlan, plan_volume

__all__ = ["CTVolume", "LoadWarning", "SliceBuffer", "assemble_volume", "permute_slices_in_place"]

log = logging.getLogger(__name__)
_INT16 = np.dtype(np.int16)
_FLOAT32 = np.dtype(np.float32)


@dataclass(eq=False)
class CTVolume:
    """HU voxels (z, y, x) with their place in patient (LPS) space."""

    hu: np.ndarray
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float]
    direction: np.ndarray  # (3, 3), columns = i, j, k axes
    window: tuple[float, float] | None = None

    @property
    def nbytes(self) -> int:
        return int(self.hu.nbytes)

    @property
    def dimensions(self) -> tuple[int, int, int]:
        nz, ny, nx = self.hu.shape
        return (nx, ny, nz)


def volume_metadata(header: SliceHeader, volume: CTVolume) -> dict[str, Any]:
    """The metadata dict of LoadResult/Content."""
    return {
        "patient_name": header.patient_name,
        "study_description": header.study_description,
        "series_description": header.series_description,
        "series_uid": header.series_uid,
        "study_uid": header.study_uid,
        "modality": header.modality,
        "dimensions": list(volume.dimensions),
        "spacing": list(volume.spacing),
        "origin": list(volume.origin),
        "dtype": str(volume.hu.dtype),
        "slices": int(volume.hu.shape[0]),
        "sop_class": header.sop_class,  # multi-frame: the frames' file, else the slices' class
        "frames": header.frame_count if header.frame_count > 1 else 0,  # frames of the multi-frame file, 0: classic
    }


def _result_dtype(needs_float: Sequence[bool], order: Sequence[int]) -> np.dtype:
    """float32 if any slice of the volume needs it (non-integer rescale, or HU beyond int16), else int16."""
    return _FLOAT32 if any(needs_float[i] for i in order) else _INT16


def _slice_needs_float(header: SliceHeader, hu: np.ndarray) -> bool:
    """Whether this decoded slice needs float32 (as decode_hu without ``out`` would decide)."""
    if header.hu_dtype == _FLOAT32:
        return True
    if hu.dtype == _INT16 or header.int16_always_fits:
        return False
    return bool(hu.min() < -32768 or hu.max() > 32767)


def _limit_error(what: str, nbytes: int, limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"The CT volume {what} needs {nbytes / 1e6:.0f} MB, above the limit max_volume_bytes = "
        f"{limit / 1e6:.0f} MB. Raise the limit if you trust the source and have the memory."
    )


def _volume_from_plan(hu: np.ndarray, headers: Sequence[SliceHeader], plan: VolumePlan) -> CTVolume:
    return CTVolume(hu, plan.spacing, plan.origin, plan.direction, headers[plan.order[0]].window)


def permute_slices_in_place(buf: np.ndarray, perm: Sequence[int]) -> None:
    """``buf[:n] = buf[perm]`` (n = len(perm)) by following cycles, with one slice as the only temporary."""
    n = len(perm)
    seen = bytearray(n)
    tmp: np.ndarray | None = None
    for start in range(n):
        if seen[start]:
            continue
        if perm[start] == start:
            seen[start] = 1
            continue
        if tmp is None:
            tmp = np.empty_like(buf[0])
        tmp[...] = buf[start]
        t = start
        while True:
            seen[t] = 1
            src = perm[t]
            if src == start:
                buf[t] = tmp
                break
            buf[t] = buf[src]
            t = src


def assemble_volume(
    slices: list[tuple[SliceHeader, np.ndarray]],
    *,
    max_volume_bytes: int | None,
    skipped: Sequence[str] = (),
) -> tuple[CTVolume, list[LoadWarning], dict]:
    """Batch / stream-files path: copy decoded HU slices (from ``decode_hu``) into a new volume, sorted.

    ``skipped``: names of skipped members; they become the ``skipped_files`` warning.
    """
    if not slices:
        raise DicomError()
    headers = [h for h, _ in slices]
    plan = plan_volume(headers, skipped=skipped)
    h0 = headers[plan.order[0]]
    dtype = _result_dtype([a.dtype == _FLOAT32 for _, a in slices], plan.order)
    need = plan.slices * h0.rows * h0.columns * dtype.itemsize
    if max_volume_bytes is not None and need > max_volume_bytes:
        raise _limit_error(f"({h0.columns}x{h0.rows}x{plan.slices}, {dtype})", need, max_volume_bytes)
    hu = allocate_volume((plan.slices, h0.rows, h0.columns), dtype)
    for k, i in enumerate(plan.order):
        np.copyto(hu[k], slices[i][1], casting="same_kind")
    volume = _volume_from_plan(hu, headers, plan)
    return volume, plan.warnings, volume_metadata(h0, volume)


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


class SliceBuffer:
    """PoC2: one preallocated (capacity, rows, columns) stack; slices land in arrival order, sorted at the end.

    - Allocated once, when the first slice's shape is known. Capacity = ``capacity_hint`` (+ a little slack), or
      without a hint as many slices as ``max_volume_bytes`` (and RAM) allow: ``np.empty`` is lazy on Linux, so
      untouched slots cost no RSS. Running out of slots grows the stack (one copy), up to the limit.
    - ``place`` decodes straight into the next slot under ``lock`` (thread-safe; the pipeline's worker calls it).
    - ``finish`` chooses the series and permutes the slots in place by cycles (peak = volume + 1 slice) and
      returns a C-contiguous view ``buf[:n]``.
    - Slices of another size (another series) are kept aside, decoded; if their series is larger, it wins.
    - A float32 slice (non-integer rescale) promotes the stack from int16 to float32 (one copy).
    """

    def __init__(self, capacity_hint: int | None, max_volume_bytes: int) -> None:
        self.lock = threading.Lock()
        self.placed = 0
        self.capacity_hint = capacity_hint if capacity_hint and capacity_hint > 0 else None
        self.max_volume_bytes = int(max_volume_bytes)
        self.capacity = 0
        self.last_placed_slot: int | None = None
        self.shape: tuple[int, int] | None = None
        self._buf: np.ndarray | None = None
        self._headers: list[SliceHeader] = []  # slot -> header
        self._needs_float: list[bool] = []  # slot -> the slice needs float32
        self._aside: list[tuple[SliceHeader, np.ndarray]] = []
        self._aside_bytes = 0
        self._closed = False
        #: called by :meth:`finish` before its final sort (the load worker waits there while the app renders a
        #: preview of these slots)
        self.final_sort_gate: Callable[[], None] | None = None

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype | None:
        return None if self._buf is None else self._buf.dtype

    @property
    def nbytes(self) -> int:
        """Bytes of placed slices (the "volume" memory component), including slices kept aside."""
        if self._buf is None:
            return self._aside_bytes
        return self.placed * self._buf[0].nbytes + self._aside_bytes

    @property
    def headers(self) -> list[SliceHeader]:
        """Headers of the placed slots, slot order (a copy)."""
        with self.lock:
            return list(self._headers)

    # -- placement -----------------------------------------------------------------------------------------
    def expect(self, count: int, name: str = "") -> None:
        """A member holds ``count`` frames (multi-frame CT): before allocation the hint counts them, after it the
        stack grows once to fit them (instead of by half again and again)."""
        with self.lock:
            if self._buf is None:
                self.capacity_hint = max((self.capacity_hint or 1) - 1, 0) + count
            elif self.placed + count > self.capacity:
                log.info("slice buffer: %s holds %d frames", name, count)
                self._grow(self.placed + count)

    def _slice_limit(self, rows: int, columns: int, dtype: np.dtype) -> int:
        return self.max_volume_bytes // (rows * columns * dtype.itemsize)

    def _allocate(self, header: SliceHeader) -> None:
        rows, columns, dtype = header.rows, header.columns, header.hu_dtype
        limit = self._slice_limit(rows, columns, dtype)
        slice_bytes = rows * columns * dtype.itemsize
        if limit < 1:
            raise _limit_error(f"slice ({columns}x{rows}, {dtype})", slice_bytes, self.max_volume_bytes)
        if self.capacity_hint is not None:
            # the hint may count non-image members (central directory): never allocate above the limit, and
            # fail only when the slices really exceed it (in _grow)
            capacity = min(limit, self.capacity_hint + max(4, self.capacity_hint // 50))
            if self.capacity_hint > limit:
                log.warning("expected %d slices of %dx%d exceed max_volume_bytes; loading until the limit",
                            self.capacity_hint, columns, rows)
        else:
            capacity = max(1, min(limit, (_ram_bytes() // 2) // slice_bytes))
        self._buf = allocate_volume((capacity, rows, columns), dtype)
        self.capacity = capacity
        self.shape = (rows, columns)
        log.debug("slice buffer: %d x %dx%d %s (%.0f MB virtual)", capacity, rows, columns, dtype,
                  self._buf.nbytes / 1e6)

    def _grow(self, target: int = 0) -> None:
        assert self._buf is not None and self.shape is not None
        limit = self._slice_limit(*self.shape, self._buf.dtype)
        new_cap = min(limit, max(target, self.capacity + 16, self.capacity * 3 // 2))
        if new_cap <= self.capacity:
            raise _limit_error(
                f"(more than {self.capacity} slices of {self.shape[1]}x{self.shape[0]})",
                (self.capacity + 1) * self._buf[0].nbytes,
                self.max_volume_bytes,
            )
        log.info(
            "slice buffer: growing from %d to %d slices (more slices than expected)", self.capacity, new_cap
        )
        new = allocate_volume((new_cap, *self.shape), self._buf.dtype)
        new[: self.placed] = self._buf[: self.placed]
        self._buf, self.capacity = new, new_cap

    def _promote(self) -> None:
        assert self._buf is not None and self.shape is not None
        limit = self._slice_limit(*self.shape, _FLOAT32)
        capacity = min(self.capacity, limit)
        if capacity < self.placed + 1:
            raise _limit_error(
                "as float32", (self.placed + 1) * self._buf[0].nbytes * 2, self.max_volume_bytes
            )
        log.info("slice buffer: non-integer rescale, promoting int16 -> float32")
        new = allocate_volume((capacity, *self.shape), _FLOAT32)
        np.copyto(new[: self.placed], self._buf[: self.placed])
        self._buf, self.capacity = new, capacity

    def place(self, name: str, header: SliceHeader, data: bytes) -> None:
        """Decode one slice (from ``read_header``) straight into the next free slot. Thread-safe."""
        with self.lock:
            if self._closed:
                raise RuntimeError("SliceBuffer is finished or closed")
            if self._buf is None:
                self._allocate(header)
            assert self._buf is not None
            if (header.rows, header.columns) != self.shape:
                # int16, or float32 if this slice needs it; checked against what is left before decoding
                arr = decode_hu(data, header, max_bytes=self.max_volume_bytes - self._aside_bytes)
                if self._aside_bytes + arr.nbytes > self.max_volume_bytes:
                    raise _limit_error(
                        "(slices of other series)", self._aside_bytes + arr.nbytes, self.max_volume_bytes
                    )
                self._aside.append((header, arr))
                self._aside_bytes += arr.nbytes
                return
            if header.hu_dtype == _FLOAT32 and self._buf.dtype == _INT16:
                self._promote()
            if self.placed >= self.capacity:
                self._grow()
            slot = self.placed
            try:
                decode_hu(data, header, out=self._buf[slot], max_bytes=self.max_volume_bytes)
            except HUOverflow:  # integral HU beyond int16 in this slice: promote, decode again
                self._promote()
                decode_hu(data, header, out=self._buf[slot])
            self._needs_float.append(_slice_needs_float(header, self._buf[slot]))
            self._headers.append(header)
            self.placed = slot + 1
            self.last_placed_slot = slot

    # -- ordering ------------------------------------------------------------------------------------------
    def _sort_slots(self, plan: VolumePlan) -> None:
        """Permute slots so that plan.order comes first (volume order), the rest after; headers follow."""
        assert self._buf is not None
        chosen = set(plan.order)
        perm = list(plan.order) + [i for i in range(self.placed) if i not in chosen]
        permute_slices_in_place(self._buf, perm)
        self._headers = [self._headers[i] for i in perm]
        self._needs_float = [self._needs_float[i] for i in perm]

    def preview_volume(self) -> CTVolume | None:
        """LOOP THREAD: sort the placed slices in place and view the current best series (None if empty).

        The returned volume views the buffer: later placements do not change it, later previews re-sort it.
        """
        with self.lock:
            if self._buf is None or self.placed == 0 or self._closed:
                return None
            plan = plan_volume(self._headers)
            self._sort_slots(plan)
            n = plan.slices
            plan.order = list(range(n))
            return _volume_from_plan(self._buf[:n], self._headers, plan)

    def finish(self, *, skipped: Sequence[str] = ()) -> tuple[CTVolume, list[LoadWarning], dict]:
        """Sort in place and return (volume, warnings, metadata); the buffer gives up its references.

        ``skipped``: names of skipped members (pipeline); they become the ``skipped_files`` warning.
        """
        if self.final_sort_gate is not None:
            self.final_sort_gate()
        with self.lock:
            self._closed = True
            aside = self._aside
            headers = self._headers + [h for h, _ in aside]
            if not headers:
                self._release()
                raise DicomError()
            plan = plan_volume(headers, skipped=skipped)
            needs_float = self._needs_float + [a.dtype == _FLOAT32 for _, a in aside]
            dtype = _result_dtype(needs_float, plan.order)
            if plan.order[0] >= self.placed:  # the winning series was kept aside (another slice size)
                h0 = headers[plan.order[0]]
                need = plan.slices * h0.rows * h0.columns * dtype.itemsize
                self._buf = None  # free the stack before allocating the winner
                if need > self.max_volume_bytes:
                    self._release()
                    raise _limit_error(
                        f"({h0.columns}x{h0.rows}x{plan.slices}, {dtype})", need, self.max_volume_bytes
                    )
                hu = allocate_volume((plan.slices, h0.rows, h0.columns), dtype)
                for k, i in enumerate(plan.order):
                    np.copyto(hu[k], aside[i - self.placed][1], casting="same_kind")
                self._release()
                volume = _volume_from_plan(hu, headers, plan)
                return volume, plan.warnings, volume_metadata(h0, volume)
            assert self._buf is not None
            self._sort_slots(plan)
            n = plan.slices
            hu = self._buf[:n]
            if hu.dtype != dtype:  # promoted by another series' slice: back to int16 (a copy)
                narrowed = allocate_volume(hu.shape, dtype)
                np.copyto(narrowed, hu, casting="unsafe")
                hu = narrowed
            sorted_headers = self._headers
            self._release()
            plan.order = list(range(n))
            volume = _volume_from_plan(hu, sorted_headers, plan)
            return volume, plan.warnings, volume_metadata(sorted_headers[0], volume)

    def _release(self) -> None:
        self._buf = None
        self._headers = []
        self._needs_float = []
        self._aside = []
        self._aside_bytes = 0

    def close(self) -> None:
        """Drop every buffer (cancel / error); placing afterwards raises."""
        with self.lock:
            self._closed = True
            self._release()
            self.placed = 0
