"""The same deployment inside Kitware's ``kitware/trame`` image: ``python -m webviewer.deploy.docker``.

Run after the image's ``/opt/trame/entrypoint.sh build`` (see ``deploy/Dockerfile``). It writes, with the code
`webviewer-demo` uses, the launcher configuration the image's ``run.sh`` starts (``/deploy/server/launcher.json``),
Apache's site (``/etc/apache2/sites-available/001-trame.conf``) and the launcher page over the generated www.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from webviewer.argtypes import positive_int
from webviewer.deploy import apache
from webviewer.deploy.launcher_config import APP_NAME, SessionCommand, launcher_config, write_launcher_config
from webviewer.deploy.www import overlay_launcher_page

log = logging.getLogger(__name__)

# the image's fixed layout (Kitware/trame docker/config and scripts)
PROXY_FILE = Path("/opt/trame/proxy-mapping.txt")
LAUNCHER_JSON = Path("/deploy/server/launcher.json")
LOG_DIR = Path("/deploy/server/logs/launcher")
WWW_DIR = Path("/deploy/server/www")
APACHE_SITE = Path("/etc/apache2/sites-available/001-trame.conf")
LAUNCHER_PORT = 9000
FIRST_SESSION_PORT = 9001
API_URL = "http://127.0.0.1:8081"  # deploy/webviewer-entrypoint.sh starts webviewer-api there


def session_command(executable: str, idle_timeout_s: int, api_url: str = API_URL) -> SessionCommand:
    return SessionCommand(executable=executable, idle_timeout_s=idle_timeout_s, extra_args=("--api", api_url))


def write_docker_config(*, sessions: int, idle_timeout_s: int, executable: str, launcher_json: Path = LAUNCHER_JSON,
                        apache_site: Path = APACHE_SITE, www_dir: Path = WWW_DIR, proxy_file: Path = PROXY_FILE,
                        log_dir: Path = LOG_DIR) -> None:
    """Write the launcher config, Apache's site and the launcher page for the image's paths."""
    config = launcher_config(sessions=sessions, first_port=FIRST_SESSION_PORT, launcher_port=LAUNCHER_PORT,
                             proxy_file=proxy_file, log_dir=log_dir,
                             command=session_command(executable, idle_timeout_s), launcher_host="127.0.0.1")
    write_launcher_config(config, launcher_json)
    door = apache.FrontDoor(listen_host="0.0.0.0", listen_port=80, www_dir=www_dir, proxy_file=proxy_file,
                            launcher_port=LAUNCHER_PORT, run_dir=Path("/var/log/apache2"))
    apache_site.write_text(apache.site_section(door), encoding="utf-8")
    overlay_launcher_page(www_dir, sessions=sessions, app_name=APP_NAME)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webviewer.deploy.docker", description=__doc__)
    parser.add_argument("--sessions", type=positive_int, default=4, help="size of the launcher's port pool (default 4)")
    parser.add_argument("--idle-timeout", type=positive_int, default=120, help="seconds before an idle session stops")
    parser.add_argument("--executable", default="/deploy/server/venv/bin/webviewer", help="the session command")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    write_docker_config(sessions=args.sessions, idle_timeout_s=args.idle_timeout, executable=args.executable)
    log.info("wrote %s, %s and the launcher page in %s", LAUNCHER_JSON, APACHE_SITE, WWW_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
