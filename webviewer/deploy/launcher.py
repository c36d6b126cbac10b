"""wslink's launcher with two guards for a public demo: ``python -m webviewer.deploy.launcher CONFIG``.

- A launch request must be a JSON object asking for our application. wslink takes a port from the pool before it
  looks at the body, so a body such as ``"application"`` (a JSON string) fails after that and the port never comes
  back; one visitor could empty the pool that way. Anything else is refused with 400 before the pool is touched.
- Session secrets (each session's ``--authKey``) come from ``secrets``, not from ``random``.

Everything else is wslink's launcher unchanged (``wslink.launcher.start``).
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from aiohttp import web
from wslink import launcher as wslink_launcher
from wslink.backends.aiohttp import launcher as aiohttp_launcher

from webviewer.deploy.launcher_config import APP_NAME

MAX_BODY_BYTES = 4096
_ALPHABET = string.ascii_letters + string.digits


def generate_secret() -> str:
    """A 22-character secret (about 131 bits) from the OS's random source."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(22))


def launch_request_error(body: bytes) -> str | None:
    """Why this launch request body is refused, or None when it is a plain request for our application."""
    if len(body) > MAX_BODY_BYTES:
        return f"the launch request is larger than {MAX_BODY_BYTES} bytes"
    try:
        payload: Any = json.loads(body or b"null")
    except ValueError:
        return "the launch request is not JSON"
    if not isinstance(payload, dict):
        return "the launch request must be a JSON object"
    if payload.get("application") != APP_NAME:
        return f'the launch request must ask for "application": "{APP_NAME}"'
    if set(payload) != {"application"}:
        return 'the launch request may only name "application"'
    return None


_original_post = aiohttp_launcher.LauncherResource.handle_post


async def guarded_post(self: Any, request: web.Request) -> web.Response:
    """Check the body first; wslink's handler reads the same (cached) body afterwards."""
    error = launch_request_error(await request.content.read(MAX_BODY_BYTES + 1))
    if error:
        return web.json_response({"error": error}, status=400)
    return await _original_post(self, _Replay(request))


class _Replay:
    """The request as wslink's handler sees it, with the body we already read."""

    def __init__(self, request: web.Request) -> None:
        self._request = request

    async def json(self) -> dict:
        return {"application": APP_NAME}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def install_guards() -> None:
    wslink_launcher.generatePassword = generate_secret
    aiohttp_launcher.LauncherResource.handle_post = guarded_post


def main(argv: list[str] | None = None) -> None:
    install_guards()
    wslink_launcher.start(argv)


if __name__ == "__main__":
    main()
