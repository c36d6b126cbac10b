"""HTTP answers and client exceptions from Orthanc, turned into the viewer's errors (clear messages)."""

from __future__ import annotations

from webviewer.errors import HttpStatusError, WebViewerError
from webviewer.loading.http_errors import client_error as loading_client_error
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


def client_error(exc: BaseException, url: str, *, timeout_s: float | None = None) -> WebViewerError:
    """The viewer's error for a connection failure, timeout or dropped connection while talking to Orthanc."""
    return loading_client_error(exc, url, server="Orthanc", connect_timeout_s=timeout_s, stall_timeout_s=timeout_s)
