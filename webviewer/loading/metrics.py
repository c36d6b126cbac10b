"""Per-load metrics: timings per state, bytes, RSS baseline/peak and the bytes each component holds."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

COMPONENTS = ("zip", "files", "datasets", "volume")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int:
    """Resident set size of this process in bytes (cheap: one read of /proc/self/statm)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # pragma: no cover - no /proc and no psutil
            return 0


def rss_parts(pid: int | str = "self") -> dict[str, int]:
    """RssAnon, RssFile and RssShmem of a process in bytes (keys anon, file, shmem; zeros where unreadable).

    Shared-memory pages mapped by two processes count in both RssShmem: add them once."""
    parts = {"anon": 0, "file": 0, "shmem": 0}
    keys = {b"RssAnon:": "anon", b"RssFile:": "file", b"RssShmem:": "shmem"}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                key = keys.get(line.split(b" ", 1)[0].split(b"\t", 1)[0])
                if key is not None:
                    parts[key] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return parts


def read_hwm() -> int | None:
    """VmHWM (peak RSS since start or the last reset) in bytes, or None where unavailable."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS by writing 5 to /proc/self/clear_refs; False where Linux refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return read_hwm() is not None


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``); a no-op elsewhere.

    Worker threads allocate member buffers in their own malloc arenas; after a load those pages stay resident
    until trimmed, which would look like a leak in a long-lived process.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
_malloc_tuned = False
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20
TRIM_THRESHOLD_BYTES = 2 << 20


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold at 1 MiB, keep up to 2 MiB of freed heap per arena during a load, and turn
    numpy's huge-page advice off (once per process; ``WEBVIEWER_MALLOC_TUNING=0`` opts out of all three).

    glibc raises the mmap threshold dynamically after large blocks are freed; later volume-sized buffers then
    come from the heap and stay resident after they are freed, so RSS "at rest" wanders by a volume or two
    between loads. With a fixed threshold, buffers of 1 MiB and more (ZIPs, volumes, decoded slice lists) are
    mapped and unmapped directly; member-sized buffers (~0.5 MB) come from the heap.

    Fixing the mmap threshold also freezes glibc's trim threshold at 128 KiB, which gave each freed member
    buffer back to the kernel at once, so the next member faulted fresh pages in again: a PoC2 load of the
    seed-sized CT took ~97,000 page faults (perf: 40 % of them member buffers), and page faults are dear on
    this VM (0.3-1.0 s of system time a load, more while the browser and the renderer compete). A 2 MiB trim
    threshold keeps a few freed members for the next ones: ~70,000 faults and the engine's PoC2 0.80 -> 0.75 s
    (PoC1 and Batch unchanged); 4-64 MiB saved a little more time but added 6-11 MB to PoC2's peak
    (docs/benchmarks.md). Every load ends with :func:`trim_heap`, which gives it all back.
    """
    global _malloc_tuned
    if _malloc_tuned or os.environ.get("WEBVIEWER_MALLOC_TUNING", "1") == "0":
        return _malloc_tuned
    _malloc_tuned = True
    _numpy_hugepages_off()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        return False
    return True


def _numpy_hugepages_off() -> bool:
    """Stop numpy from madvising large arrays for transparent huge pages (unless NUMPY_MADVISE_HUGEPAGE is set).

    With THP in "madvise" mode (this machine, and Debian's default) the first touch of a madvised 200 MB volume
    may stall in the kernel's direct compaction: in fresh processes, filling a 512x512x380 volume took
    0.22-0.5 s with huge pages against a steady 0.12 s without, and Batch loads of the seed-sized CT were
    bimodal (0.84-1.45 s, 5 runs) where they are now 0.94-1.13 s. Loads should cost the same every time.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:  # numpy's own switch: the user decided
        return False
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:
        return False
    setter(False)
    return True


_active_probes: set[MemoryProbe] = set()
_active_lock = threading.Lock()


class MemoryProbe:
    """Baseline and peak RSS of one load: VmHWM after a reset where allowed, else a sampling thread.

    VmHWM is process-wide: a load that starts while another is measured must not reset it (that would erase the
    other's peak), so it samples instead, and both are marked ``shared``: their peaks include each other's memory.
    """

    def __init__(self, sample_interval_s: float = 0.005) -> None:
        self.sample_interval_s = sample_interval_s
        self.baseline = 0
        self.method = "none"
        self.shared = False
        self._peak_sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.baseline = current_rss()
        self._peak_sampled = self.baseline
        with _active_lock:
            others = bool(_active_probes)
            for probe in _active_probes:
                probe.shared = True
            self.shared = others
            _active_probes.add(self)
        if not others and reset_hwm():
            self.method = "vmhwm"
            return
        self.method = "sampled"
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.sample_interval_s):
            self._peak_sampled = max(self._peak_sampled, current_rss())

    def peak(self) -> int:
        """Peak RSS so far (at least the current RSS)."""
        now = current_rss()
        if self.method == "vmhwm":
            hwm = read_hwm()
            return max(hwm or 0, now)
        self._peak_sampled = max(self._peak_sampled, now)
        return self._peak_sampled

    def stop(self) -> int:
        peak = self.peak()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with _active_lock:
            _active_probes.discard(self)
        return peak


class ComponentTracker:
    """Bytes held by each pipeline component (zip buffer, extracted files, decoded datasets, volume)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = dict.fromkeys(COMPONENTS, 0)
        self.peak = dict.fromkeys(COMPONENTS, 0)

    def add(self, name: str, nbytes: int) -> None:
        with self._lock:
            value = self.current[name] + nbytes
            self.current[name] = value
            if value > self.peak[name]:
                self.peak[name] = value

    def set(self, name: str, nbytes: int) -> None:
        with self._lock:
            self.current[name] = nbytes
            if nbytes > self.peak[name]:
                self.peak[name] = nbytes

    def release(self, name: str) -> None:
        with self._lock:
            self.current[name] = 0


@dataclass
class LoadMetrics:
    total_s: float
    first_slice_s: float | None
    states: dict[str, float]
    bytes_downloaded: int
    bytes_dicom: int
    baseline_rss_bytes: int
    peak_rss_bytes: int
    peak_above_baseline_bytes: int
    volume_bytes: int
    components_peak_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0))
    #: how the peak was taken: "vmhwm" (kernel high-water mark) or "sampled"
    memory_method: str = "vmhwm"
    #: another load ran in this process at the same time: the peak includes its memory too
    memory_shared: bool = False
    #: bytes downloaded when the first slice (or frame) was placed
    bytes_at_first_slice: int | None = None


class MetricsRecorder:
    """Collects the metrics of one load; thread-safe counters, state clock driven by the pipeline."""

    def __init__(self, clock=time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.t0 = clock()
        self.states: dict[str, float] = {}
        self._state: str | None = None
        self._state_t = self.t0
        self.first_slice_s: float | None = None
        self.bytes_at_first_slice: int | None = None
        self.bytes_downloaded = 0
        self.bytes_dicom = 0
        self.components = ComponentTracker()
        self.memory = MemoryProbe()

    def start(self) -> None:
        self.memory.start()
        self.t0 = self._state_t = self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.t0

    def enter_state(self, state: str) -> None:
        with self._lock:
            now = self._clock()
            if self._state is not None:
                self.states[self._state] = self.states.get(self._state, 0.0) + (now - self._state_t)
            self._state, self._state_t = state, now

    def first_slice(self) -> None:
        if self.first_slice_s is None:
            self.first_slice_s = self._clock() - self.t0
            self.bytes_at_first_slice = self.bytes_downloaded

    def finish(self, volume_bytes: int) -> LoadMetrics:
        """Close the running state and return the metrics; stops the memory probe."""
        total = self._clock() - self.t0
        if self._state is not None:
            self.enter_state(self._state)
        self.states.pop("finished", None)  # terminal: no time is spent "in" it
        peak = self.memory.stop()
        base = self.memory.baseline
        return LoadMetrics(
            total_s=total,
            first_slice_s=self.first_slice_s,
            states=dict(self.states),
            bytes_downloaded=self.bytes_downloaded,
            bytes_dicom=self.bytes_dicom,
            baseline_rss_bytes=base,
            peak_rss_bytes=peak,
            peak_above_baseline_bytes=max(0, peak - base),
            volume_bytes=volume_bytes,
            components_peak_bytes=dict(self.components.peak),
            memory_method=self.memory.method,
            memory_shared=self.memory.shared,
            bytes_at_first_slice=self.bytes_at_first_slice,
        )

    def abort(self) -> None:
        """Stop the probe of a failed or cancelled load."""
        self.memory.stop()
