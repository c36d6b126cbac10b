"""Fakes for the app's state/logic tests: a renderer, a slice buffer and a load function with the engine's shape."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webviewer.loading.progress import LoadState, ProgressEvent


class FakeRenderer:
    """Records what the app asked; holds real (never rendered) vtkRenderWindows so VtkRemoteView accepts them."""

    PANES = ("axial", "3d", "sagittal", "coronal")

    def __init__(self) -> None:
        from vtkmodules.vtkRenderingCore import vtkRenderWindow

        self.render_windows = {}
        for pane in self.PANES:
            rw = vtkRenderWindow()
            rw.SetOffScreenRendering(1)
            self.render_windows[pane] = rw
        self.calls: list[tuple] = []
        self.volume = None
        self.slices = {"axial": 0, "sagittal": 0, "coronal": 0}
        self.on_change = None

    def _counts(self) -> dict[str, int]:
        if self.volume is None:
            return {"axial": 0, "sagittal": 0, "coronal": 0}
        z, y, x = self.volume.hu.shape
        return {"axial": z, "sagittal": x, "coronal": y}

    def set_volume(self, volume, *, reset: bool = True) -> None:
        self.calls.append(("set_volume", None if volume is None else volume.hu.shape, reset))
        self.volume = volume
        counts = self._counts()
        self.slices = {p: max(0, c // 2) for p, c in counts.items()}

    def volume_modified(self, volume) -> None:
        self.calls.append(("volume_modified", volume.hu.shape))
        self.volume = volume

    def set_window_level(self, width: float, level: float) -> None:
        self.calls.append(("set_window_level", width, level))

    def set_window_preset(self, name: str) -> None:
        self.calls.append(("set_window_preset", name))

    def set_vr_preset(self, name: str) -> None:
        self.calls.append(("set_vr_preset", name))

    def set_slice(self, pane: str, index: int) -> None:
        self.calls.append(("set_slice", pane, index))
        count = self._counts()[pane]
        self.slices[pane] = max(0, min(index, count - 1))

    def slice_info(self, pane: str) -> tuple[int, int]:
        return self.slices[pane], self._counts()[pane]

    def orientation_labels(self, pane: str) -> dict[str, str]:
        return {"axial": {"top": "A", "bottom": "P", "left": "R", "right": "L"},
                "sagittal": {"top": "S", "bottom": "I", "left": "A", "right": "P"},
                "coronal": {"top": "S", "bottom": "I", "left": "R", "right": "L"},
                "3d": {}}[pane]

    def render(self, pane=None) -> None:
        self.calls.append(("render", pane))

    def named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


@dataclass
class FakeVolume:
    hu: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    origin: tuple = (0.0, 0.0, 0.0)
    direction: Any = field(default_factory=lambda: np.eye(3))
    window: Any = None

    @property
    def nbytes(self) -> int:
        return self.hu.nbytes


class FakeBuffer:
    def __init__(self, total: int) -> None:
        self.full = np.arange(total * 16 * 16, dtype=np.int16).reshape(total, 16, 16)
        self.placed = 0

    def preview_volume(self):
        return FakeVolume(self.full[: self.placed]) if self.placed else None


@dataclass
class FakeMetrics:
    total_s: float = 0.5
    first_slice_s: float | None = 0.1
    states: dict = field(default_factory=lambda: {"downloading": 0.3, "dicom loading": 0.2})
    bytes_downloaded: int = 1000
    bytes_dicom: int = 2000
    baseline_rss_bytes: int = 100_000_000
    peak_rss_bytes: int = 110_000_000
    peak_above_baseline_bytes: int = 10_000_000
    volume_bytes: int = 8192
    components_peak_bytes: dict = field(default_factory=dict)


@dataclass
class FakeResult:
    content_id: str
    mode: str
    requested_mode: str
    name: str
    volume: Any
    metadata: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    skipped_files: list = field(default_factory=list)
    fallback: Any = None
    metrics: FakeMetrics = field(default_factory=FakeMetrics)


class FakeEngine:
    """An async ``load(url, mode, options=, observer=)`` that walks the mode's states and places slices."""

    def __init__(self, slices: int = 8, *, fail: Exception | None = None, gate: asyncio.Event | None = None):
        self.slices = slices
        self.fail = fail
        self.gate = gate
        self.calls: list[tuple[str, str, Any]] = []
        self.counter = 0
        #: set once a load has reported its first state (tests wait on it instead of sleeping)
        self.started = asyncio.Event()

    def _event(self, state, placed=0, total=None):
        return ProgressEvent(state=state, bytes_downloaded=500 * placed, bytes_total=500 * self.slices,
                             rate_bytes_per_s=1e6, files_extracted=placed, files_parsed=placed,
                             slices_placed=placed, slices_total=total or self.slices, elapsed_s=0.1 * placed,
                             rss_bytes=123_000_000)

    async def __call__(self, url, mode, *, options=None, observer=None):
        self.calls.append((url, mode, options))
        mode = getattr(mode, "value", mode)
        try:
            observer.on_progress(self._event(LoadState.DOWNLOADING))
            self.started.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                observer.on_progress(self._event(LoadState.ERROR))
                raise self.fail
            observer.on_progress(self._event(LoadState.READY))
            if mode == "batch":
                observer.on_progress(self._event(LoadState.DECOMPRESSING))
            observer.on_progress(self._event(LoadState.DICOM_LOADING))
            buffer = FakeBuffer(self.slices)
            if mode == "stream-dicom":
                for i in range(self.slices):
                    buffer.placed = i + 1
                    if i == 0:
                        observer.on_volume_allocated(buffer)
                    observer.on_slices_placed(buffer, buffer.placed)
                    observer.on_progress(self._event(LoadState.DICOM_LOADING, i + 1))
                    await asyncio.sleep(0.02)
            buffer.placed = self.slices
            observer.on_progress(self._event(LoadState.FINISHED, self.slices))
        except asyncio.CancelledError:
            observer.on_progress(self._event(LoadState.CANCELLED))
            raise
        self.counter += 1
        tag = {"batch": "CT_BATCH", "stream-files": "PoC_CT_STREAMFILE", "stream-dicom": "PoC_CT_STREAMDICOM"}[mode]
        return FakeResult(content_id=f"{tag}_{self.counter}", mode=mode, requested_mode=mode,
                          name=f"{options.name} - CT 4-pane ({self.slices} slices)",
                          volume=FakeVolume(buffer.full.copy()))


@dataclass
class FakeEntry:
    id: str
    name: str
    slices: int
    zip_bytes: int = 50_000
    dicom_bytes: int = 80_000

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "slices": self.slices, "zip_bytes": self.zip_bytes,
                "dicom_bytes": self.dicom_bytes}


class FakeCatalog:
    def __init__(self, entries: list[FakeEntry]) -> None:
        self._entries = {e.id: e for e in entries}

    def entries(self) -> list[FakeEntry]:
        return list(self._entries.values())

    def get(self, ct_id: str):
        return self._entries.get(ct_id)


@dataclass
class FakeContent:
    id: str
    name: str
    volume: Any
    type: str = "CT"


class FakeRegistry:
    def __init__(self) -> None:
        self.items: dict[str, FakeContent] = {}

    def add(self, result) -> FakeContent:
        c = FakeContent(result.content_id, result.name, result.volume)
        self.items[c.id] = c
        return c

    def list(self) -> list[FakeContent]:
        return list(self.items.values())

    def get(self, cid):
        return self.items.get(cid)

    def remove(self, cid) -> bool:
        return self.items.pop(cid, None) is not None


def write_memory_ct(base: Any, ct_id: str, seed: int) -> Any:
    """A 256x256x80 synthetic CT zipped as ``<base>/data/<ct_id>.zip`` for the memory tests; returns the data dir."""
    from webviewer.api.samples import SeriesSpec, write_series, zip_folder

    write_series(base / "work", SeriesSpec(rows=256, columns=256, slices=80, seed=seed, description="Memory CT"))
    (base / "data").mkdir()
    zip_folder(base / "work", base / "data" / f"{ct_id}.zip")
    return base / "data"
