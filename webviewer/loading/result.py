"""What a load is asked for and what it gives back: modes, options, fallback record, result (``--json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from webviewer.loading.geometry import LoadWarning
from webviewer.loading.limits import Limits
from webviewer.loading.metrics import LoadMetrics
from webviewer.loading.volume import CTVolume


class LoadMode(StrEnum):
    BATCH = "batch"
    STREAM_FILES = "stream-files"
    STREAM_DICOM = "stream-dicom"

    def __str__(self) -> str:
        return self.value


#: the next safer mode of each streaming mode
FALLBACK_CHAIN = {LoadMode.STREAM_DICOM: LoadMode.STREAM_FILES, LoadMode.STREAM_FILES: LoadMode.BATCH}


@dataclass
class LoadOptions:
    limits: Limits = field(default_factory=Limits)
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 30.0
    expected_slices: int | None = None
    fallback: bool = True
    name: str | None = None
    #: compressed bytes the download may run ahead of the unzip/parse worker (backpressure bound)
    queue_bytes: int = 4 << 20
    #: ask the server for the ZIP central directory (Range) to learn the slice count for preallocation
    probe_central_directory: bool = True
    #: HTTP basic credentials (user, password) and extra request headers (e.g. Authorization: Bearer <token>)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: dict[str, str] | None = field(default=None, repr=False)
    #: PoC2: members unzipped ahead of a separate parse/place thread (0 = unzip and place on one thread).
    #: Measured with stream-unzip on an idle 2-core machine, 512x512x380 over loopback: 2 -> 1.16-1.27 s,
    #: 0 -> 1.12-1.77 s (bimodal); memory cost: 2 members (~1 MB)
    prefetch_members: int = 2
    #: streaming modes: members inflated at once when the ZIP's central directory is known before the download
    #: (a local file, or an HTTP server that answers Range requests); 0 = stream-unzip, one member after another
    inflate_workers: int = 2


@dataclass
class Fallback:
    from_mode: str
    to_mode: str
    reason: str

    def to_json(self) -> dict:
        return {"from": self.from_mode, "to": self.to_mode, "reason": self.reason}


@dataclass
class LoadResult:
    content_id: str
    mode: LoadMode
    requested_mode: LoadMode
    name: str
    volume: CTVolume
    metadata: dict
    warnings: list[LoadWarning]
    skipped_files: list[str]
    fallback: Fallback | None
    metrics: LoadMetrics
    source: str = ""

    def to_json(self) -> dict:
        """The ``webviewer-load --json`` object (issue 3)."""
        v, m = self.volume, self.metrics
        return {
            "mode": self.mode.value,
            "content_id": self.content_id,
            "slices": int(v.hu.shape[0]),
            "dimensions": [int(d) for d in v.dimensions],
            "spacing": [float(s) for s in v.spacing],
            "origin": [float(o) for o in v.origin],
            "direction": [float(d) for d in np.asarray(v.direction, dtype=float).reshape(9)],
            "dtype": str(v.hu.dtype),
            "timings": {"total_s": m.total_s, "first_slice_s": m.first_slice_s, "states": dict(m.states)},
            "bytes": {"downloaded": m.bytes_downloaded, "dicom": m.bytes_dicom, "at_first_slice": m.bytes_at_first_slice},
            "frames": int(self.metadata.get("frames") or 0),
            "sop_class": self.metadata.get("sop_class", ""),
            "memory": {
                "baseline_rss_bytes": m.baseline_rss_bytes,
                "peak_rss_bytes": m.peak_rss_bytes,
                "peak_above_baseline_bytes": m.peak_above_baseline_bytes,
                "volume_bytes": m.volume_bytes,
                "components_peak_bytes": dict(m.components_peak_bytes),
                "method": m.memory_method,
                "shared_process": m.memory_shared,
            },
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
            "skipped_files": list(self.skipped_files),
            "fallback": self.fallback.to_json() if self.fallback else None,
        }
