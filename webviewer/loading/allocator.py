"""The one allocator of the arrays that become a CT volume (PoC2's slice stack, its growth and promotion, and the
assembled volume of Batch and PoC1).

In-process loads use ``np.empty``; the load worker process (:mod:`webviewer.loading.worker`) installs a shared-memory
allocator so that the volume it builds is handed to the app without a copy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Allocator = Callable[[tuple[int, ...], np.dtype], np.ndarray]

_allocator: Allocator | None = None


def set_volume_allocator(allocator: Allocator | None) -> None:
    """Install ``allocator`` for every volume array of this process (None: back to ``np.empty``)."""
    global _allocator
    _allocator = allocator


def allocate_volume(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` and ``dtype`` from the installed allocator."""
    dtype = np.dtype(dtype)
    if _allocator is None:
        return np.empty(shape, dtype=dtype)
    return _allocator(tuple(int(n) for n in shape), dtype)


__all__ = ["Allocator", "allocate_volume", "set_volume_allocator"]
