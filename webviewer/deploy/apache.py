"""Apache httpd configuration for the front door, after Kitware's ``docker/config/apache/001-trame.tpl``.

One port serves the page (static files), forwards ``/launcher/`` to wslink's launcher, and tunnels each
``/proxy?sessionId=ID&path=ws`` WebSocket to its session's port through a ``RewriteMap`` over the launcher's
proxy-mapping file (``ID host:port`` lines). Only the session's ``/ws`` path is reachable this way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

MODULES_DIR = Path("/usr/lib/apache2/modules")
MODULES = ("mpm_event", "authz_core", "dir", "mime", "alias", "headers", "rewrite", "proxy", "proxy_http",
           "proxy_wstunnel")
#: the launcher assigns uuid1 ids; anything else never reaches a session
SESSION_ID_RE = "[0-9a-fA-F-]{36}"


@dataclass(frozen=True)
class FrontDoor:
    """Where the front door listens and what it forwards to."""

    listen_host: str
    listen_port: int
    www_dir: Path
    proxy_file: Path
    launcher_port: int
    run_dir: Path
    launcher_endpoint: str = "paraview"


def find_apache() -> str | None:
    """The httpd binary (Debian's ``apache2``), or None."""
    return shutil.which("apache2") or (str(Path("/usr/sbin/apache2")) if Path("/usr/sbin/apache2").exists()
                                       else None) or shutil.which("httpd")


def global_section(door: FrontDoor, *, modules_dir: Path = MODULES_DIR, run_as_root: bool | None = None) -> str:
    """Process-wide directives: modules, pid/log files in ``run_dir``, the listening socket."""
    root = os.geteuid() == 0 if run_as_root is None else run_as_root
    lines = [f"LoadModule {m}_module {modules_dir}/mod_{m}.so" for m in MODULES]
    lines += [
        f'ServerRoot "{door.run_dir}"',
        f'DefaultRuntimeDir "{door.run_dir}"',
        f'PidFile "{door.run_dir}/apache2.pid"',
        f'ErrorLog "{door.run_dir}/error.log"',
        # the path without its query: session.html?...&secret=... must not land in a log file
        'LogFormat "%h %t \\"%m %U %H\\" %>s %b %D" demo',
        f'CustomLog "{door.run_dir}/access.log" demo',
        "LogLevel warn",
        "TypesConfig /etc/mime.types",
        f"ServerName {door.listen_host if door.listen_host != '0.0.0.0' else '127.0.0.1'}",
        f"Listen {door.listen_host}:{door.listen_port}",
        "Timeout 3600",
        "ServerTokens Prod",
    ]
    if root:  # Apache refuses to serve as root; its workers drop to www-data
        lines += ["User www-data", "Group www-data"]
    return "\n".join(lines) + "\n"


def site_section(door: FrontDoor) -> str:
    """The virtual host: Kitware's 001-trame.tpl with the session path restricted to ``ws``."""
    launcher = f"http://127.0.0.1:{door.launcher_port}/{door.launcher_endpoint}/"
    return f"""
<VirtualHost *:*>
  DocumentRoot "{door.www_dir}"
  DirectoryIndex index.html
  <Directory "{door.www_dir}">
    Options FollowSymLinks
    AllowOverride None
    Require all granted
  </Directory>
  <Files "session.html">
    Header set Cache-Control "no-store"
  </Files>

  # the launcher: POST /launcher/ starts a session
  ProxyPass /launcher/ {launcher}
  ProxyPassReverse /launcher/ {launcher}

  # each session's WebSocket, routed by its id through the launcher's proxy-mapping file
  RewriteEngine On
  RewriteMap session-to-port "txt:{door.proxy_file}"
  # trame's client lowercases the session URL (sessionid=...): [NC], as in Kitware's template
  RewriteCond %{{QUERY_STRING}} ^sessionId=({SESSION_ID_RE})&path=ws$ [NC]
  RewriteCond ${{session-to-port:%1|NONE}} ^([0-9.]+:[0-9]+)$
  RewriteRule ^/proxy$ ws://%1/ws [P,L]
  RewriteRule ^/proxy$ - [R=404,L]
</VirtualHost>
"""


def apache_config(door: FrontDoor, **kwargs) -> str:
    """The whole ``httpd.conf`` for ``apache2 -f CONF -DFOREGROUND``."""
    return global_section(door, **kwargs) + site_section(door)


def write_apache_config(door: FrontDoor, path: Path, **kwargs) -> Path:
    path.write_text(apache_config(door, **kwargs), encoding="utf-8")
    return path


def apache_command(conf: Path, binary: str) -> list[str]:
    """Foreground Apache under our own config file; nothing system-wide is read or changed."""
    return [binary, "-f", str(conf), "-DFOREGROUND"]
