"""What a session's memory holds, as the budget accounts for it: idle baseline, renderer caches, the contents'
volumes, the render copies of the volume on screen (and a shown volume that is not registered).

Render cost measured on llvmpipe with the fixed-point ray caster (``/tmp`` script in the issue-15 report):
seed 512x512x380 -> 3D copy at strides (2, 2, 2), 12.5 M voxels, 73 MB above the volume; Philips 512x512x140 ->
(2, 2, 1), 9.2 M voxels, 56 MB: about 6 bytes per 3D voxel (2 for the copy, 3 for the shading gradients, the
rest for the mapper's tables). The first volume shown also leaves 37 MB of renderer caches that stay.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webviewer.loading.metrics import current_rss, trim_heap
from webviewer.units import MB

#: render copies per voxel of the 3D pane's (decimated) copy
RENDER_BYTES_PER_3D_VOXEL = 6
#: renderer caches that stay once a first volume was shown (textures, mapper tables, OpenGL state)
RENDER_CACHE_BYTES = 37 * MB


def render_copy_bytes(volume: Any) -> int:
    """Bytes the renderer holds besides ``volume`` while it is on screen (0 for None)."""
    if volume is None:
        return 0
    from webviewer.rendering.volume_view import MAX_3D_VOXELS, decimation_strides

    nz, ny, nx = volume.hu.shape
    strides = decimation_strides((nx, ny, nz), volume.spacing, MAX_3D_VOXELS)
    voxels = 1
    for n, s in zip((nx, ny, nz), strides, strict=True):
        voxels *= -(-n // s)
    per_voxel = RENDER_BYTES_PER_3D_VOXEL - (2 if strides == (1, 1, 1) else 0)  # no copy: the mapper reads hu
    return voxels * per_voxel


def release_memory() -> None:
    """Collect cycles and hand freed heap pages back to the OS (unloaded volumes leave the RSS at once)."""
    gc.collect()
    trim_heap()


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, the app, the renderer, the UI) out of the collector's reach.

    A full ``gc.collect()`` in the app walked all of them: 40-80 ms, twice on the path from the Load click to the
    first image (:func:`release_memory` before the baseline). Frozen objects are never collected, so call this
    once, when start-up is done; what loads create later is collected as before (Python's ``gc.freeze``)."""
    gc.collect()
    gc.freeze()


@dataclass
class MemoryAccount:
    """The session's memory as the budget counts it, against the measured RSS."""

    baseline_bytes: int = 0
    caches_bytes: int = 0
    #: the session's resident memory (the app process, plus its load worker when loads run in one)
    measure: Callable[[], int] = current_rss

    def start(self) -> None:
        """Measure the idle baseline: call it whenever the session holds nothing (at start, after the last
        unload). The renderer's caches, once there, stay in the RSS and are counted apart from it."""
        release_memory()
        self.baseline_bytes = self.measure() - self.caches_bytes

    def shown(self) -> None:
        """A volume reached the renderer: its caches now stay."""
        self.caches_bytes = RENDER_CACHE_BYTES

    def extra_bytes(self, registry: Any, current_volume: Any) -> int:
        """What the budget counts outside the registry's volumes: the render copies of the volume on screen,
        and that volume itself when it is not registered (a Compare modes run). The renderer's caches are a
        fixed cost of the session, like the baseline, and are not charged to the contents."""
        extra = render_copy_bytes(current_volume)
        if current_volume is not None and not is_registered(registry, current_volume):
            extra += int(current_volume.nbytes)
        return extra

    def figures(self, registry: Any, current_volume: Any) -> dict[str, float]:
        """MB figures: contents, render copies, accounted total (baseline and caches included), RSS."""
        contents = held_volume_bytes(registry)
        extra = self.extra_bytes(registry, current_volume)
        rss = self.measure()
        total = self.baseline_bytes + self.caches_bytes + contents + extra
        return {"contents_mb": round(contents / MB, 1), "render_mb": round(extra / MB, 1),
                "accounted_mb": round(total / MB, 1), "rss_mb": round(rss / MB, 1),
                "budget_used_mb": round((contents + extra) / MB, 1)}


def _nbytes(content: Any) -> int:
    vol = getattr(content, "volume", None)
    return int(vol.nbytes) if vol is not None else 0


def held_volume_bytes(registry: Any) -> int:
    """Bytes of the volumes the registry's contents hold (0 without a registry)."""
    return sum(_nbytes(c) for c in registry.list()) if registry is not None else 0


def is_registered(registry: Any, volume: Any) -> bool:
    """True when one of the registry's contents holds ``volume``."""
    return registry is not None and any(getattr(c, "volume", None) is volume for c in registry.list())
