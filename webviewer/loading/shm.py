"""Volumes in anonymous shared memory (``memfd_create`` + ``mmap``), handed between processes as file descriptors.

Nothing appears in /dev/shm: a segment has no name, and the kernel frees its pages when the last mapping and the
last descriptor are gone, even when a process is killed. The load worker allocates its volume arrays here
(:class:`SegmentAllocator`); the app maps the same pages from the descriptor it is sent (:func:`map_array`).
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
import weakref
from dataclasses import dataclass

import numpy as np

_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class ArrayPlace:
    """Where an array lives in a segment: what the other process needs to map it (the fd travels apart)."""

    segment: int
    size: int
    offset: int
    shape: tuple[int, ...]
    dtype: str


class SegmentAllocator:
    """Allocates arrays in memfd segments and finds the segment (and its fd) of any view of them.

    A segment's fd is closed when its mapping is collected (the array and every view of it gone)."""

    def __init__(self, name: str = "webviewer-volume") -> None:
        self.name = name
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._live: dict[int, tuple[int, int, int, int]] = {}  # id(mmap) -> (segment, fd, size, address)

    def __call__(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        size = max(_PAGE, -(-count * dtype.itemsize // _PAGE) * _PAGE)
        fd = os.memfd_create(self.name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        arr = np.frombuffer(mm, dtype=dtype, count=count).reshape(shape)
        with self._lock:
            self._live[id(mm)] = (next(self._ids), fd, size, arr.ctypes.data)
        weakref.finalize(mm, self._forget, id(mm), fd)
        return arr

    def _forget(self, key: int, fd: int) -> None:
        with self._lock:
            self._live.pop(key, None)
        os.close(fd)

    def live_segments(self) -> int:
        """Segments still mapped in this process."""
        with self._lock:
            return len(self._live)

    def locate(self, arr: np.ndarray) -> tuple[ArrayPlace, int] | None:
        """The place of a C-contiguous ``arr`` in one of this allocator's segments, and that segment's fd."""
        base = mapping_of(arr)
        with self._lock:
            found = self._live.get(id(base)) if isinstance(base, mmap.mmap) else None
        if found is None or not arr.flags.c_contiguous:
            return None
        segment, fd, size, address = found
        place = ArrayPlace(segment, size, arr.ctypes.data - address, tuple(arr.shape), arr.dtype.str)
        return place, fd


def mapping_of(arr: np.ndarray) -> object:
    """The object at the end of ``arr``'s base chain: the mmap for arrays of this module."""
    base: object = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def map_array(fd: int, place: ArrayPlace) -> np.ndarray:
    """Map segment ``fd`` (closed here: the mapping keeps the pages) and view ``place`` in it, without a copy."""
    try:
        mm = mmap.mmap(fd, place.size)
    finally:
        os.close(fd)
    return view_array(mm, place)


def view_array(mm: mmap.mmap, place: ArrayPlace) -> np.ndarray:
    """``place`` viewed in an existing mapping of its segment (the array's base is the mapping)."""
    dtype = np.dtype(place.dtype)
    count = int(np.prod(place.shape, dtype=np.int64))
    return np.frombuffer(mm, dtype=dtype, count=count, offset=place.offset).reshape(place.shape)


__all__ = ["ArrayPlace", "SegmentAllocator", "map_array", "mapping_of", "view_array"]
