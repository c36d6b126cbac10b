"""Metrics: RSS probes (VmHWM reset or sampling), component peaks, state clock."""

from __future__ import annotations

import gc

import numpy as np

from webviewer.loading import metrics as m


def test_current_rss_and_hwm():
    rss = m.current_rss()
    assert rss > 10 << 20
    hwm = m.read_hwm()
    assert hwm is None or hwm >= rss // 2


def test_memory_probe_sees_a_peak():
    gc.collect()  # garbage freed during the test would hide the allocation
    probe = m.MemoryProbe()
    probe.start()
    assert probe.method in {"vmhwm", "sampled"}
    big = np.ones(256 << 20, dtype=np.uint8)  # 256 MB touched
    big.sum()
    del big
    peak = probe.stop()
    assert peak - probe.baseline >= 128 << 20


def test_memory_probe_sampling_fallback(monkeypatch):
    monkeypatch.setattr(m, "reset_hwm", lambda: False)
    gc.collect()
    probe = m.MemoryProbe(sample_interval_s=0.001)
    probe.start()
    assert probe.method == "sampled"
    big = np.ones(256 << 20, dtype=np.uint8)
    peak_while_held = probe.peak()
    del big
    peak = probe.stop()
    assert peak >= peak_while_held >= probe.baseline + (128 << 20)
    assert probe._thread is None


def test_overlapping_probes_do_not_reset_each_other(monkeypatch):
    """VmHWM is process-wide: a second load's probe must not reset it under the first; both say shared."""
    resets: list[int] = []
    monkeypatch.setattr(m, "reset_hwm", lambda: resets.append(1) or True)
    first, second = m.MemoryProbe(sample_interval_s=0.001), m.MemoryProbe(sample_interval_s=0.001)
    first.start()
    assert first.method == "vmhwm" and not first.shared
    second.start()
    assert len(resets) == 1  # only the first probe reset the high-water mark
    assert second.method == "sampled" and second.shared and first.shared
    second.stop()
    first.stop()
    alone = m.MemoryProbe()
    alone.start()
    assert alone.method == "vmhwm" and not alone.shared and len(resets) == 2
    alone.stop()


def test_component_tracker_peaks():
    t = m.ComponentTracker()
    t.add("files", 100)
    t.add("files", 50)
    t.release("files")
    t.add("files", 20)
    t.set("zip", 70)
    t.set("zip", 10)
    assert t.peak == {"zip": 70, "files": 150, "datasets": 0, "volume": 0}
    assert t.current["files"] == 20


def test_recorder_states_and_finish():
    times = iter([0.0, 0.0, 0.0, 1.0, 3.0, 3.5, 4.0])

    def clock() -> float:
        return next(times, 4.0)

    rec = m.MetricsRecorder(clock=clock)
    rec.start()  # t0 = 0
    rec.enter_state("downloading")  # 0
    rec.enter_state("ready")  # 1
    rec.first_slice()  # 3
    rec.enter_state("dicom loading")  # 3.5
    rec.enter_state("finished")  # 4
    rec.bytes_downloaded = 10
    result = rec.finish(volume_bytes=123)
    assert result.states == {"downloading": 1.0, "ready": 2.5, "dicom loading": 0.5}
    assert result.first_slice_s == 3.0
    assert result.total_s == 4.0
    assert result.volume_bytes == 123
    assert set(result.components_peak_bytes) == {"zip", "files", "datasets", "volume"}
    assert result.peak_rss_bytes >= result.baseline_rss_bytes
