"""One small exception hierarchy. Each message says what went wrong and what the user can do."""

from __future__ import annotations


class ControlSignal(Exception):  # noqa: N818 - a signal, not an error
    """Internal control flow between the viewer's own modules (skip this member, retry as float32, fall back to
    another reader, answer 416); caught where it is raised for, never shown to a user as it is."""


class WebViewerError(Exception):
    """Base class for every error the viewer reports to a user."""

    default_message = "The CT could not be loaded."
    #: exit status used by the command-line tools
    exit_code = 1
    #: short stable code for JSON output and the UI
    code = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class BadInputError(WebViewerError):
    """The input itself is wrong (archive, DICOM, HTTP 4xx): retrying will not help."""

    exit_code = 2
    code = "bad_input"
    default_message = "The input is not a loadable CT. Check that the source is a ZIP of DICOM files."


class ArchiveError(BadInputError):
    """The ZIP is broken, truncated, or not a ZIP at all (an HTML error page, say)."""

    code = "archive"
    default_message = "The archive is not a valid ZIP file. Export the study again and retry."


class DicomError(BadInputError):
    """A member is not usable DICOM, or the archive holds no CT image slices."""

    code = "dicom"
    default_message = "The archive holds no loadable DICOM image slices."


class LimitExceededError(BadInputError):
    """A safety limit (archive size, member size, compression ratio, volume size) was hit."""

    code = "limit"
    default_message = "The study exceeds a safety limit. Raise the limit if you trust the source."


class SourceError(WebViewerError):
    """The source could not be read: connection refused, dropped, stalled, or timed out."""

    code = "source"
    default_message = "The CT server could not be reached. Check that it is running and retry."


class HttpStatusError(SourceError):
    """The server answered with an HTTP error status."""

    code = "http"

    def __init__(self, status: int, url: str, message: str | None = None) -> None:
        self.status = status
        self.url = url
        super().__init__(message or f"The server answered HTTP {status} for {url}. {self.advice(status)}")

    @staticmethod
    def advice(status: int) -> str:
        """What the user can do about this status."""
        if status in (401, 403):
            return "Check the user name and password (or token); retrying as is will not help."
        if 400 <= status < 500:
            return "Check the study id or the address; retrying will not help."
        return "The server failed; retry later or check the server's log."

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 2 if 400 <= self.status < 500 else 1


class NotStreamableError(WebViewerError):
    """The archive cannot be streamed in this mode; the loader falls back to ``to_mode`` (None: the next safer)."""

    code = "not_streamable"
    default_message = "The archive cannot be unzipped while it streams."

    def __init__(self, message: str | None = None, *, to_mode: str | None = None) -> None:
        super().__init__(message)
        self.to_mode = to_mode


class LoadCancelledError(WebViewerError):
    """The user cancelled the load (raised in worker threads; ``load()`` turns it into asyncio.CancelledError)."""

    code = "cancelled"
    default_message = "The load was cancelled. Nothing was kept; start a new load when ready."
