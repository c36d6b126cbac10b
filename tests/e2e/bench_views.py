"""Benchmark (not a test): trame-vtk's VtkRemoteView against trame-rca's RemoteControlledArea, same VTK panes.

Run from the repository root:

    .venv/bin/python tests/e2e/bench_views.py [--runs 3] [--ct PATH] [--variants remote,rca]

Each run starts a small trame app in a fresh process (``--serve VARIANT``): one CT loaded with the engine, the
four ``webviewer.rendering`` panes at 600x450 CSS px each, shown either by ``VtkRemoteView`` (the app's settings
and its image-delivery patch) or by ``RemoteControlledArea`` (turbo-jpeg, 30 fps, quality 50 while interacting,
90 still: trame-slicer's settings). Chromium then rotates the 3D pane with the mouse and scrolls the axial pane
with the wheel; a frame is an ``<img>`` ``load`` event in the pane (frames that reached the browser, not
renders). The rca variant needs ``.venv/bin/pip install -e '.[bench-views]'`` and Debian's ``libturbojpeg0``.
A wheel step re-renders (``--scroll-panes``) the three 2D panes at once (``all2d``, the app before
issue 11b), the wheeled pane at once (``one``) or what the app's FramePacer asks for (``paced``, the app now).
The variants are interleaved and each runs ``--runs`` times; medians. Renders per pane are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL = Path(os.environ.get("WEBVIEWER_REAL_DATA", ROOT.parent / "shared/data/real"))
DEFAULT_CT = REAL / "dcmqa-philips-headphantom-1mm"
PANE_W, PANE_H = 600, 450
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]

WATCH = """
window.__loads = {axial: 0, '3d': 0, sagittal: 0, coronal: 0};
document.addEventListener('load', (ev) => {
  if (ev.target.tagName !== 'IMG') return;
  const pane = ev.target.closest('[data-testid^="pane-"]');
  if (pane) window.__loads[pane.getAttribute('data-testid').slice(5)] += 1;
}, true);
"""


# ------------------------------------------------------------------------------------------- the server side
def _load_volume(ct: str):
    from webviewer.loading.modes import load

    return asyncio.run(load(ct, "batch")).volume


def serve(variant: str, port: int, ct: str, scroll_panes: str, rotate_fps: float | None = None) -> None:
    """The app under test: four panes over one CT, shown by ``variant`` ("remote" or "rca")."""
    from webviewer.runtime import configure_runtime

    configure_runtime()
    from trame.app import get_server
    from trame.ui.html import DivLayout
    from trame.widgets import html

    from webviewer.rendering import FourPaneRenderer

    renderer = FourPaneRenderer((PANE_W, PANE_H))
    renderer.set_volume(_load_volume(ct))
    if rotate_fps:  # the 3D pane's level-of-detail target while rotating (volume_view.INTERACTIVE_FPS)
        renderer.volume_view.interactor.SetDesiredUpdateRate(rotate_fps)
    server = get_server("bench", client_type="vue3")
    updaters: dict[str, object] = {}
    with DivLayout(server) as layout:
        layout.root.style = f"display: grid; grid-template-columns: {PANE_W}px {PANE_W}px; gap: 4px"
        for pane in renderer.PANES:
            with html.Div(style=f"width: {PANE_W}px; height: {PANE_H}px; position: relative",
                          raw_attrs=[f'data-testid="pane-{pane}"']):
                updaters[pane] = (_remote_pane if variant == "remote" else _rca_pane)(
                    server, pane, renderer.render_windows[pane])

    pacer = _pacer(server, variant, updaters)

    def on_change(kind: str) -> None:
        if kind == "slice" and scroll_panes == "paced":  # the app's way (webviewer.app.frames)
            pane = renderer.changed_pane
            pacer.request((pane,), interactive=True, deferred=[p for p in updaters if p not in (pane, "3d")])
            return
        panes = ("axial", "sagittal", "coronal") if kind != "slice" or scroll_panes == "all2d" else ("axial",)
        for pane in panes:
            updaters[pane]()

    renderer.on_change = on_change
    renders = dict.fromkeys(renderer.PANES, 0)
    for pane, window in renderer.render_windows.items():
        window.AddObserver("StartEvent", lambda *_, p=pane: renders.__setitem__(p, renders[p] + 1))
    server.controller.trigger("renders")(lambda: dict(renders))
    if variant == "remote":
        from webviewer.app import image_delivery

        server.controller.on_server_ready.add(lambda **_: image_delivery.tune(server.protocol))
    server.start(port=port, open_browser=False, show_connection_info=False)


def _pacer(server, variant: str, updaters: dict):
    from webviewer.app.frames import FramePacer
    from webviewer.app.image_delivery import INTERACTIVE_QUALITY, STILL_QUALITY, set_view_quality

    def quality(pane: str, interactive: bool) -> None:
        set_view_quality(server, pane, INTERACTIVE_QUALITY if interactive else STILL_QUALITY)

    return FramePacer(lambda pane: updaters[pane](), quality if variant == "remote" else None)


def _remote_pane(server, pane: str, window):
    from trame.widgets import vtk as vtk_widgets

    from webviewer.app.image_delivery import VIEW_REF

    view = vtk_widgets.VtkRemoteView(window, ref=VIEW_REF.format(pane=pane), interactive_ratio=0.5 if pane == "3d" else 1,
                                     interactive_quality=50 if pane == "3d" else 70, still_quality=90)
    return view.update


def _rca_pane(server, pane: str, window):
    from trame_rca.widgets.rca import RemoteControlledArea

    area = RemoteControlledArea(name=f"rca_{pane}", display="image", style="width: 100%; height: 100%")
    handler = area.create_view_handler(window, encoder="turbo-jpeg", target_fps=30, interactive_quality=50,
                                       still_quality=90)
    return handler.schedule_render


# ------------------------------------------------------------------------------------------- the browser side
def start(variant: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--serve", variant, "--port", str(port), "--ct", args.ct,
           "--scroll-panes", args.scroll_panes, *(["--rotate-fps", str(args.rotate_fps)] if args.rotate_fps else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the {variant} app exited with {proc.returncode}") from None
            time.sleep(0.5)
    raise RuntimeError(f"the {variant} app did not start")


def frames(page, pane: str) -> int:
    return int(page.evaluate(f"() => window.__loads['{pane}']"))


def settle(page) -> None:
    """Wait until every pane shows a picture and no frame arrived for 1.5 s (the still frames are in)."""
    page.wait_for_function("() => ['axial','3d','sagittal','coronal'].every(p => window.__loads[p] > 0)",
                           timeout=120_000)
    last, quiet_since = -1, time.time()
    while time.time() - quiet_since < 1.5:
        now = sum(frames(page, p) for p in ("axial", "3d", "sagittal", "coronal"))
        if now != last:
            last, quiet_since = now, time.time()
        page.wait_for_timeout(100)


def renders(page) -> dict[str, int]:
    """The server's render count per pane (a Render() of the pane's window, whoever asked for it)."""
    return page.evaluate("() => window.trame.trigger('renders')")


def per_second(after: dict[str, int], before: dict[str, int], dt: float) -> str:
    return " ".join(f"{p}:{(after[p] - before[p]) / dt:.0f}" for p in after)


def rotate_fps(page, seconds: float) -> float:
    box = page.get_by_test_id("pane-3d").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    n0, t0, steps = frames(page, "3d"), time.time(), 0
    while time.time() - t0 < seconds:
        steps += 1
        page.mouse.move(cx + 160 * ((steps % 40) / 40 - 0.5), cy + 10 * ((steps % 7) / 7), steps=1)
        page.wait_for_timeout(16)
    rate = (frames(page, "3d") - n0) / (time.time() - t0)
    page.mouse.up()
    return rate


def scroll_fps(page, seconds: float) -> tuple[float, float]:
    """(axial frames/s, frames/s of the other two 2D panes) while the wheel turns over the axial pane."""
    box = page.get_by_test_id("pane-axial").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    others = ("sagittal", "coronal")
    n0, o0, t0, i = frames(page, "axial"), sum(frames(page, p) for p in others), time.time(), 0
    while time.time() - t0 < seconds:
        page.mouse.wheel(0, 100 if (i // 20) % 2 == 0 else -100)
        page.wait_for_timeout(16)
        i += 1
    dt = time.time() - t0
    return (frames(page, "axial") - n0) / dt, (sum(frames(page, p) for p in others) - o0) / dt / len(others)


def measure(variant: str, port: int, args: argparse.Namespace) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    proc = start(variant, port, args)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 2 * PANE_W + 60, "height": 2 * PANE_H + 60})
            page.add_init_script(WATCH)  # counts every picture, the first ones too
            page.goto(f"http://127.0.0.1:{port}/")
            settle(page)
            r0, t0 = renders(page), time.time()
            out = {"rotate_fps": rotate_fps(page, args.seconds)}
            print(f"  {variant} renders/s while rotating: {per_second(renders(page), r0, time.time() - t0)}", flush=True)
            settle(page)
            r0, t0 = renders(page), time.time()
            out["scroll_fps"], out["scroll_others_fps"] = scroll_fps(page, args.seconds)
            print(f"  {variant} renders/s while scrolling: {per_second(renders(page), r0, time.time() - t0)}", flush=True)
            others = frames(page, "sagittal") + frames(page, "coronal")
            settle(page)  # the wheel stopped: the crosshair panes' frames (and the still frame) follow
            out["frames_after_scroll"] = frames(page, "sagittal") + frames(page, "coronal") - others
            browser.close()
        return out
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", choices=("remote", "rca"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=18830)
    ap.add_argument("--ct", default=str(DEFAULT_CT), help="a DICOM folder, .zip or URL")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--variants", default="remote,rca")
    ap.add_argument("--scroll-panes", choices=("all2d", "one", "paced"), default="paced")
    ap.add_argument("--rotate-fps", type=float, default=None,
                    help="the 3D pane's level-of-detail frame rate while rotating (default: the app's)")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.ct, args.scroll_panes, args.rotate_fps)
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "rca" in variants and importlib.util.find_spec("trame_rca") is None:
        raise SystemExit("the rca variant needs trame-rca: .venv/bin/pip install -e '.[bench-views]' "
                         "(and apt-get install libturbojpeg0)")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for run in range(args.runs):
        for k, variant in enumerate(variants):  # interleaved: the shared machine's load hits both alike
            res = measure(variant, args.port + 2 * run + k, args)
            results[variant].append(res)
            print(f"run {run + 1} {variant}: " + ", ".join(f"{k}={v:.1f}" for k, v in res.items()), flush=True)
    print(f"\nvariant | 3D rotation fps | axial scroll fps | other 2D panes fps while scrolling "
          f"(medians of {args.runs}, {PANE_W}x{PANE_H} per pane, scroll re-renders {args.scroll_panes})")
    for variant, rows in results.items():
        meds = [statistics.median(r[key] for r in rows) for key in ("rotate_fps", "scroll_fps", "scroll_others_fps")]
        print(f"{variant} | " + " | ".join(f"{m:.1f}" for m in meds))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
