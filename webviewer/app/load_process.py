"""Loads in a worker process of their own (:mod:`webviewer.loading.worker`), one per session, started early and
reused; the volume comes back in shared memory and is wrapped without a copy.

A load on a thread of the app process shared one GIL with the app's Python work (state pushes, the image delivery,
the mounted CT API, the render calls around VTK, which itself releases the GIL while it renders) and ran at a
fraction of its speed during progressive display. In a process of its own the load has its own GIL. The
worker is a fresh interpreter (``subprocess`` + ``python -m``: no fork of a process with VTK and threads) joined by
a socketpair; it exits when the app closes its end, when the app process dies (end of file, and Linux's
parent-death signal), or when asked. Same contract as :class:`~webviewer.app.load_thread.LoadThread`: ``run()``
gives the result or raises the engine's exception (same type and message); cancelling the caller cancels the load
and returns once the worker confirmed its cleanup, or killed it (and started a fresh one) after
``cancel_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from typing import Any

import numpy as np

from webviewer.errors import WebViewerError
from webviewer.loading.metrics import current_rss, rss_parts
from webviewer.loading.shm import ArrayPlace, map_array, mapping_of, view_array
from webviewer.loading.volume import CTVolume

log = logging.getLogger(__name__)

#: called by the worker before its first load: the engine learns Orthanc's sources
DEFAULT_INITIALIZERS = ("webviewer.orthanc.sources:register_with_engine",)


class _BufferProxy:
    """What the progressive refresher sees of PoC2's buffer in the worker: the count and a sorted preview."""

    def __init__(self, client: LoadProcess, pending: _Pending) -> None:
        self._client = client
        self._pending = pending
        self.placed = 0

    async def preview_volume(self) -> CTVolume | None:
        """Ask the worker to sort the placed slices in place; the volume views them (no copy)."""
        p = self._pending
        if p.over:
            return None
        p.preview = asyncio.get_running_loop().create_future()
        self._client.send(("preview", p.load_id))
        return await p.preview

    def preview_done(self) -> None:
        """The app has rendered the preview: the worker may permute those slots again."""
        if not self._pending.over:
            self._client.send(("preview_done", self._pending.load_id))


class _Pending:
    """One load under way: its outcome, observer, buffer proxy and the segments mapped so far."""

    def __init__(self, load_id: int, outcome: asyncio.Future, observer: Any) -> None:
        self.load_id = load_id
        self.outcome = outcome
        self.observer = observer
        self.preview: asyncio.Future | None = None
        self.maps: dict[int, Any] = {}  # segment id -> mmap (one mapping per segment)
        #: the result, kept here rather than in the future: the loop's pending callbacks hold the future a while,
        #: and they must not keep the volume alive past its content (the next load's baseline)
        self.result: Any = None
        self.proxy: _BufferProxy | None = None

    @property
    def over(self) -> bool:
        return self.outcome is None or self.outcome.done()

    def release(self) -> None:
        """The caller has the outcome: drop every reference to the load's volumes (a proxy may outlive this)."""
        self.settle_preview()
        self.preview = self.outcome = self.observer = self.result = None
        self.maps = {}

    def settle_preview(self, volume: CTVolume | None = None) -> None:
        """Answer the preview the refresher awaits (None once the load is over: it must never wait forever)."""
        if self.preview is not None and not self.preview.done():
            self.preview.set_result(volume)

    def volume(self, fd: int, place: ArrayPlace, geometry: dict[str, Any]) -> CTVolume:
        """The volume at ``place`` (segment ``fd``), mapped once per segment."""
        if place.segment in self.maps:
            os.close(fd)
            hu = view_array(self.maps[place.segment], place)
        else:
            hu = map_array(fd, place)
            self.maps[place.segment] = mapping_of(hu)
        return CTVolume(hu, tuple(geometry["spacing"]), tuple(geometry["origin"]),
                        np.asarray(geometry["direction"], dtype=float),
                        None if geometry["window"] is None else tuple(geometry["window"]))


def rebuild_error(module: str, name: str, message: str, attrs: dict[str, Any]) -> WebViewerError:
    """The worker's exception as the same WebViewerError subclass with the same message (else a WebViewerError)."""
    cls: Any = None
    if module.startswith("webviewer."):
        with contextlib.suppress(ImportError, AttributeError):
            cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, WebViewerError)):
        return WebViewerError(message)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(attrs)
    return exc


class LoadProcess:
    """The session's load worker process (started by :meth:`start` or the first load, stopped by :meth:`close`)."""

    def __init__(self, initializers: tuple[str, ...] = DEFAULT_INITIALIZERS, *, cancel_timeout_s: float = 5.0) -> None:
        self.initializers = tuple(initializers)
        self.cancel_timeout_s = cancel_timeout_s
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.idle_rss = 0
        self.restarts = 0
        self._ids = itertools.count(1)
        self._pending: _Pending | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future | None = None
        self._was_ready = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the worker if none runs (it imports the engine at once: the first load finds it warm)."""
        if self.alive and self.conn is not None:
            return
        self._stop_process()
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "webviewer.loading.worker", str(theirs.fileno()), *self.initializers],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self._was_ready = False
        self._ready = None
        self._loop = None
        log.info("load process %d started", self.proc.pid)

    def worker_rss(self) -> dict[str, int]:
        """The worker's resident memory in bytes: anon, file, shmem (zeros when none runs)."""
        if not self.alive:
            return {"anon": 0, "file": 0, "shmem": 0}
        return rss_parts(self.proc.pid)

    def send(self, message: tuple) -> None:
        if self.conn is None:
            return
        try:
            self.conn.send(message)
        except (OSError, ValueError) as exc:
            log.warning("load process: could not send %r: %s", message[0], exc)

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._ready = loop.create_future()
        if self._was_ready:
            self._ready.set_result(None)
        loop.add_reader(self.conn.fileno(), self._readable)

    async def run(self, load_fn: Any, url: str, mode: str, *, options: Any = None, observer: Any = None) -> Any:
        """Load ``url`` in ``mode`` in the worker (``load_fn`` is ignored: the worker runs the engine's load).

        The result's volume views shared memory; errors come back as the engine raised them."""
        self.start()
        self._attach()
        await self._ready
        outcome = self._loop.create_future()
        pending = self._pending = _Pending(next(self._ids), outcome, observer)
        self.send(("load", pending.load_id, str(url), str(mode), options))
        try:
            await asyncio.shield(outcome)
            result, pending.result = pending.result, None
            return result
        except asyncio.CancelledError:
            if not outcome.done():
                await self._cancel(pending)
            raise
        finally:
            if self._pending is pending:
                self._pending = None
            pending.release()
            del pending, outcome

    async def _cancel(self, pending: _Pending) -> None:
        self.send(("cancel", pending.load_id))
        try:
            await asyncio.wait_for(asyncio.shield(pending.outcome), self.cancel_timeout_s)
        except TimeoutError:
            log.warning("load process %s did not confirm the cancel within %.0f s: killing it", self.pid,
                        self.cancel_timeout_s)
            self._stop_process(kill=True)
            self.restarts += 1
            self.start()
        except BaseException:  # noqa: BLE001 - cancelled (the normal answer) or the engine's error while cancelling
            pass

    # -- messages from the worker -----------------------------------------------------------------------
    def _readable(self) -> None:
        conn = self.conn
        try:
            message = conn.recv()
            fd = recv_handle(conn) if message[0] in ("result", "preview") and message[2] is not None else None
        except (EOFError, OSError):
            self._died()
            return
        try:
            getattr(self, f"_on_{message[0]}")(*message[1:], fd=fd)
        except Exception as exc:  # the app stays usable: the load fails with the reason
            log.exception("load process: could not handle %r", message[0])
            p = self._pending
            if p is not None and not p.over:
                p.settle_preview()
                p.outcome.set_exception(WebViewerError(f"The load's result could not be received: {exc!r}."))

    def _current(self, load_id: int) -> _Pending | None:
        p = self._pending
        return p if p is not None and p.load_id == load_id and not p.over else None

    def _on_ready(self, pid: int, rss: int, *, fd: None = None) -> None:
        self.idle_rss = rss
        self._was_ready = True
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _on_progress(self, load_id: int, event: Any, *, fd: None = None) -> None:
        p = self._current(load_id)
        if p is not None and p.observer is not None:
            app = rss_parts()
            event.rss_bytes += app["anon"] + app["file"]  # the session: worker + app, shared pages once
            p.observer.on_progress(event)

    def _on_placed(self, load_id: int, placed: int, first: bool, *, fd: None = None) -> None:
        p = self._current(load_id)
        if p is None or p.observer is None:
            return
        if p.proxy is None:
            p.proxy = _BufferProxy(self, p)
        p.proxy.placed = placed
        if first and hasattr(p.observer, "on_volume_allocated"):
            p.observer.on_volume_allocated(p.proxy)
        if hasattr(p.observer, "on_slices_placed"):
            p.observer.on_slices_placed(p.proxy, placed)

    def _on_preview(self, load_id: int, place: ArrayPlace | None, geometry: Any, *, fd: int | None) -> None:
        p = self._current(load_id)
        if p is None or p.preview is None or p.preview.done():
            if fd is not None:
                os.close(fd)
            return
        p.settle_preview(None if place is None else p.volume(fd, place, geometry))

    def _on_result(self, load_id: int, result: Any, place: ArrayPlace, geometry: Any, *, fd: int) -> None:
        p = self._current(load_id)
        if p is None:
            os.close(fd)
            return
        result.volume = p.volume(fd, place, geometry)
        p.maps.clear()
        p.settle_preview()
        p.result = result
        p.outcome.set_result(None)

    def _on_error(self, load_id: int, module: str, name: str, message: str, attrs: dict, *, fd: None = None) -> None:
        p = self._current(load_id)
        if p is not None:
            p.settle_preview()
            p.outcome.set_exception(rebuild_error(module, name, message, attrs))

    def _on_cancelled(self, load_id: int, *, fd: None = None) -> None:
        p = self._current(load_id)
        if p is not None:
            p.settle_preview()
            p.outcome.cancel()

    def _died(self) -> None:
        """End of file from the worker: it crashed or was killed. Fail the load; a fresh worker comes next."""
        was_ready, ready = self._was_ready, self._ready
        code = self._stop_process()
        log.error("the load process died (exit code %s)", code)
        if ready is not None and not ready.done():  # it never got ready: say so to the load waiting for it
            ready.set_exception(WebViewerError(
                f"The load process could not start (exit code {code}); see the server log. The app keeps running."))
            return
        p, self._pending = self._pending, None
        if p is not None and not p.over:
            p.settle_preview()
            p.outcome.set_exception(WebViewerError(
                f"The load process died (exit code {code}) while loading. The app keeps running; load again "
                f"to retry in a fresh load process."))
        if was_ready:  # a worker that never got ready is not restarted in a loop; the next load tries again
            self.restarts += 1
            self.start()

    def _stop_process(self, *, kill: bool = False) -> int | None:
        """Close the socket (the worker exits on end of file) and reap the process; returns its exit code."""
        if self._loop is not None and self.conn is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.conn.fileno())
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self._loop = None
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if kill:
            proc.kill()
        try:
            return proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self) -> None:
        """Session end: stop the worker (a running load dies with it; the kernel frees its shared memory)."""
        p, self._pending = self._pending, None
        if p is not None and not p.over:
            p.settle_preview()
            p.outcome.cancel()
        self.send(("exit",))
        self._stop_process()


def session_rss(process: LoadProcess | None) -> int:
    """The session's resident memory: the app process and its load worker (shared pages counted once)."""
    if process is None:
        return current_rss()
    app, worker = rss_parts(), process.worker_rss()
    return app["anon"] + app["file"] + worker["anon"] + worker["file"] + max(app["shmem"], worker["shmem"])


__all__ = ["LoadProcess", "rebuild_error", "session_rss"]
