"""HTTP answers and client exceptions from Orthanc, turned into the viewer's errors (clear messages)."""

from __future__ import annotations

import aiohttp

from webviewer.errors import HttpStatusError, SourceError
from webviewer.orthanc.auth import OrthancAuth, credentials_hint


def status_error(status: int, url: str, *, auth: OrthancAuth | None = None, what: str = "resource",
                 reason: str = "") -> HttpStatusError:
    """HttpStatusError with a message for 401/403 (credentials) and 404 (unknown id)."""
    if status in (401, 403):
        label = "401 Unauthorized" if status == 401 else "403 Forbidden"
        text = f"Orthanc refused access to {url} (HTTP {label}). {credentials_hint(auth)}"
    elif status == 404:
        text = f"Orthanc has no such {what} at {url} (HTTP 404 Not Found): it was deleted, or the id is wrong."
    else:
        text = f"Orthanc answered HTTP {status}{f' {reason}' if reason else ''} for {url}. {HttpStatusError.advice(status)}"
    return HttpStatusError(status, url, text)


def client_error(exc: BaseException, url: str, *, timeout_s: float | None = None) -> SourceError:
    """SourceError for a connection failure, timeout or dropped connection."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return SourceError(f"Could not connect to Orthanc at {url} within {timeout_s or 0:g} s. Check that it runs.")
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError)):
        return SourceError(f"Orthanc stalled: no answer from {url} within {timeout_s or 0:g} s. Retry later.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return SourceError(
            f"Orthanc is unreachable at {url}: {exc.os_error or exc}. Check that it is running and the address "
            "(host, port) is right."
        )
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError,
                        ConnectionError)):
        return SourceError(f"The connection to Orthanc at {url} dropped ({exc.__class__.__name__}). Retry.")
    if isinstance(exc, aiohttp.ContentTypeError):
        return SourceError(f"Orthanc at {url} did not answer JSON; check that the address is an Orthanc server.")
    return SourceError(f"Reading {url} from Orthanc failed: {exc}. Retry.")
