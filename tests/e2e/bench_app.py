"""Browser benchmark (not a test): the app's own results table for the three modes, first images, interaction fps.

Run from the repository root, on an otherwise idle machine:

    .venv/bin/python tests/e2e/bench_app.py [--rounds 3] [--progressive both|on|off] [--load-in process|thread]
        [--api-in app|process] [--port PORT]

It starts `webviewer --samples tiny,seed` (the CT API mounted in the app, or with ``--api-in process`` a
`webviewer-api` process of its own that the app reaches with ``--api``), drives Debian's Chromium like a user:
seed-sized CT, Unlimited, the modes interleaved (Batch, PoC1, PoC2) for ``--rounds`` rounds, and reads the values
the app's results table shows (``window.trame.state``). It also runs `webviewer-load` on the same URL for the
engine-alone PoC2 figure, times the first axial and 3D images after Load, and measures 3D rotation and slice
scrolling idle and the 2D panes while a load runs. Each load's row also has the CPU seconds (user, system) that
the app process, its load worker and Chromium spent over it. It prints the issue-11 targets table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from viewer_page import ViewerPage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODES = ("batch", "stream-files", "stream-dicom")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]

WATCH = """
() => {
  window.__loads = {};
  window.__pixels = true;
  for (const pane of ['axial','3d','sagittal','coronal']) {
    window.__loads[pane] = [];
    const el = document.querySelector(`[data-testid="pane-${pane}"]`);
    el.addEventListener('load', (ev) => {
      const img = ev.target; if (img.tagName !== 'IMG') return;
      const t = Date.now();
      if (!window.__pixels) { window.__loads[pane].push({t, nb: -1}); return; }  // interaction: count only
      // lit pixels of a 128x96 copy: reading every frame at full size (1 MB of getImageData, a major GC every few
      // frames) took the browser's CPU from the load it measures
      const c = document.createElement('canvas'); c.width = 128; c.height = 96;
      const ctx = c.getContext('2d', {willReadFrequently: true}); ctx.drawImage(img, 0, 0, 128, 96);
      const d = ctx.getImageData(0, 0, c.width, c.height).data; let nb = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) nb++;
      window.__loads[pane].push({t, nb, w: img.naturalWidth, h: img.naturalHeight});
    }, true);
  }
}
"""


def start_server(port: int, extra: list[str], *, api: str | None = None) -> subprocess.Popen:
    """The app on ``port``: the CT API mounted in it, or the one at ``api`` (``--api``)."""
    env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
    cmd = [str(ROOT / ".venv/bin/webviewer"), "--server", "--port", str(port), "--samples", "tiny,seed", *extra]
    cmd += ["--api", api] if api else []
    log = os.environ.get("BENCH_LOG")  # the app's log, e.g. for its own timings
    out = open(f"{log}-{port}.log", "w") if log else subprocess.DEVNULL  # noqa: SIM115 (the process keeps it)
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/", proc)
    return proc


def start_api(port: int) -> subprocess.Popen:
    """The CT API in a process of its own (the samples the app would mount)."""
    cmd = [str(ROOT / ".venv/bin/webviewer-api"), "--port", str(port), "--samples", "tiny,seed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/api/cts", proc)
    return proc


def wait_http(url: str, proc: subprocess.Popen) -> None:
    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer")


def cpu_seconds(app: psutil.Process, browser_pid: int | None) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds so far of the app process, its children (the load worker) and Chromium."""
    def total(procs: list[psutil.Process]) -> tuple[float, float]:
        user = system = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            user, system = user + t.user, system + t.system
        return user, system

    chromium: list[psutil.Process] = []
    if browser_pid is not None:
        root = psutil.Process(browser_pid)
        chromium = [root, *root.children(recursive=True)]
    return {"app": total([app]), "worker": total(app.children(recursive=True)), "chromium": total(chromium)}


def cpu_delta(before: dict, after: dict) -> dict[str, list[float]]:
    return {k: [round(a - b, 2) for a, b in zip(after[k], before[k], strict=True)] for k in before}


def engine_alone(api: str, runs: int) -> list[float]:
    """`webviewer-load` PoC2 on the CT API the app used (a fresh process per run)."""
    url = f"{api}/api/cts/sample-seed/archive"
    out = []
    for _ in range(runs):
        text = subprocess.run([str(ROOT / ".venv/bin/webviewer-load"), url, "--mode", "stream-dicom", "--json",
                               "--quiet"], capture_output=True, text=True, check=True).stdout
        out.append(float(json.loads(text)["timings"]["total_s"]))
    return out


def first_images(loads: dict, t_click: int) -> tuple[float | None, float | None]:
    """Seconds from the Load click to the first non-black axial and 3D images (``loads``: ``window.__loads``)."""
    out = []
    for pane in ("axial", "3d"):
        t = next((x["t"] for x in loads[pane] if x["t"] >= t_click and x["nb"] > 50), None)
        out.append(None if t is None else (t - t_click) / 1000.0)
    return out[0], out[1]


def one_load(page, vp: ViewerPage, mode: str, cpu=None) -> dict:
    """One Load in ``mode``; its row of the results table, first images and (``cpu()``) CPU seconds per process."""
    # the previous load's full-quality 3D frame (1-2 s of VTK render, 2 s after it) must not overlap this load:
    # it takes the app's event loop, which also serves the CT API, and a core
    quiet(page, 2.5, count_only=False)
    vp.choose_mode(mode)
    serial = int(vp.tid("load-serial").text_content() or 0)
    before = cpu() if cpu else None
    t_click = page.evaluate("() => { const t = Date.now(); "
                            "document.querySelector('[data-testid=\"load-button\"]').click(); return t; }")
    # wait as a user does, without Playwright's per-animation-frame polling (a frame of the whole page 60 times a
    # second, on the cores the load needs): the state is read 5 times a second
    page.wait_for_function("n => window.trame.state.get('load_serial') >= n && !window.trame.state.get('busy') && "
                           "['finished', 'error', 'cancelled'].includes(window.trame.state.get('load_state'))",
                           arg=serial + 1, polling=200, timeout=90_000)
    state, error = page.evaluate("() => [window.trame.state.get('load_state'), window.trame.state.get('error_message')]")
    if state != "finished":
        raise RuntimeError(f"the {mode} load ended {state}: {error}")
    page.wait_for_timeout(1500)  # the last frames land
    row = page.evaluate("() => window.trame.state.get('runs').slice(-1)[0]")
    loads = page.evaluate("() => window.__loads")
    row["first_axial_s"], row["first_3d_s"] = first_images(loads, t_click)
    row["t_click_ms"] = t_click  # epoch ms: lines up with the app's log (BENCH_LOG)
    # the first frames after the click: ms, lit pixels (0: black)
    row["frames_ms"] = {p: [(x["t"] - t_click, x["nb"]) for x in loads[p] if x["t"] >= t_click][:8]
                        for p in ("axial", "3d")}
    if before is not None:
        row["cpu_s"] = cpu_delta(before, cpu())
    return row


def quiet(page, seconds: float = 3.0, *, count_only: bool = True) -> None:
    """Wait until no pane received a frame for ``seconds`` (longer than the 3D pane's 2 s wait for its
    full-quality frame, so that frame is in); ``count_only``: stop reading pixels (the interaction figures count
    frames only)."""
    if count_only:
        page.evaluate("() => { window.__pixels = false; }")
    total = "() => Object.values(window.__loads).reduce((n, l) => n + l.length, 0)"
    last, since = -1, time.time()
    while time.time() - since < seconds:
        now = page.evaluate(total)
        if now != last:
            last, since = now, time.time()
        page.wait_for_timeout(100)


def fps_rotate(page, vp: ViewerPage, seconds: float = 4.0) -> tuple[float, str]:
    box = vp.tid("pane-3d").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 - 20
    page.mouse.move(cx, cy)
    page.mouse.down()
    n0 = page.evaluate("() => window.__loads['3d'].length")
    t0, steps = time.time(), 0
    while time.time() - t0 < seconds:
        steps += 1
        page.mouse.move(cx + 120 * ((steps % 40) / 40 - 0.5), cy + 10 * ((steps % 7) / 7), steps=1)
        page.wait_for_timeout(16)
    dt = time.time() - t0
    n1 = page.evaluate("() => window.__loads['3d'].length")
    page.mouse.up()
    return (n1 - n0) / dt, f"{box['width']:.0f}x{box['height']:.0f}"


def fps_scroll(page, seconds: float = 4.0) -> float:
    """Axial frames per second while the slider is stepped as fast as a held arrow key."""
    page.locator('[data-testid="slider-axial"] .v-slider-thumb').focus()
    n0 = page.evaluate("() => window.__loads.axial.length")
    t0, i = time.time(), 0
    while time.time() - t0 < seconds:
        page.keyboard.press("ArrowRight" if (i // 20) % 2 == 0 else "ArrowLeft")
        page.wait_for_timeout(16)
        i += 1
    dt = time.time() - t0
    return (page.evaluate("() => window.__loads.axial.length") - n0) / dt


def fps_while_loading(page, vp: ViewerPage) -> float:
    """Axial frames per second while the slider is stepped during a PoC2 load of the seed."""
    vp.choose_mode("stream-dicom")
    serial = int(vp.tid("load-serial").text_content() or 0)
    vp.tid("load-button").click()
    expect(vp.tid("load-serial")).to_have_text(str(serial + 1), timeout=90_000)
    page.wait_for_function("() => window.trame.state.get('has_volume')", timeout=90_000)
    page.locator('[data-testid="slider-axial"] .v-slider-thumb').focus()
    n0 = page.evaluate("() => window.__loads.axial.length")
    t0, i = time.time(), 0
    while page.evaluate("() => window.trame.state.get('load_state')") not in ("finished", "error", "cancelled"):
        page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
        page.wait_for_timeout(16)
        i += 1
    dt = time.time() - t0
    n = page.evaluate("() => window.__loads.axial.length") - n0
    vp.wait_state("finished")
    page.wait_for_function("() => !window.trame.state.get('busy')", timeout=90_000)
    return n / dt if dt > 0 else float("nan")


def chromium_pid() -> int | None:
    """The browser's main process among this script's descendants (Playwright's driver starts it)."""
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name().lower() and "chrom" not in p.parent().name().lower():
                return p.pid
        except psutil.Error:
            continue
    return None


def run_app(port: int, extra: list[str], rounds: int, interact: bool, modes: tuple[str, ...] = MODES,
            viewport: tuple[int, int] = (1720, 1180), api_in: str = "app") -> dict:
    api_proc = start_api(port + 100) if api_in == "process" else None
    api = f"http://127.0.0.1:{port + 100}" if api_proc else f"http://127.0.0.1:{port}"
    proc = start_server(port, extra, api=api if api_proc else None)
    spy = None
    if os.environ.get("BENCH_PYSPY"):  # profile the app's process: collapsed stacks for the issue note
        spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "--pid", str(proc.pid), "--format", "raw",
                                "--rate", "50", "-o", f"{os.environ['BENCH_PYSPY']}-{port}.txt"])
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            vp = ViewerPage(page, f"http://127.0.0.1:{port}")
            vp.open()
            page.evaluate(WATCH)
            vp.select_ct("seed size")
            vp.select_network("Unlimited")
            app, browser_pid = psutil.Process(proc.pid), chromium_pid()
            rows = [one_load(page, vp, mode, lambda: cpu_seconds(app, browser_pid))
                    for _ in range(rounds) for mode in modes]
            out = {"rows": rows}
            if interact:
                quiet(page)
                out["rotate_fps"], out["pane"] = fps_rotate(page, vp)
                quiet(page)
                out["scroll_fps"] = fps_scroll(page)
                out["loading_2d_fps"] = fps_while_loading(page, vp)
            browser.close()
        out["engine_poc2_s"] = engine_alone(api, rounds) if interact else []
        return out
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
        proc.terminate()
        proc.wait()
        if api_proc is not None:
            api_proc.terminate()
            api_proc.wait()


def med(rows: list[dict], mode: str, key: str) -> float:
    vals = [r[key] for r in rows if r["requested_mode"] == mode and r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def report(on: dict, off: dict | None) -> None:
    rows = on["rows"]
    print("\nrun | mode | total s | first slice s | peak MB | volume MB | first axial s | first 3D s | states | "
          "CPU s user/system: app, worker, Chromium")
    for r in rows:
        cpu = ", ".join(f"{u:.2f}/{s:.2f}" for u, s in r.get("cpu_s", {}).values())
        print(f"{r['run']} | {r['mode']} | {r['total_s']:.2f} | {r['first_slice_s']} | {r['peak_mb']:.1f} | "
              f"{r['volume_mb']:.1f} | {r['first_axial_s']} | {r['first_3d_s']} | {r['states_text']} | {cpu}")
    b, p = med(rows, "batch", "total_s"), med(rows, "stream-dicom", "total_s")
    bm, pm, vol = med(rows, "batch", "peak_mb"), med(rows, "stream-dicom", "peak_mb"), med(rows, "stream-dicom",
                                                                                          "volume_mb")
    eng = statistics.median(on["engine_poc2_s"]) if on.get("engine_poc2_s") else float("nan")
    print("\ntarget | measured (medians)")
    print(f"app PoC2 / app Batch <= 0.65 | {p / b:.2f} ({p:.2f} / {b:.2f} s; PoC1 "
          f"{med(rows, 'stream-files', 'total_s'):.2f} s)")
    print(f"app PoC2 <= 1.2 x webviewer-load PoC2 | {p / eng:.2f} x ({eng:.2f} s)")
    print(f"app PoC2 memory 0.95-1.10 x volume | {pm / vol:.2f} ({pm:.0f} / {vol:.0f} MB)")
    print(f"app Batch / PoC2 memory >= 2.5 | {bm / pm:.2f} ({bm:.0f} MB; PoC1 {med(rows, 'stream-files', 'peak_mb'):.0f})")
    if off is not None:
        poff = med(off["rows"], "stream-dicom", "total_s")
        print(f"progressive on vs off costs PoC2 <= 10 % | {(p / poff - 1) * 100:+.0f} % ({p:.2f} vs {poff:.2f} s)")
    print(f"first image <= 0.3 s after Load (PoC2) | {med(rows, 'stream-dicom', 'first_axial_s'):.2f} s")
    print(f"first 3D image <= 1.0 s (PoC2) | {med(rows, 'stream-dicom', 'first_3d_s'):.2f} s")
    if "rotate_fps" in on:
        print(f"3D rotation >= 15 fps idle | {on['rotate_fps']:.1f} fps (pane {on['pane']})")
        print(f"slice scrolling >= 20 fps idle | {on['scroll_fps']:.1f} fps")
        print(f"2D >= 5 fps while loading | {on['loading_2d_fps']:.1f} fps")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--progressive", choices=("both", "on", "off"), default="both")
    ap.add_argument("--port", type=int, default=18790)
    ap.add_argument("--json", default=None, help="write the raw figures here")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="modes of the timed loads (e.g. stream-dicom with --rounds 1 for the interaction figures)")
    ap.add_argument("--viewport", default="1580x1000", help="browser size; 1580x1000 gives the 600x450 panes of the targets")
    ap.add_argument("--load-in", choices=("process", "thread"), default="process",
                    help="where the app runs its loads (webviewer --load-in)")
    ap.add_argument("--api-in", choices=("app", "process"), default="app",
                    help="the CT API mounted in the app (as `make run`), or a webviewer-api process of its own")
    args = ap.parse_args()
    where = ["--load-in", args.load_in]
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    on = off = None
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    width, height = (int(v) for v in args.viewport.lower().split("x"))
    if args.progressive in ("both", "on"):
        on = run_app(args.port, where, args.rounds, interact=True, modes=modes, viewport=(width, height),
                     api_in=args.api_in)
    if args.progressive in ("both", "off"):
        off = run_app(args.port + 1, [*where, "--progressive-interval-s", "0"], args.rounds, interact=on is None,
                      modes=modes, viewport=(width, height), api_in=args.api_in)
    if args.json:
        Path(args.json).write_text(json.dumps({"on": on, "off": off}, indent=2))
    report(on or off, off if on is not None else None)


if __name__ == "__main__":
    main()
