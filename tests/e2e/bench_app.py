"""Browser benchmark (not a test): first slice on screen, 2D update latency after W/L and slice changes, 3D fps.

Run from the repository root, on an otherwise idle machine:

    .venv/bin/python tests/e2e/bench_app.py [PORT]        # RUNS=3 first-slice loads, N=10 latency samples

It starts `webviewer --samples tiny,seed`, loads the seed-sized CT in PoC2 in Debian's Chromium and prints figures;
screenshots go to /tmp/webviewer-seed.png and /tmp/webviewer-rotated.png.
"""

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from viewer_page import ViewerPage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

WATCH = """
() => {
  window.__loads = {};
  for (const pane of ['axial','3d','sagittal','coronal']) {
    window.__loads[pane] = [];
    const el = document.querySelector(`[data-testid="pane-${pane}"]`);
    el.addEventListener('load', (ev) => {
      const img = ev.target; if (img.tagName !== 'IMG') return;
      const t = Date.now();
      let nb = -1;
      if (pane === 'axial') {
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data; nb = 0;
        for (let i = 0; i < d.length; i += 16) if (d[i] + d[i+1] + d[i+2] > 60) nb++;
      }
      window.__loads[pane].push({t, nb});
    }, true);
  }
}
"""
port = int(sys.argv[1]) if len(sys.argv) > 1 else 18790
env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
proc = subprocess.Popen([str(ROOT / ".venv/bin/webviewer"), "--server", "--port", str(port), "--samples", "tiny,seed"],
                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
try:
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cts", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                                     "--disable-sync", "--disable-quic", "--no-first-run"])
        page = b.new_page(viewport={"width": 1600, "height": 1000})
        vp = ViewerPage(page, f"http://127.0.0.1:{port}")
        vp.open()
        page.evaluate(WATCH)
        # 1) first slice visible in the browser after the engine placed it (seed, PoC2, loopback)
        results = []
        for run in range(int(os.environ.get('RUNS', 3))):
            # panes black again: unload everything
            for btn in page.locator('[data-testid^="unload-"]').all():
                btn.click()
            page.wait_for_timeout(1500)
            page.evaluate("() => { for (const k in window.__loads) window.__loads[k] = []; }")
            vp.load_and_finish("seed size", "stream-dicom")
            page.wait_for_timeout(500)
            placed = float(vp.tid("first-slice-placed-ms").text_content())
            pushed = float(vp.tid("first-slice-pushed-ms").text_content())
            loads = page.evaluate("() => window.__loads.axial")
            first = next((x["t"] for x in loads if x["nb"] > 200), None)
            results.append((pushed - placed, (first - placed) if first else None))
            print(f"run {run}: engine placed -> pushed {pushed - placed:.0f} ms, -> visible in browser "
                  f"{(first - placed) if first else float('nan'):.0f} ms", flush=True)
        row = vp.result_rows().last.inner_text()
        print("last results row:", row.replace("\n", " | "))
        page.screenshot(path="/tmp/webviewer-seed.png")
        # 2) 2D update latency after a W/L change
        lat = []
        for i in range(int(os.environ.get('N', 10))):
            preset = ["lung", "bone", "soft-tissue", "brain"][i % 4]
            n0 = page.evaluate("() => window.__loads.axial.length")
            t0 = page.evaluate(f"() => {{ const t = Date.now(); document.querySelector('[data-testid=\"wl-{preset}\"]').click(); return t; }}")
            page.wait_for_function(f"() => window.__loads.axial.length > {n0}", timeout=30_000)
            t1 = page.evaluate(f"() => window.__loads.axial[{n0}].t")
            lat.append(t1 - t0)
            page.wait_for_timeout(700)
        print("W/L -> axial image (ms):", lat, "median", statistics.median(lat), flush=True)
        # 2b) slice change latency (slider keyboard step)
        slat = []
        thumb = page.locator('[data-testid="slider-axial"] .v-slider-thumb')
        thumb.focus()
        for i in range(int(os.environ.get('N', 10))):
            n0 = page.evaluate("() => window.__loads.axial.length")
            t0 = page.evaluate("() => Date.now()")
            page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
            page.wait_for_function(f"() => window.__loads.axial.length > {n0}", timeout=30_000)
            t1 = page.evaluate(f"() => window.__loads.axial[{n0}].t")
            slat.append(t1 - t0)
            page.wait_for_timeout(700)
        print("slice -> axial image (ms):", slat, "median", statistics.median(slat), flush=True)
        # 3) 3D fps while rotating
        box = vp.tid("pane-3d").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 - 20
        page.mouse.move(cx, cy)
        page.mouse.down()
        n0 = page.evaluate("() => window.__loads['3d'].length")
        t0 = time.time()
        steps = 0
        while time.time() - t0 < 4.0:
            steps += 1
            page.mouse.move(cx + 120 * ((steps % 40) / 40 - 0.5), cy + 10 * ((steps % 7) / 7), steps=1)
            page.wait_for_timeout(16)
        dt = time.time() - t0
        n1 = page.evaluate("() => window.__loads['3d'].length")
        page.mouse.up()
        print(f"3D: {n1 - n0} frames in {dt:.1f} s while rotating = {(n1 - n0) / dt:.1f} fps "
              f"(pane {box['width']:.0f}x{box['height']:.0f})", flush=True)
        page.screenshot(path="/tmp/webviewer-rotated.png")
        b.close()
finally:
    proc.terminate()
    proc.wait()
