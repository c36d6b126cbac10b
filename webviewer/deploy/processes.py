"""Small process helpers for the demo supervisor: free ports, waiting for a URL, stopping a process tree."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (we can bind it ourselves)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT does not count
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_range(count: int, host: str = "127.0.0.1", low: int = 20000, high: int = 60000,
                    attempts: int = 200) -> int:
    """The first port of ``count`` consecutive free ports (the launcher's pool is a range)."""
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(low, high - count)
        if all(port_is_free(p, host) for p in range(base, base + count)):
            return base
    raise RuntimeError(f"could not find {count} consecutive free ports between {low} and {high}")


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, what: str, timeout_s: float,
               log_path: str | None = None) -> None:
    """Poll ``ready`` until it is true; fail early (with the log's tail) if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}{log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s{log_tail(log_path)}")
        time.sleep(0.2)


def log_tail(path: str | None, chars: int = 3000) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return "\n--- " + path + " ---\n" + f.read()[-chars:]


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError):
        return False


def descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


def stop_tree(proc: subprocess.Popen, name: str, grace_s: float = 10.0) -> None:
    """SIGTERM ``proc``'s process group (it was started in its own session) and every descendant; SIGKILL
    what is still alive after ``grace_s``."""
    if proc.poll() is not None and not descendants(proc.pid):
        return
    family = [*descendants(proc.pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs([*family, *_as_psutil(proc)], timeout=grace_s)
    for p in alive:
        log.warning("%s: pid %d did not stop on SIGTERM within %.0f s; killing it", name, p.pid, grace_s)
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _as_psutil(proc: subprocess.Popen) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return [psutil.Process(proc.pid)]
    return []
