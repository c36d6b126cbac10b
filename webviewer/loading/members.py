"""Archive members as the unzip layer yields them, and the divert hook that streams one member to a sink."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from webviewer.loading.inflate import crc32


@dataclass
class Member:
    """One archive member: its bytes, or why it was skipped (bytes then None), or ``streamed`` to a sink."""

    name: str
    data: bytes | None
    skip_reason: str | None = None
    #: the member's bytes went to a divert sink as they were unzipped (see iter_stream_members)
    streamed: bool = False


class MemberSink(Protocol):
    """Takes one member's bytes in order while it unzips (a multi-frame file placed frame by frame)."""

    def feed(self, part: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


#: ``divert(name, head)``: a sink for this member, or None to keep it whole
Divert = Callable[[str, bytes], "MemberSink | None"]
#: bytes of a member unzipped before ``divert`` is asked (enough for a multi-frame file's NumberOfFrames)
DIVERT_PROBE_BYTES = 1 << 16


def divert_member(divert: Divert, name: str, parts: list[bytes]) -> MemberSink | None:
    """Ask ``divert`` with the bytes held so far; a sink gets them at once and ``parts`` is emptied."""
    head = parts[0] if len(parts) == 1 else b"".join(parts)
    sink = divert(name, head)
    if sink is not None:
        parts.clear()
        sink.feed(head)
    return sink


class ThreadedSink:
    """A MemberSink that hands its parts to ``sink`` on another thread (``submit``'s), so that inflating one
    member and placing its frames use two cores. At most ``max_bytes`` wait in between (the inflater then waits);
    the other thread's error is raised by the next ``feed`` or by ``close``."""

    def __init__(self, sink: MemberSink, submit: Callable, max_bytes: int = 8 << 20, *, crc: bool = False) -> None:
        self.sink, self.max_bytes = sink, max_bytes
        #: with ``crc``: the CRC-32 of every part fed, computed on the other thread (read it after ``close``)
        self.crc: int | None = 0 if crc else None
        self._parts: collections.deque[bytes | None] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._aborted = False
        self._job = submit(self._run)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._parts and not self._aborted:
                        self._cond.wait()
                    if self._aborted:
                        return
                    part = self._parts.popleft()
                    self._bytes -= len(part) if part is not None else 0
                    self._cond.notify_all()
                if part is None:
                    self.sink.close()
                    return
                if self.crc is not None:
                    self.crc = crc32(part, self.crc)
                self.sink.feed(part)
        except BaseException as exc:  # noqa: BLE001 - handed to the feeding thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _put(self, part: bytes | None) -> None:
        with self._cond:
            while self._bytes >= self.max_bytes and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._parts.append(part)
            self._bytes += len(part) if part is not None else 0
            self._cond.notify_all()

    def feed(self, part: bytes) -> None:
        self._put(part)

    def close(self) -> None:
        self._put(None)
        self._job.result()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """The member failed on the feeding side: stop the other thread and wait for it."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
        concurrent.futures.wait([self._job])
