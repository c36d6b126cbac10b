"""wslink launcher configuration (the JSON that ``python -m wslink.launcher CONFIG`` reads).

Same shape as Kitware's trame Docker image (``docker/config/default-launcher.json`` filled in by
``scripts/generate_launcher_config.py``): one application, a port pool of ``sessions`` ports, and a session URL
that the front door routes by session id (``/proxy?sessionId=${id}&path=ws``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

APP_NAME = "webviewer"
#: trame prints this once its server listens (Kitware's generate_launcher_config.py waits for it too)
READY_LINE = "App running at"
#: the browser replaces USE_HOST with the page's host (and ws/wss with its scheme)
SESSION_URL = "ws://USE_HOST/proxy?sessionId=${id}&path=ws"
LAUNCHER_ENDPOINT = "paraview"


@dataclass(frozen=True)
class SessionCommand:
    """What every session process runs: `webviewer --server` on the port and secret the launcher picks."""

    executable: str = "webviewer"
    idle_timeout_s: int = 120
    session_host: str = "127.0.0.1"
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def argv(self) -> list[str]:
        """The command template; ``${port}`` and ``${secret}`` are filled in by the launcher."""
        return [self.executable, "--server", "--host", self.session_host, "--port", "${port}",
                "--authKey", "${secret}", "--timeout", str(self.idle_timeout_s), *self.extra_args]


def launcher_config(*, sessions: int, first_port: int, launcher_port: int, proxy_file: Path, log_dir: Path,
                    command: SessionCommand, start_timeout_s: int = 60, launcher_host: str = "127.0.0.1",
                    content: str = "") -> dict:
    """The launcher's configuration: ``sessions`` ports from ``first_port``, one app named ``webviewer``."""
    if sessions < 1:
        raise ValueError(f"the demo needs at least one session, got {sessions}")
    return {
        "configuration": {
            "host": launcher_host,
            "port": launcher_port,
            "endpoint": LAUNCHER_ENDPOINT,
            "content": content,
            "proxy_file": str(proxy_file),
            "sessionURL": SESSION_URL,
            "timeout": start_timeout_s,
            "log_dir": str(log_dir),
            # only "application" is read from the page, and only this value is accepted
            "sanitize": {"application": {"type": "inList", "list": [APP_NAME], "default": APP_NAME}},
            "fields": [],
        },
        "resources": [{"host": command.session_host, "port_range": [first_port, first_port + sessions - 1]}],
        "properties": {},
        "apps": {APP_NAME: {"cmd": command.argv(), "ready_line": READY_LINE}},
    }


def write_launcher_config(config: dict, path: Path) -> Path:
    """Write the configuration as JSON (the launcher reads JSON with comments; we write plain JSON)."""
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path
