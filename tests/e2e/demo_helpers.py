"""The real `webviewer-demo` (Apache + wslink launcher + one process per session) for the Playwright tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
from playwright.sync_api import Browser, Page, expect
from realdata import require
from viewer_page import LONG, ViewerPage

START_TIMEOUT_S = 240
CT_SLOW = "slow-ct"
TINY = "Sample chest CT (tiny)"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT does not count
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Demo:
    proc: subprocess.Popen
    url: str
    log_path: Path
    port: int
    visitors: list = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        """webviewer-demo and every process it started (API, launcher, Apache, sessions)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        return []

    def session_process(self, secret: str) -> psutil.Process:
        """The session process started for the visitor that got ``secret`` (its --authKey)."""
        for p in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                if secret in p.cmdline():
                    return p
        raise AssertionError(f"no session process with that secret; demo log:\n{self.log()[-3000:]}")

    def listening_ports(self) -> set[int]:
        ports = set()
        for p in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                ports |= {c.laddr.port for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        return ports


def start_demo(tmp: Path, e2e_data: dict, *, sessions: int, idle_timeout: int, samples: str = "tiny") -> Demo:
    """`webviewer-demo --sessions N --idle-timeout S` on a free port, with the e2e data folder; waits until the
    front door serves its page."""
    require(shutil.which("apache2") or Path("/usr/sbin/apache2").exists(),
            "Apache httpd is not installed (apt-get install apache2)")
    port = free_port()
    log_path = tmp / f"demo-{port}.log"
    env = {**os.environ, "WEBVIEWER_DATA_DIR": str(e2e_data["cache"])}
    cmd = [str(Path(sys.executable).with_name("webviewer-demo")), "--port", str(port), "--samples", samples,
           "--data-dir", str(e2e_data["data"]), "--sessions", str(sessions), "--idle-timeout", str(idle_timeout)]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    demo = Demo(proc, f"http://127.0.0.1:{port}/", log_path, port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while "webviewer-demo ready at" not in demo.log():
        if proc.poll() is not None:
            raise RuntimeError(f"webviewer-demo exited with {proc.returncode}:\n{demo.log()[-4000:]}")
        if time.monotonic() > deadline:
            stop_demo(demo)
            raise RuntimeError(f"webviewer-demo not ready within {START_TIMEOUT_S}s:\n{demo.log()[-4000:]}")
        time.sleep(0.2)
    return demo


def stop_demo(demo: Demo) -> int:
    if demo.proc.poll() is None:
        demo.proc.send_signal(signal.SIGTERM)
    try:
        return demo.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        for p in reversed(demo.tree()):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        raise


def wait_exited(proc: psutil.Process, timeout_s: float) -> bool:
    """Wait until ``proc`` has exited (a zombie counts: the launcher reaps its sessions lazily)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


@dataclass
class Visitor:
    """One browser context through the front door, and the session the launcher gave it."""

    context: object
    page: Page
    viewer: ViewerPage
    session: dict | None


def visit(browser: Browser, demo: Demo) -> Visitor:
    """Open the demo in a new browser context; returns once the viewer is connected, or the launcher refused
    (``session`` is then None)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="en-US")
    page = context.new_page()
    visitor = Visitor(context, page, ViewerPage(page, demo.url), None)
    demo.visitors.append(visitor)
    opened = start_session(visitor, lambda: page.goto(demo.url))
    return opened


def start_session(visitor: Visitor, action) -> Visitor:
    """Run ``action`` (open the page, click retry); record the session the launcher page then opens."""
    urls: list[str] = []
    visitor.page.on("request", lambda r: urls.append(r.url))
    with visitor.page.expect_response(lambda r: r.url.endswith("/launcher/"), timeout=LONG) as answer:
        action()
    if answer.value.status != 200:
        visitor.session = None
        return visitor
    expect(visitor.viewer.tid("app-ready")).to_be_visible(timeout=LONG)
    # the launcher page opened session.html?sessionURL=...&secret=... (trame's client then hides the query)
    query = parse_qs(urlsplit(next(u for u in urls if "/session.html?" in u)).query)
    session_url = query["sessionURL"][0]
    visitor.session = {"id": parse_qs(urlsplit(session_url).query)["sessionId"][0], "url": session_url,
                       "secret": query["secret"][0]}
    return visitor
