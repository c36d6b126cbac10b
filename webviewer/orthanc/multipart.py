"""An incremental ``multipart/related`` parser: feed it the response chunks, get each part the moment it ends.

WADO-RS (DICOMweb retrieve) answers a series as ``multipart/related; type="application/dicom"``, one DICOM
file per part. :class:`MultipartParser` never holds more than the part being received (plus one chunk), so a
part can be parsed and placed while the rest of the series still streams.

- A part with a ``Content-Length`` header (Orthanc sends one) is cut by length, then its closing delimiter is
  checked; without one, the body ends at the next ``CRLF--boundary`` (searched only in the new bytes).
- Preamble, transport padding after a delimiter and the epilogue are ignored, as RFC 2046 says.

Why not ``aiohttp.MultipartReader``: it is an async reader of the response stream, so every part would be cut on
the event loop (the loop that also serves the app's UI and renders) and then handed to the worker thread, where
the engine's streaming modes consume every other source's bytes through the same chunk bridge. Measured on this
machine (140 parts of 0.53 MB, 75 MB, from a local aiohttp server, median of 5): MultipartReader took 0.109 s to
download and split the body, all on the loop; downloading took 0.064 s and this parser 0.012 s more, on the worker
thread, with no part held longer than until its end. A push parser over the bridge is the smaller, faster design.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from webviewer.errors import ArchiveError, SourceError

_HEADER_LIMIT = 64 * 1024


class MultipartError(ArchiveError):
    """The body is not well-formed multipart (a server bug or a truncated answer)."""

    default_message = "The DICOMweb answer is not well-formed multipart/related. Retry, or check the server."


@dataclass
class Part:
    headers: dict[str, str]  # lower-case names
    data: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def boundary_from_content_type(content_type: str) -> str | None:
    """The ``boundary`` parameter of a Content-Type header value (quotes removed), or None."""
    m = re.search(r';\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', content_type, flags=re.IGNORECASE)
    if not m:
        return None
    return m.group(1) or m.group(2)


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MultipartError(f"The DICOMweb answer has a malformed part header line {line[:80]!r}.")
        headers[name.strip().lower()] = value.strip()
    return headers


class MultipartParser:
    """Feed bytes with :meth:`feed`; it returns the parts completed by them. Call :meth:`close` at the end."""

    _PREAMBLE, _HEADERS, _BODY, _AFTER_DELIM, _EPILOGUE = range(5)

    def __init__(self, boundary: str | bytes, *, max_part_bytes: int | None = None,
                 on_part_header: Callable[[dict[str, str]], None] | None = None) -> None:
        b = boundary.encode("latin-1") if isinstance(boundary, str) else boundary
        if not b:
            raise ValueError("empty multipart boundary")
        self.dash_boundary = b"--" + b
        self.delimiter = b"\r\n" + self.dash_boundary
        self.max_part_bytes = max_part_bytes
        self.on_part_header = on_part_header
        self._buf = bytearray()
        self._state = self._PREAMBLE
        self._headers: dict[str, str] = {}
        self._length: int | None = None
        self._search_from = 0
        self.parts = 0
        self.received = 0

    @property
    def finished(self) -> bool:
        """True once the closing delimiter (``--boundary--``) was read."""
        return self._state == self._EPILOGUE

    def feed(self, chunk: bytes) -> list[Part]:
        self.received += len(chunk)
        if self._state == self._EPILOGUE:
            return []
        self._buf += chunk
        out: list[Part] = []
        while (part := self._step()) is not None:
            if isinstance(part, Part):
                out.append(part)
        return out

    def close(self) -> None:
        """Raise unless the closing delimiter was seen (the answer was cut short)."""
        if self._state != self._EPILOGUE:
            raise SourceError(
                f"The DICOMweb answer ended after {self.received} bytes and {self.parts} complete parts, before "
                "its closing boundary: the server stopped or the connection dropped. Retry the load."
            )

    # -- state machine: returns a Part, True (progress, continue) or None (needs more bytes) --------------
    def _step(self) -> Part | bool | None:
        step = {
            self._PREAMBLE: self._step_preamble,
            self._AFTER_DELIM: self._step_after_delimiter,
            self._HEADERS: self._step_headers,
            self._BODY: self._step_body,
        }.get(self._state)
        return None if step is None else step()  # epilogue: ignore

    def _step_preamble(self) -> bool | None:
        buf = self._buf
        # the first dash-boundary may start the body (no preceding CRLF)
        if buf.startswith(self.dash_boundary):
            del buf[: len(self.dash_boundary)]
            self._state = self._AFTER_DELIM
            return True
        i = buf.find(self.delimiter)
        if i < 0:
            if len(buf) > _HEADER_LIMIT:
                raise MultipartError(
                    "The DICOMweb answer does not start with its multipart boundary; the server sent "
                    "something else. Check the address."
                )
            return None
        del buf[: i + len(self.delimiter)]
        self._state = self._AFTER_DELIM
        return True

    def _step_after_delimiter(self) -> bool | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        if buf[:2] == b"--":
            self._state = self._EPILOGUE
            buf.clear()
            return None
        eol = buf.find(b"\r\n")
        if eol < 0:
            if len(buf) > 1024:
                raise MultipartError("The DICOMweb answer has garbage after a multipart boundary.")
            return None
        if buf[:eol].strip(b" \t"):
            raise MultipartError("The DICOMweb answer has garbage after a multipart boundary.")
        del buf[: eol + 2]
        self._state = self._HEADERS
        return True

    def _step_headers(self) -> bool | None:
        buf = self._buf
        if buf.startswith(b"\r\n"):  # a part without headers
            end, skip = 0, 2
        else:
            end = buf.find(b"\r\n\r\n")
            skip = 4
            if end < 0:
                if len(buf) > _HEADER_LIMIT:
                    raise MultipartError("A DICOMweb part header is larger than 64 KB; the answer is malformed.")
                return None
        self._headers = _parse_headers(bytes(buf[:end]))
        del buf[: end + skip]
        self._length = None
        if "content-length" in self._headers:
            try:
                self._length = int(self._headers["content-length"])
            except ValueError:
                raise MultipartError("A DICOMweb part has an invalid Content-Length.") from None
            self._check_size(self._length)
        if self.on_part_header is not None:
            self.on_part_header(self._headers)
        self._search_from = 0
        self._state = self._BODY
        return True

    def _step_body(self) -> Part | None:
        buf = self._buf
        n = self._length
        if n is not None:
            if len(buf) < n + len(self.delimiter):
                return None
            if buf[n : n + len(self.delimiter)] != self.delimiter:
                raise MultipartError(
                    "A DICOMweb part is not followed by the boundary its Content-Length announces; the answer is "
                    "malformed."
                )
            end = n
        else:
            end = buf.find(self.delimiter, self._search_from)
            if end < 0:
                self._search_from = max(0, len(buf) - len(self.delimiter) + 1)
                self._check_size(self._search_from)
                return None
        with memoryview(buf) as view:
            data = bytes(view[:end])  # one copy; the view is released before the bytearray shrinks
        del buf[: end + len(self.delimiter)]
        self._state = self._AFTER_DELIM
        self.parts += 1
        return Part(self._headers, data)

    def _check_size(self, nbytes: int) -> None:
        if self.max_part_bytes is not None and nbytes > self.max_part_bytes:
            from webviewer.errors import LimitExceededError

            raise LimitExceededError(
                f"A DICOMweb part is larger than the limit of {self.max_part_bytes} bytes (max_member_bytes). "
                "Raise the limit if you trust the source."
            )


def iter_parts(chunks: Iterable[bytes], boundary: str | bytes | Callable[[], str | None], *,
               max_part_bytes: int | None = None) -> Iterator[Part]:
    """Yield the parts of a multipart body given as chunks; ``boundary`` may be a callable read at the first
    chunk (the boundary is known only once the response headers arrived). Raises if the body is cut short."""
    parser: MultipartParser | None = None
    head = b""
    for chunk in chunks:
        if parser is None:
            b = boundary() if callable(boundary) else boundary
            if not b:  # no boundary in the header: read it from the body's first line
                head += chunk
                if b"\r\n" not in head and len(head) < 1024:
                    continue
                b, chunk = _sniff_boundary(head), head
            parser = MultipartParser(b, max_part_bytes=max_part_bytes)
        yield from parser.feed(chunk)
    if parser is None and head:
        parser = MultipartParser(_sniff_boundary(head), max_part_bytes=max_part_bytes)
        yield from parser.feed(head)
    if parser is None:
        raise SourceError("The DICOMweb answer was empty: the server sent no parts. Check the series address.")
    parser.close()


def _sniff_boundary(first: bytes) -> str:
    """The boundary from the body's first line (``--boundary``) when the header did not give one."""
    line = first.split(b"\r\n", 1)[0]
    if line.startswith(b"--") and len(line) > 2:
        return line[2:].decode("latin-1").strip()
    raise MultipartError("The DICOMweb answer names no multipart boundary. Check that the server speaks WADO-RS.")
