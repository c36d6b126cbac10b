"""aiohttp client failures turned into the viewer's errors: one mapper for every HTTP source (CT API, Orthanc).

Each message names the server and the address, what happened (could not connect, stalled, dropped) and what the
user can do about it.
"""

from __future__ import annotations

import aiohttp

from webviewer.errors import BadInputError, SourceError, WebViewerError


def client_error(
    exc: BaseException,
    url: str,
    *,
    server: str = "the server",
    connect_timeout_s: float | None = None,
    stall_timeout_s: float | None = None,
    received: int | None = None,
) -> WebViewerError:
    """The viewer's error for an aiohttp exception (or timeout) met while talking to ``server`` at ``url``."""
    after = "" if received is None else f" after {received} bytes"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return SourceError(
            f"Could not connect to {server} at {url} within {connect_timeout_s or 0:g} s. Check that it is running "
            "and reachable, or raise the connect timeout."
        )
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError)):
        return SourceError(
            f"{server[0].upper()}{server[1:]} stalled: no bytes for {stall_timeout_s or 0:g} s from {url}{after}. "
            "Retry, or raise the stall timeout on a slow network."
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return BadInputError(f"{url} is not a valid URL. Give an http(s) address, a .zip file or a folder.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return SourceError(
            f"Could not connect to {server} at {url}: it is unreachable ({exc.os_error or exc}). Check that it is "
            "running and that the address (host, port) is right."
        )
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError,
                        ConnectionError)):
        return SourceError(
            f"The connection to {server} at {url} dropped{after} ({exc.__class__.__name__}). Retry the load."
        )
    if isinstance(exc, aiohttp.ContentTypeError):
        return SourceError(f"{server[0].upper()}{server[1:]} at {url} did not answer JSON; check the address.")
    if isinstance(exc, aiohttp.ClientError):
        return SourceError(f"Reading {url} from {server} failed: {exc}. Retry the load.")
    return SourceError(f"Reading {url} from {server} failed: {exc!r}.")
