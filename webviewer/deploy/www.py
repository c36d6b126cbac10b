"""The front door's static folder: trame's client (as ``python -m trame.tools.www`` writes it, like Kitware's
``generate_www.py``), the session page, and the launcher page from ``static/launcher``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

LAUNCHER_STATIC = Path(__file__).resolve().parents[2] / "static" / "launcher"
#: a reload of the session page (its query was removed by trame's client) goes back to the launcher page
SESSION_GUARD = ('<script>if (!new URLSearchParams(window.location.search).has("sessionURL")) '
                 'window.location.replace("./");</script>')


def write_trame_client(out: Path, python: str = sys.executable) -> None:
    """trame's vue3 client and every installed module's assets (vuetify, vtk, plotly ...)."""
    cmd = [python, "-m", "trame.tools.www", "--output", str(out), "--client-type", "vue3"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (out / "index.html").exists():
        raise RuntimeError(f"could not write trame's client into {out}: {done.stderr.strip()[-2000:]}")


def session_page(trame_index: str, app_name: str) -> str:
    """trame's index.html for one app, with the reload guard first in <head>."""
    html = trame_index.replace('data-app-name="trame"', f'data-app-name="{app_name}"')
    return html.replace("<head>", "<head>\n    " + SESSION_GUARD, 1)


def build_www(out: Path, *, sessions: int, app_name: str, python: str = sys.executable) -> Path:
    """Fill ``out``: trame's client, ``session.html``, the launcher page (``index.html``) and ``demo.json``."""
    out.mkdir(parents=True, exist_ok=True)
    write_trame_client(out, python)
    overlay_launcher_page(out, sessions=sessions, app_name=app_name)
    make_readable(out)
    return out


def overlay_launcher_page(www: Path, *, sessions: int, app_name: str) -> None:
    """Over trame's generated client in ``www``: its page becomes ``session.html``; the launcher page becomes
    ``index.html``; ``demo.json`` tells the launcher page the application and the session count."""
    if not (www / "session.html").exists():  # not yet overlaid: index.html is still trame's page
        trame_index = (www / "index.html").read_text(encoding="utf-8")
        (www / "session.html").write_text(session_page(trame_index, app_name), encoding="utf-8")
    for item in LAUNCHER_STATIC.iterdir():
        shutil.copy(item, www / item.name)
    (www / "demo.json").write_text(json.dumps({"application": app_name, "sessions": sessions}), encoding="utf-8")


def make_readable(root: Path) -> None:
    """Apache's workers run as www-data: every folder and file under ``root`` must be readable by others."""
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)
