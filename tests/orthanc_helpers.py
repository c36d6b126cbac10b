"""A real Orthanc for the tests: started on a free loopback port with its own storage and the DICOMweb plugin,
a test user, the real series uploaded through the REST API; stopped by PID.

In CI (CI=true) a missing Orthanc binary or plugin is a failure (``conftest.require``), locally a skip.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from realdata import REAL_SERIES, real_series_dir, require

log = logging.getLogger(__name__)

ORTHANC_BIN = os.environ.get("ORTHANC_BIN") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = os.environ.get("ORTHANC_DICOMWEB_PLUGIN", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "viewer", "test-secret-7"
DICOMDIR_SOP_CLASS = re.compile(rb"1\.2\.840\.10008\.1\.3\.10(?![0-9.])")


def require_orthanc() -> None:
    """Skip locally, fail in CI, when Orthanc or its DICOMweb plugin is not installed."""
    require(Path(ORTHANC_BIN).is_file(), f"Orthanc not installed ({ORTHANC_BIN}); apt-get install orthanc")
    require(Path(DICOMWEB_PLUGIN).is_file(),
            f"Orthanc DICOMweb plugin not installed ({DICOMWEB_PLUGIN}); apt-get install orthanc-dicomweb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class UploadedSeries:
    name: str  # folder name in shared/data/real
    folder: Path
    orthanc_id: str
    study_id: str
    study_uid: str
    series_uid: str
    instances: int
    not_uploaded: list[str] = field(default_factory=list)  # DICOMDIR, SOURCE.md, ...


class OrthancServer:
    """One Orthanc process: ``start()``, ``stop()`` (SIGTERM, waits), ``kill()`` (SIGKILL), restartable."""

    def __init__(self, workdir: Path, *, auth: bool = True, port: int | None = None) -> None:
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.port = port or free_port()
        self.auth_enabled = auth
        self.proc: subprocess.Popen | None = None
        self.series: dict[str, UploadedSeries] = {}

    # -- addresses --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str] | None:
        return (USER, PASSWORD) if self.auth_enabled else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def archive_url(self, name: str) -> str:
        return f"{self.url}/series/{self.series[name].orthanc_id}/archive"

    def study_archive_url(self, name: str) -> str:
        return f"{self.url}/studies/{self.series[name].study_id}/archive"

    def dicomweb_url(self, name: str) -> str:
        s = self.series[name]
        return f"{self.url}/dicom-web/studies/{s.study_uid}/series/{s.series_uid}"

    # -- process ----------------------------------------------------------------------------------------
    def config(self) -> dict:
        cfg = {
            "Name": "webviewer-test",
            "StorageDirectory": str(self.storage),
            "IndexDirectory": str(self.storage),
            "HttpPort": self.port,
            "HttpBindAddress": "127.0.0.1",
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "AuthenticationEnabled": self.auth_enabled,
            "StorageCompression": False,
            "ConcurrentJobs": 1,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        if self.auth_enabled:
            cfg["RegisteredUsers"] = {USER: PASSWORD}
        return cfg

    def start(self, timeout_s: float = 30.0) -> None:
        require_orthanc()
        self.storage.mkdir(parents=True, exist_ok=True)
        cfg_path = self.workdir / "orthanc.json"
        cfg_path.write_text(json.dumps(self.config(), indent=1))
        log_file = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([ORTHANC_BIN, str(cfg_path)], stdout=log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; see {self.workdir / 'orthanc.log'}")
            try:
                self.get_json("/system")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s; see {self.workdir / 'orthanc.log'}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM by PID (Orthanc takes 2-5 s), SIGKILL if it does not exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL by PID: the server vanishes mid-answer (the connection drops)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    # -- REST -------------------------------------------------------------------------------------------
    def _request(self, path: str, data: bytes | None = None, method: str = "GET") -> bytes:
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if self.auth_enabled:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()

    def get_json(self, path: str):
        return json.loads(self._request(path))

    def upload_folder(self, name: str, folder: Path) -> UploadedSeries:
        """POST every DICOM file of ``folder`` to /instances (DICOMDIR and non-DICOM files are left out)."""
        files, not_uploaded = [], []
        for p in sorted(folder.iterdir()):
            if not p.is_file():
                continue
            with open(p, "rb") as f:
                head = f.read(1024)
            if head[128:132] != b"DICM" or DICOMDIR_SOP_CLASS.search(head):
                not_uploaded.append(p.name)  # Orthanc rejects a DICOMDIR (404 "Inexistent tag"); text is no DICOM
                continue
            files.append(p)

        def post(p: Path) -> dict:
            try:
                return json.loads(self._request("/instances", p.read_bytes(), "POST"))
            except urllib.error.HTTPError as exc:
                raise RuntimeError(f"Orthanc rejected {p}: HTTP {exc.code} {exc.read()[:300]!r}") from exc

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, files))
        series_ids = {a["ParentSeries"] for a in answers}
        assert len(series_ids) == 1, f"{folder} holds {len(series_ids)} series"
        series_id = series_ids.pop()
        s = self.get_json(f"/series/{series_id}")
        study = self.get_json(f"/studies/{s['ParentStudy']}")
        up = UploadedSeries(
            name=name,
            folder=folder,
            orthanc_id=series_id,
            study_id=s["ParentStudy"],
            study_uid=study["MainDicomTags"]["StudyInstanceUID"],
            series_uid=s["MainDicomTags"]["SeriesInstanceUID"],
            instances=len(s["Instances"]),
            not_uploaded=not_uploaded,
        )
        self.series[name] = up
        return up


def start_orthanc_with(tmp_dir: Path, names: list[str], *, auth: bool = True) -> OrthancServer:
    """Start an Orthanc and upload the named real series (skips/fails like ``real_series_dir``)."""
    require_orthanc()
    folders = {n: real_series_dir(n) for n in names}
    server = OrthancServer(tmp_dir, auth=auth)
    server.start()
    try:
        for n, folder in folders.items():
            server.upload_folder(n, folder)
    except BaseException:
        server.stop()
        raise
    return server


_SESSION: dict[str, OrthancServer] = {}


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> OrthancServer:
    """One authenticated Orthanc per test session with the three real series, each uploaded once.

    Test modules import this fixture, so pytest holds one definition per module: the server itself is a
    singleton here, started by the first module that needs it and stopped (by PID) at the end of the session.
    """
    server = _SESSION.get("server")
    if server is None or not server.running():
        server = start_orthanc_with(tmp_path_factory.mktemp("orthanc"), sorted(REAL_SERIES))
        _SESSION["server"] = server
    try:
        yield server
    finally:
        _SESSION.pop("server", None)
        server.stop()


class KillingProxy:
    """A loopback TCP proxy in front of Orthanc that kills Orthanc (SIGKILL, by PID) once one answer has carried
    ``kill_after`` bytes, then forwards what Orthanc had already sent and closes: a server stopped mid-load.

    Deterministic: the proxy stops reading while Orthanc dies, so TCP flow control bounds what still arrives
    (socket buffers, a few MB) far below a 32-75 MB series.
    """

    def __init__(self, server: OrthancServer, kill_after: int = 2 << 20) -> None:
        self.server = server
        self.kill_after = kill_after
        self.killed = False
        self._srv = None

    async def start(self) -> str:
        import asyncio

        self._srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._srv.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._srv is not None:
            self._srv.close()
            await self._srv.wait_closed()

    async def _handle(self, reader, writer) -> None:
        import asyncio

        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.server.port)
        except OSError:
            writer.close()
            return

        async def upstream() -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await reader.read(65536):
                    up_w.write(data)
                    await up_w.drain()

        up_task = asyncio.ensure_future(upstream())
        sent = 0
        try:
            while True:
                try:
                    data = await up_r.read(65536)
                except (OSError, ConnectionError):
                    break
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                sent += len(data)
                if sent >= self.kill_after and not self.killed:
                    self.killed = True
                    self.server.kill()  # blocks this loop a few ms: nothing more is read meanwhile
        except (OSError, ConnectionError):
            pass
        finally:
            up_task.cancel()
            for w in (writer, up_w):
                with contextlib.suppress(Exception):
                    w.close()
