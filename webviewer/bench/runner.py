"""Running things for the benchmark: the CT API in its own process, and one `webviewer-load` process per run."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psutil

from webviewer.errors import WebViewerError

log = logging.getLogger(__name__)

RUN_FIELDS = ("mode", "run", "total_s", "first_slice_s", "peak_above_baseline_bytes", "volume_bytes",
              "components_peak_bytes", "states")


class BenchError(WebViewerError):
    """The benchmark could not run (server did not start, a load failed, bad arguments)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch_json(url: str, timeout: float = 10.0) -> dict:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def content_length(url: str, timeout: float = 10.0) -> int | None:
    """The archive size from a HEAD request, if the server gives one."""
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            value = response.headers.get("Content-Length")
            return int(value) if value else None
    except (urllib.error.URLError, ValueError, OSError):
        return None


def with_query(url: str, **params: object) -> str:
    """The URL with these query parameters set (None values are left out)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items() if v is not None})
    return urlunsplit(parts._replace(query=urlencode(query)))


def is_api_archive_url(url: str) -> bool:
    """True for our API's archive URLs, which take the ?rate=&latency= throttle query."""
    path = urlsplit(url).path
    return path.startswith("/api/cts/") and path.endswith("/archive")


class ApiServer:
    """`python -m webviewer.cli.api` on a free port, in its own process; a context manager."""

    def __init__(self, samples: list[str], *, data_dir: Path | None = None, sample_dir: Path | None = None,
                 start_timeout_s: float = 120.0) -> None:
        self.samples = samples
        self.data_dir = data_dir
        self.sample_dir = sample_dir
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "webviewer.cli.api", "--host", "127.0.0.1", "--port", str(self.port),
               "--log-level", "WARNING"]
        if self.samples:
            cmd += ["--samples", ",".join(self.samples)]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.sample_dir is not None:
            cmd += ["--sample-dir", str(self.sample_dir)]
        return cmd

    def __enter__(self) -> ApiServer:
        log.info("starting the CT API: %s", " ".join(self.command()))
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the CT API exited with status {self.process.returncode}: {self.output()}")
            try:
                fetch_json(f"{self.base_url}/api/cts", timeout=2.0)
                return self
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise BenchError(f"the CT API did not answer within {self.start_timeout_s:.0f} s: {self.output()}")

    def output(self) -> str:
        """The last lines the server wrote (for error messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:].strip()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def volume_checksum(npz_path: Path) -> str:
    """SHA-256 over the volume's voxels (dtype, shape, bytes) and geometry, from a `webviewer-load --output` file."""
    import numpy as np

    digest = hashlib.sha256()
    with np.load(npz_path) as data:
        hu = np.ascontiguousarray(data["hu"])
        digest.update(f"{hu.dtype.str}{hu.shape}".encode())
        digest.update(hu.tobytes())
        for key in ("spacing", "origin", "direction"):
            digest.update(np.asarray(data[key], dtype=np.float64).round(6).tobytes())
    return digest.hexdigest()


def run_load(source: str, mode: str, *, verify: bool = False, extra_args: Sequence[str] = (),
             timeout_s: float = 1800.0) -> dict:
    """One load in a fresh `python -m webviewer.cli.load SOURCE --mode M --json --quiet` process.

    Returns the parsed JSON object; with `verify`, also a `volume_sha256` computed from its `--output` file.
    """
    cmd = [sys.executable, "-m", "webviewer.cli.load", source, "--mode", mode, "--json", "--quiet", *extra_args]
    with tempfile.TemporaryDirectory(prefix="webviewer-bench-") as tmp:
        npz = Path(tmp) / "volume.npz"
        if verify:
            cmd += ["--output", str(npz)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{mode} load did not finish within {timeout_s:.0f} s") from exc
        if proc.returncode != 0:
            message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "(no message)"
            raise BenchError(f"{mode} load failed with status {proc.returncode}: {message}")
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{mode} load printed no JSON object: {proc.stdout[:200]!r}") from exc
        if verify:
            result["volume_sha256"] = volume_checksum(npz)
    return result


def run_record(mode: str, run: int, load: Mapping) -> dict:
    """A `runs[]` entry from one `webviewer-load --json` object (requested mode; extras after the listed fields)."""
    timings = load.get("timings") or {}
    memory = load.get("memory") or {}
    record = {
        "mode": mode,
        "run": run,
        "total_s": timings.get("total_s"),
        "first_slice_s": timings.get("first_slice_s"),
        "peak_above_baseline_bytes": memory.get("peak_above_baseline_bytes"),
        "volume_bytes": memory.get("volume_bytes"),
        "components_peak_bytes": dict(memory.get("components_peak_bytes") or {}),
        "states": dict(timings.get("states") or {}),
        # extras, not in the list: what the volume was and whether the mode fell back
        "dimensions": load.get("dimensions"),
        "dtype": load.get("dtype"),
        "volume_sha256": load.get("volume_sha256") or load.get("checksum"),
        "fallback": load.get("fallback"),
        "bytes_downloaded": (load.get("bytes") or {}).get("downloaded"),
        "bytes_dicom": (load.get("bytes") or {}).get("dicom"),
    }
    return record


def volumes_agree(runs: list[Mapping]) -> bool:
    """True when every run produced the same dimensions, dtype, volume bytes (and checksum, when known)."""
    keys = ("dimensions", "dtype", "volume_bytes", "volume_sha256")
    signatures = {tuple(json.dumps(r.get(k)) for k in keys) for r in runs}
    return len(signatures) <= 1


def machine_info() -> dict:
    """Which machine produced the figures: CPU model, CPU count, RAM, OS, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = psutil.virtual_memory().total / 1e9
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gb": memory_gb,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}
