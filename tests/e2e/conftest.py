"""Fixtures for the Playwright tests: a data folder (broken and slow CTs), the `webviewer` server, Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from realdata import require
from viewer_page import ViewerPage

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
SERVER_START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def break_zip_crcs(path: Path) -> None:
    """Flip every member's CRC-32 (local header and central directory): the headers still probe as DICOM,
    but any full read of a member fails its integrity check."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        cd_offset = zf.start_dir
    data = bytearray(path.read_bytes())
    for info in infos:
        local = info.header_offset
        assert data[local:local + 4] == b"PK\x03\x04"
        data[local + 14:local + 18] = ((info.CRC ^ 0xFFFFFFFF).to_bytes(4, "little"))
    pos = cd_offset
    while data[pos:pos + 4] == b"PK\x01\x02":
        crc = int.from_bytes(data[pos + 16:pos + 20], "little")
        data[pos + 16:pos + 20] = (crc ^ 0xFFFFFFFF).to_bytes(4, "little")
        name_len, extra_len, comment_len = (int.from_bytes(data[pos + o:pos + o + 2], "little") for o in (28, 30, 32))
        pos += 46 + name_len + extra_len + comment_len
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def e2e_data(tmp_path_factory) -> dict[str, Path]:
    """A data folder with a broken CT (bad CRC-32 in every member) and a slow CT (512x512x40, for cancel)."""
    from webviewer.api.samples import SeriesSpec, write_series, zip_folder

    base = tmp_path_factory.mktemp("webviewer-e2e")
    data, cache, work = base / "data", base / "cache", base / "work"
    data.mkdir()
    # members larger than the catalog's header probe, so the probe never reaches the (broken) CRC check
    write_series(work / "broken", SeriesSpec(rows=256, columns=256, slices=6, seed=5, description="Broken CT"))
    zip_folder(work / "broken", data / "broken-ct.zip")
    break_zip_crcs(data / "broken-ct.zip")
    write_series(work / "slow", SeriesSpec(rows=512, columns=512, slices=40, seed=6, description="Slow CT"))
    zip_folder(work / "slow", data / "slow-ct.zip")
    shutil.rmtree(work)
    return {"data": data, "cache": cache}


@pytest.fixture(scope="session")
def viewer_url(e2e_data) -> str:
    """`webviewer --server --samples tiny --data-dir <e2e data>` on a free loopback port."""
    yield from serve_viewer(e2e_data)


def serve_viewer(e2e_data, *extra_args: str):
    """Run `webviewer` (with ``extra_args``) on a free port; yields its URL once the API answers."""
    port = free_port()
    env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow",
           "WEBVIEWER_DATA_DIR": str(e2e_data["cache"])}
    log_path = e2e_data["cache"].parent / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    exe = Path(sys.executable).with_name("webviewer")
    cmd = [str(exe), "--server", "--port", str(port), "--samples", "tiny", "--data-dir", str(e2e_data["data"]),
           *extra_args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"webviewer exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/cts", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"webviewer did not answer within {SERVER_START_TIMEOUT_S}s:\n"
                                   f"{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Chromium via the sync Playwright API. Module scope: sync Playwright keeps an event loop running in the
    main thread while it is open, which would break the async tests that pytest runs after this folder."""
    require(CHROMIUM.exists(), f"Debian's chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def viewer(browser, viewer_url):
    """A fresh page on the app, connected (the app-ready marker is shown)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    vp = ViewerPage(page, viewer_url)
    vp.open()
    yield vp
    context.close()
