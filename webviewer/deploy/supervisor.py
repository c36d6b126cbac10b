"""The demo supervisor: starts the CT API, wslink's launcher and Apache; stops all of them (and every session)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from webviewer.deploy import apache, processes
from webviewer.deploy.launcher_config import APP_NAME, SessionCommand, launcher_config, write_launcher_config
from webviewer.deploy.www import build_www

log = logging.getLogger(__name__)
API_START_TIMEOUT_S = 900  # the first start generates the sample CTs
START_TIMEOUT_S = 60


@dataclass
class DemoOptions:
    """What `webviewer-demo` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8080
    sessions: int = 1
    idle_timeout_s: int = 120
    api_url: str | None = None
    data_dir: str | None = None
    samples: str | None = None
    session_args: list[str] = field(default_factory=list)  # passed to every session (--orthanc ...)
    start_timeout_s: int = START_TIMEOUT_S


def _bin(name: str) -> str:
    """A console script of this environment (next to the running Python), else from PATH."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else (shutil.which(name) or name)


class Demo:
    """One demo deployment; ``start()`` brings it up, ``stop()`` takes everything down, in reverse order."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.run_dir = Path(tempfile.mkdtemp(prefix="webviewer-demo-"))
        os.chmod(self.run_dir, 0o755)  # Apache's workers (www-data) read the www folder and the mapping file
        self.procs: dict[str, subprocess.Popen] = {}
        self.api_url = options.api_url
        self.launcher_port = 0
        self.first_session_port = 0

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return f"http://{host}:{self.options.port}/"

    def start(self) -> None:
        apache_bin = apache.find_apache()
        if apache_bin is None:
            raise RuntimeError("Apache httpd is not installed: apt-get install apache2")
        if not processes.port_is_free(self.options.port, self.options.host):
            raise RuntimeError(f"port {self.options.port} on {self.options.host} is already in use")
        if self.api_url is None and not self._orthanc_only():
            self._start_api()
        self._start_launcher()
        self._start_apache(apache_bin)

    def _orthanc_only(self) -> bool:
        return "--orthanc-only" in self.options.session_args

    def _spawn(self, name: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        log_path = self.run_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=kwargs.pop("stdout", out), stderr=out, start_new_session=True,
                                    cwd=self.run_dir, **kwargs)
        self.procs[name] = proc
        log.debug("%s: pid %d: %s", name, proc.pid, " ".join(cmd))
        return proc

    def _start_api(self) -> None:
        o = self.options
        cmd = [_bin("webviewer-api"), "--host", "127.0.0.1", "--port", "0"]
        if o.data_dir:
            cmd += ["--data-dir", o.data_dir]
        if o.samples or not o.data_dir:
            cmd += ["--samples", o.samples or "tiny,medium,seed"]
        proc = self._spawn("api", cmd, stdout=subprocess.PIPE, text=True)
        log.info("CT API starting (the first start generates the sample CTs) ...")
        for line in proc.stdout:  # "CT API on http://127.0.0.1:PORT/api/cts (...)" once it listens
            if line.startswith("CT API on "):
                self.api_url = line.split()[3].removesuffix("/api/cts")
                break
        else:
            raise RuntimeError(f"the CT API exited with status {proc.wait()}"
                               f"{processes.log_tail(str(self.run_dir / 'api.log'))}")
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining its stdout
        log.info("CT API at %s", self.api_url)

    def _session_args(self) -> list[str]:
        args = list(self.options.session_args)
        if self.api_url:
            args = ["--api", self.api_url, *args]
        return args

    def _start_launcher(self) -> None:
        o = self.options
        self.launcher_port = processes.free_port()
        self.first_session_port = processes.free_port_range(o.sessions)
        (self.run_dir / "sessions").mkdir()
        command = SessionCommand(executable=_bin("webviewer"), idle_timeout_s=o.idle_timeout_s,
                                 extra_args=tuple(self._session_args()))
        config = launcher_config(sessions=o.sessions, first_port=self.first_session_port,
                                 launcher_port=self.launcher_port, proxy_file=self.proxy_file,
                                 log_dir=self.run_dir / "sessions", command=command,
                                 start_timeout_s=o.start_timeout_s)
        self.proxy_file.write_text("")
        conf = write_launcher_config(config, self.run_dir / "launcher.json")
        env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
        proc = self._spawn("launcher", [sys.executable, "-m", "webviewer.deploy.launcher", str(conf)], env=env)
        processes.wait_until(lambda: not processes.port_is_free(self.launcher_port), proc, "the launcher",
                             START_TIMEOUT_S, str(self.run_dir / "launcher.log"))
        log.info("launcher on 127.0.0.1:%d; session ports %d-%d", self.launcher_port, self.first_session_port,
                 self.first_session_port + o.sessions - 1)

    @property
    def proxy_file(self) -> Path:
        return self.run_dir / "proxy-mapping.txt"

    def _start_apache(self, binary: str) -> None:
        www = build_www(self.run_dir / "www", sessions=self.options.sessions, app_name=APP_NAME)
        door = apache.FrontDoor(listen_host=self.options.host, listen_port=self.options.port, www_dir=www,
                                proxy_file=self.proxy_file, launcher_port=self.launcher_port,
                                run_dir=self.run_dir)
        conf = apache.write_apache_config(door, self.run_dir / "httpd.conf")
        proc = self._spawn("apache", apache.apache_command(conf, binary))
        processes.wait_until(lambda: processes.http_ok(self.url + "demo.json"), proc, "Apache",
                             START_TIMEOUT_S, str(self.run_dir / "error.log"))

    def failed_component(self) -> str | None:
        """The name of a component that exited on its own (the demo cannot go on without it), else None."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def stop(self) -> None:
        """Stop Apache, the launcher with every session it started, then the API; remove the run folder."""
        for name in ("apache", "launcher", "api"):
            if name in self.procs:
                processes.stop_tree(self.procs[name], name)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        log.info("stopped")
