"""The hand-offs between the download and the worker threads: a byte-bounded chunk queue, a member prefetcher.

Moved out of ``unzip`` unchanged (see its module note for the threading model and the measurements).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

from webviewer.errors import LoadCancelledError


class ChunkBridge:
    """A bounded, byte-counted queue from the event loop (producer) to one worker thread (consumer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_bytes: int = 8 << 20) -> None:
        self.loop = loop
        self.max_bytes = max_bytes
        self._items: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._space = asyncio.Event()
        self._space.set()
        self._eof = False
        self._cancelled = False
        self.consumed = 0
        self.peak_bytes = 0

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    async def put(self, chunk: bytes) -> None:
        """Queue a chunk; waits (without blocking the loop) while ``max_bytes`` are already queued."""
        while True:
            with self._cond:
                if self._cancelled:
                    return
                if self._bytes < self.max_bytes:
                    self._items.append(chunk)
                    self._bytes += len(chunk)
                    self.peak_bytes = max(self.peak_bytes, self._bytes)
                    self._cond.notify()
                    return
                self._space.clear()
            await self._space.wait()

    def close(self) -> None:
        """No more chunks (end of download)."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Wake the consumer with LoadCancelledError and drop what is queued."""
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()
        self._signal_space()

    def _signal_space(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._space.set)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                while not self._items and not self._eof and not self._cancelled:
                    self._cond.wait()
                if self._cancelled:
                    raise LoadCancelledError()
                if not self._items:
                    return
                was_full = self._bytes >= self.max_bytes
                chunk = self._items.popleft()
                self._bytes -= len(chunk)
                self.consumed += len(chunk)
                if was_full and self._bytes < self.max_bytes:
                    self._signal_space()
            yield chunk


class Prefetch:
    """Iterate ``source`` on another worker thread, at most ``depth`` items ahead of the consumer.

    Used by PoC2 so that inflating member k+1 (zlib, GIL released) overlaps parsing and placing member k.
    ``abort`` must make ``source`` stop (it is called, e.g. ChunkBridge.cancel, when the consumer stops early).
    """

    _END = object()

    def __init__(self, source: Iterable, depth: int, submit: Callable, abort: Callable[[], None]) -> None:
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._abort = abort
        self._job = submit(self._produce, source)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterable) -> None:
        try:
            for item in source:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((None, exc))

    def __iter__(self) -> Iterator:
        try:
            while True:
                item, exc = self._q.get()
                if exc is not None:
                    raise exc
                if item is self._END:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer and wait for it (it never blocks for long: its queue puts time out)."""
        if self._job.done():
            return
        self._stop.set()
        self._abort()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(BaseException):
            self._job.result()
