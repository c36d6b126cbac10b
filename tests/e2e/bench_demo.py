"""Demo deployment benchmark (not a test): session start, memory per session, three visitors at once vs one alone.

Run from the repository root, on an otherwise idle machine:

    .venv/bin/python tests/e2e/bench_demo.py [ROUNDS]

It starts `webviewer-demo --sessions 3 --samples tiny,seed` (real Apache + launcher), opens three Playwright
visitors one after the other (time from opening the URL to a connected viewer), reads each session's RSS idle,
loads the seed-sized CT in PoC2 (Unlimited) in one visitor alone, then in the three at once, ROUNDS times each
(default 2), and prints each visitor's load time (the app's own total), the wall time of the three together, and
each session's RSS and peak RSS (VmHWM) once loaded.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from playwright.sync_api import expect, sync_playwright

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from demo_helpers import start_demo, stop_demo, visit  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]

MB = 1_000_000
SEED = "seed"


def rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """(RSS, peak RSS VmHWM) in MB."""
    with open(f"/proc/{proc.pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return proc.memory_info().rss / MB, int(fields["VmHWM"].split()[0]) * 1024 / MB


def last_total_s(visitor) -> float:
    return float(visitor.viewer.result_rows().last.locator("td").nth(3).inner_text())


def prepare(visitor) -> None:
    visitor.viewer.select_ct(SEED)
    visitor.viewer.select_network("Unlimited")
    visitor.viewer.choose_mode("stream-dicom")


def load_together(visitors) -> tuple[list[float], float]:
    """Click Load in every visitor, wait for all to finish: (each visitor's total, wall time of them all)."""
    rows = [v.viewer.result_rows().count() for v in visitors]
    t0 = time.monotonic()
    for v in visitors:  # clicks only: waiting for each load to start would stagger them
        v.viewer.tid("load-button").click()
    for v, n in zip(visitors, rows, strict=True):  # a new results row is this load's end
        expect(v.viewer.result_rows()).to_have_count(n + 1, timeout=600_000)
    wall = time.monotonic() - t0
    return [last_total_s(v) for v in visitors], wall


def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    data = {"data": tmp / "empty", "cache": Path.home() / ".cache" / "webviewer" / "samples"}
    data["data"].mkdir()
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    demo = start_demo(tmp, data, sessions=3, idle_timeout=600, samples="tiny,seed")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            visitors, starts = [], []
            for _ in range(3):
                t0 = time.monotonic()
                visitors.append(visit(browser, demo))
                starts.append(time.monotonic() - t0)
            print("session start (open URL -> connected viewer), s:", [f"{s:.2f}" for s in starts], flush=True)
            procs = [demo.session_process(v.session["secret"]) for v in visitors]
            for v in visitors:
                prepare(v)
            print("idle session RSS, MB:", [f"{rss_mb(p)[0]:.0f}" for p in procs], flush=True)
            last = visitors[2]  # the worst case of the sizing: a fresh session loads the seed in Batch
            last.viewer.choose_mode("batch")
            totals, _ = load_together([last])
            print(f"Batch alone in a fresh session: {totals[0]:.2f} s; RSS %.0f MB, peak %.0f MB"
                  % rss_mb(procs[2]), flush=True)
            last.viewer.choose_mode("stream-dicom")
            alone = []
            for _ in range(rounds):
                totals, wall = load_together(visitors[:1])
                alone.append(totals[0])
            print(f"one visitor alone: {[f'{t:.2f}' for t in alone]} s (median {statistics.median(alone):.2f})")
            print("  its session after loading: RSS {:.0f} MB, peak {:.0f} MB".format(*rss_mb(procs[0])), flush=True)
            for r in range(rounds):
                totals, wall = load_together(visitors)
                print(f"three at once, round {r + 1}: each {[f'{t:.2f}' for t in totals]} s, "
                      f"all three done after {wall:.2f} s", flush=True)
            print("sessions after loading: RSS / peak MB:",
                  [f"{a:.0f}/{b:.0f}" for a, b in (rss_mb(p) for p in procs)], flush=True)
            for v in visitors:
                v.context.close()
            browser.close()
    finally:
        print("demo stopped with", stop_demo(demo))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
