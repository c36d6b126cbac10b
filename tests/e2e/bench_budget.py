"""Memory benchmark (not a test): N loads of the seed-sized CT in one browser session, modes interleaved.

Run from the repository root:

    .venv/bin/python tests/e2e/bench_budget.py [N] [-- extra webviewer arguments, e.g. --content-budget-mb 1200]

It starts `webviewer --samples seed`, loads the CT N times (PoC2, Batch, PoC1, ...) in Debian's Chromium and prints
the server's RSS after each load (psutil), its peak during the load (sampled every 50 ms) and the page's budget
line (contents, accounted memory, RSS). The seed sample is generated on first use into $WEBVIEWER_DATA_DIR.
"""

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from viewer_page import ViewerPage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MB = 1e6
MODES = ("stream-dicom", "batch", "stream-files")
log = logging.getLogger("bench_budget")


def start_server(extra: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
    exe = Path(sys.executable).with_name("webviewer")
    proc = subprocess.Popen([str(exe), "--server", "--port", str(port), "--samples", "seed", *extra], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(url + "/api/cts", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"webviewer exited with {proc.returncode}") from None
            time.sleep(0.5)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 6
    extra = args[1:] if args[:1] == ["--"] else args
    proc, url = start_server(extra)
    server = psutil.Process(proc.pid)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], server.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            vp = ViewerPage(browser.new_context(viewport={"width": 1600, "height": 1000}).new_page(), url)
            vp.open()
            vp.wait_pane_stable("axial")
            log.info("idle (connected): RSS %.0f MB", server.memory_info().rss / MB)
            for i in range(n):
                peak[0] = 0
                vp.load_and_finish("seed", MODES[i % 3])
                vp.wait_pane_stable("3d")
                line = vp.tid("memory-budget").inner_text()
                log.info("load %d %-12s RSS %.0f MB, peak %.0f MB | %s | %d contents", i + 1, MODES[i % 3],
                         server.memory_info().rss / MB, peak[0] / MB, line, vp.tid("contents-row").count())
            browser.close()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
