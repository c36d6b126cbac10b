"""Soak benchmark (not a test, issue 13): long runs must not leak.

    .venv/bin/python tests/e2e/soak.py [LOADS] [DOWNLOADS]      # make soak: 100 loads, 1,000 downloads

1. Starts `webviewer --server` on a free port with a small CT, a slow CT (for cancels) and a broken CT.
2. In Debian's Chromium: LOADS loads through the page (mixed modes; 20 % cancelled mid-load, 20 % failing
   sources), every content unloaded after each; server RSS after a warm-up and at the end.
3. DOWNLOADS abandoned downloads of the slow CT's archive on the same port (read one byte and hang up, 100 at
   once; one batch of 100 that stop reading until the write timeout drops them); RSS before and after.
Prints both RSS pairs and whether each stays within 10 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: realdata (imported by the e2e conftest)
sys.path.insert(0, str(HERE))  # tests/e2e/ first: its conftest, viewer_page
from conftest import CHROMIUM_ARGS, break_zip_crcs  # noqa: E402
from viewer_page import LONG, ViewerPage  # noqa: E402

from webviewer.api.samples import SeriesSpec, write_series, zip_folder  # noqa: E402

ROOT = HERE.parents[1]
MODES = ("batch", "stream-files", "stream-dicom")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(base: Path) -> Path:
    data, work = base / "data", base / "work"
    data.mkdir()
    for name, spec in {"soak-ct": SeriesSpec(rows=128, columns=128, slices=30, seed=1, description="Soak CT"),
                       "slow-ct": SeriesSpec(rows=512, columns=512, slices=40, seed=6, description="Slow CT"),
                       "broken-ct": SeriesSpec(rows=256, columns=256, slices=6, seed=5, description="Broken CT")}.items():
        write_series(work / name, spec)
        zip_folder(work / name, data / f"{name}.zip")
    break_zip_crcs(data / "broken-ct.zip")
    shutil.rmtree(work)
    return data


def rss_mb(pid: int) -> float:
    """The session's RSS: the app process and its load worker (shared volume pages may count in both)."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 1e6


def unload_all(vp: ViewerPage) -> None:
    expect(vp.tid("load-button")).to_be_enabled(timeout=LONG)  # not busy: the unload buttons are enabled
    buttons = vp.page.locator('[data-testid^="unload-"]')
    while (n := buttons.count()) > 0:
        buttons.first.click()
        expect(buttons).to_have_count(n - 1, timeout=LONG)


def one_load(vp: ViewerPage, i: int) -> str:
    mode = MODES[i % 3]
    kind = ("cancel", "fail", "ok", "ok", "ok")[i % 5]  # 20 % cancels, 20 % failing sources
    vp.select_ct({"cancel": "slow-ct", "fail": "broken-ct", "ok": "soak-ct"}[kind])
    vp.choose_mode(mode)
    vp.load()
    if kind == "cancel":
        vp.cancel()
        vp.wait_state("cancelled", "finished")
    else:
        vp.wait_state("error" if kind == "fail" else "finished", "error")
    unload_all(vp)
    return kind


def browser_loads(url: str, pid: int, loads: int) -> tuple[float, float]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        vp = ViewerPage(browser.new_page(viewport={"width": 1600, "height": 1000}), url)
        vp.open()
        for i in range(5):  # warm-up: every mode, a cancel and a failure once
            one_load(vp, i)
        before = rss_mb(pid)
        counts: dict[str, int] = {}
        for i in range(loads):
            kind = one_load(vp, i)
            counts[kind] = counts.get(kind, 0) + 1
        time.sleep(3)  # the server's memory poll and the last frames settle
        after = rss_mb(pid)
        browser.close()
    print(f"loads: {counts}")
    return before, after


async def _abandon(port: int, stall: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/cts/slow-ct/archive HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await reader.readexactly(1)
    if stall:  # stop reading; the server's write timeout (30 s) drops us
        await asyncio.sleep(45)
    writer.transport.abort()


async def abandoned(port: int, n: int) -> None:
    for start in range(0, n, 100):
        await asyncio.gather(*(_abandon(port, stall=(start == 0)) for _ in range(min(100, n - start))))


def main() -> int:
    loads = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    downloads = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    base = Path(tempfile.mkdtemp(prefix="webviewer-soak-"))
    port = free_port()
    env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow", "WEBVIEWER_DATA_DIR": str(base / "cache")}
    log = open(base / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(ROOT / ".venv/bin/webviewer"), "--server", "--port", str(port), "--samples", "tiny",
                             "--data-dir", str(make_data(base))], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(480):
            try:
                urllib.request.urlopen(f"{url}/api/cts", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        t0 = time.monotonic()
        b_before, b_after = browser_loads(url, proc.pid, loads)
        t1 = time.monotonic()
        a_before = rss_mb(proc.pid)
        asyncio.run(abandoned(port, downloads))
        time.sleep(3)
        a_after = rss_mb(proc.pid)
        t2 = time.monotonic()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    for what, before, after, secs in ((f"app, {loads} loads", b_before, b_after, t1 - t0),
                                      (f"API, {downloads} abandoned downloads", a_before, a_after, t2 - t1)):
        growth = (after - before) / before * 100
        print(f"{what}: RSS {before:.0f} -> {after:.0f} MB ({growth:+.1f} %, {'ok' if abs(growth) <= 10 else 'OVER 10 %'})"
              f" in {secs:.0f} s")
    print(f"server log: {base / 'server.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
