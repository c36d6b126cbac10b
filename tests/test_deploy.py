"""The demo deployment's generated configuration (launcher, Apache, www), sizing and arguments."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from realdata import require

from webviewer.cli.demo import build_parser, options_from_args
from webviewer.deploy import apache
from webviewer.deploy.launcher import generate_secret, launch_request_error
from webviewer.deploy.launcher_config import SessionCommand, launcher_config, write_launcher_config
from webviewer.deploy.sizing import MB, default_sessions
from webviewer.deploy.www import SESSION_GUARD, session_page


def _config(tmp_path: Path, sessions: int = 3) -> dict:
    cmd = SessionCommand(executable="/venv/bin/webviewer", idle_timeout_s=45,
                         extra_args=("--api", "http://127.0.0.1:9999"))
    return launcher_config(sessions=sessions, first_port=21000, launcher_port=20999,
                           proxy_file=tmp_path / "map.txt", log_dir=tmp_path, command=cmd)


def test_launcher_config_has_wslinks_required_keys_a_port_pool_and_the_session_command(tmp_path):
    config = _config(tmp_path)
    required = {"endpoint", "host", "port", "proxy_file", "sessionURL", "timeout", "log_dir", "fields"}
    assert required <= set(config["configuration"])
    assert config["resources"] == [{"host": "127.0.0.1", "port_range": [21000, 21002]}]
    cmd = config["apps"]["webviewer"]["cmd"]
    assert cmd[:2] == ["/venv/bin/webviewer", "--server"]
    assert cmd[cmd.index("--port") + 1] == "${port}" and cmd[cmd.index("--authKey") + 1] == "${secret}"
    assert cmd[cmd.index("--timeout") + 1] == "45"  # reaped explicitly, whatever webviewer's default is
    assert cmd[-2:] == ["--api", "http://127.0.0.1:9999"]
    assert "${id}" in config["configuration"]["sessionURL"]


def test_launcher_config_is_read_back_by_wslinks_own_parser(tmp_path):
    from wslink.launcher import parseConfig

    path = write_launcher_config(_config(tmp_path), tmp_path / "launcher.json")

    class Args:
        config = [str(path)]

    assert parseConfig(Args())["configuration"]["port"] == 20999


def test_launcher_config_refuses_zero_sessions(tmp_path):
    with pytest.raises(ValueError, match="at least one session"):
        _config(tmp_path, sessions=0)


def _door(tmp_path: Path) -> apache.FrontDoor:
    return apache.FrontDoor(listen_host="127.0.0.1", listen_port=18080, www_dir=tmp_path / "www",
                            proxy_file=tmp_path / "map.txt", launcher_port=20999, run_dir=tmp_path)


def test_apache_config_routes_the_launcher_and_only_the_ws_path_of_mapped_sessions(tmp_path):
    conf = apache.apache_config(_door(tmp_path), run_as_root=True)
    assert "Listen 127.0.0.1:18080" in conf
    assert "ProxyPass /launcher/ http://127.0.0.1:20999/paraview/" in conf
    assert f'RewriteMap session-to-port "txt:{tmp_path}/map.txt"' in conf
    assert re.search(r"RewriteRule \^/proxy\$ ws://%1/ws \[P,L\]", conf)
    assert "User www-data" in conf
    assert "User " not in apache.apache_config(_door(tmp_path), run_as_root=False)
    for module in ("proxy_wstunnel", "rewrite", "proxy_http"):
        assert f"LoadModule {module}_module" in conf


def test_apache_accepts_the_generated_config(tmp_path):
    binary = apache.find_apache()
    require(binary is not None, "Apache httpd is not installed (apt-get install apache2)")
    (tmp_path / "www").mkdir()
    (tmp_path / "map.txt").write_text("")  # the launcher writes it before Apache starts
    conf = apache.write_apache_config(_door(tmp_path), tmp_path / "httpd.conf")
    done = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Syntax OK" in done.stderr


@pytest.mark.parametrize("body, ok", [
    (b'{"application": "webviewer"}', True),
    (b'"application"', False),
    (b"[1, 2]", False),
    (b"{", False),
    (b"", False),
    (b'{"application": "other"}', False),
    (b'{"application": "webviewer", "secret": "x"}', False),
    (b'{"application": "webviewer", "pad": "' + b"x" * 5000 + b'"}', False),
])
def test_launch_requests_other_than_ours_are_refused_with_a_reason(body, ok):
    error = launch_request_error(body)
    assert (error is None) == ok
    if not ok:
        assert "launch request" in error


def test_secrets_are_long_and_distinct():
    values = {generate_secret() for _ in range(50)}
    assert len(values) == 50 and all(len(v) == 22 and v.isalnum() for v in values)


def test_default_sessions_divide_free_memory_by_one_sessions_budget():
    sizing = default_sessions(10_000 * MB, idle_mb=300, budget_mb=700)
    assert sizing.sessions == 10
    assert "10,000 MB" in sizing.explain() and "300 MB idle" in sizing.explain()
    assert default_sessions(100 * MB, idle_mb=300, budget_mb=700).sessions == 1  # at least one


def test_session_page_redirects_a_reload_without_session_to_the_launcher_page():
    page = session_page('<html data-app-name="trame"><head><base href="." /></head></html>', "webviewer")
    assert 'data-app-name="webviewer"' in page
    assert page.index(SESSION_GUARD) < page.index("<base")


@pytest.mark.parametrize("argv, message", [
    (["--orthanc-only"], "--orthanc-only needs"),
])
def test_demo_arguments_are_checked(argv, message):
    with pytest.raises(ValueError, match=message):
        options_from_args(build_parser().parse_args(argv))


def test_demo_arguments_pass_orthanc_to_every_session():
    options = options_from_args(build_parser().parse_args(
        ["--sessions", "2", "--orthanc", "http://127.0.0.1:8042", "--orthanc-only"]))
    assert options.sessions == 2
    assert options.session_args == ["--orthanc", "http://127.0.0.1:8042", "--orthanc-only"]


def test_launcher_page_messages_exist_in_every_language():
    path = Path(__file__).resolve().parents[1] / "static" / "launcher" / "launcher-messages.json"
    tables = json.loads(path.read_text(encoding="utf-8"))
    assert set(tables["en"]) == set(tables["ko"])
    assert "{n}" in tables["en"]["launcher.full"] and "{n}" in tables["ko"]["launcher.full"]


def test_docker_setup_and_generated_config_match_kitwares_image_layout(tmp_path):
    from webviewer.deploy import docker

    root = Path(__file__).resolve().parents[1] / "deploy"
    apps_text = (root / "setup" / "apps.yml").read_text(encoding="utf-8")
    apps = json.loads("\n".join(line for line in apps_text.splitlines() if not line.startswith("#")))
    expected = docker.session_command("/deploy/server/venv/bin/webviewer", 120).argv()
    assert apps["webviewer"]["cmd"] == expected
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text('<html data-app-name="trame"><head></head></html>')
    docker.write_docker_config(sessions=3, idle_timeout_s=120, executable="/deploy/server/venv/bin/webviewer",
                               launcher_json=tmp_path / "launcher.json", apache_site=tmp_path / "site.conf",
                               www_dir=www, log_dir=tmp_path)
    config = json.loads((tmp_path / "launcher.json").read_text())
    assert config["apps"]["webviewer"]["cmd"] == expected
    assert config["configuration"]["proxy_file"] == "/opt/trame/proxy-mapping.txt"
    assert config["resources"][0]["port_range"] == [9001, 9003]
    site = (tmp_path / "site.conf").read_text()
    assert "ProxyPass /launcher/ http://127.0.0.1:9000/paraview/" in site
    assert 'RewriteMap session-to-port "txt:/opt/trame/proxy-mapping.txt"' in site
    assert (www / "session.html").exists() and 'data-testid="sessions-full"' in (www / "index.html").read_text()
    assert json.loads((www / "demo.json").read_text())["sessions"] == 3
    assert "webviewer.deploy.launcher" in (root / "Dockerfile").read_text()
