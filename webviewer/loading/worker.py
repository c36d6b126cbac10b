"""The load worker: one process per app session that runs the engine's :func:`~webviewer.loading.load` and builds
the volume in shared memory (:mod:`webviewer.loading.shm`), so the app's renders never compete with the load for
the GIL and the volume reaches the app without a copy.

Started by the app as ``python -m webviewer.loading.worker FD [module:function ...]`` (a fresh interpreter: nothing
of the app's VTK or threads is inherited; the functions are initialisers such as Orthanc's source registration).
FD is one end of a socketpair wrapped as a :class:`multiprocessing.connection.Connection`.

Protocol (tuples; the app sends, the worker answers; fds travel with ``multiprocessing.reduction.send_handle``):

- ``("load", id, source, mode, options)`` → ``("progress", id, ProgressEvent)`` and ``("placed", id, n, first)``
  while it runs, then ``("result", id, LoadResult without its volume, ArrayPlace)`` + fd, ``("error", id,
  module, class name, message, attributes)`` or ``("cancelled", id)``.
- ``("cancel", id)``: cancel that load (the answer above comes after the engine's cleanup).
- ``("preview", id)`` → ``("preview", id, ArrayPlace | None, geometry)`` + fd: the placed slices sorted in place;
  they stay as they are until ``("preview_done", id)`` (PoC2's final sort waits for it).
- ``("exit",)`` or end of file (the app is gone, even SIGKILLed): the worker exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import logging
import os
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import Any

from webviewer.errors import WebViewerError
from webviewer.loading.allocator import set_volume_allocator
from webviewer.loading.metrics import current_rss, trim_heap, tune_malloc
from webviewer.loading.progress import LoadObserver
from webviewer.loading.shm import SegmentAllocator

log = logging.getLogger(__name__)
#: seconds PoC2's final sort waits for the app to finish rendering a preview of the same slots
PREVIEW_HOLD_S = 5.0


def geometry(volume: Any) -> dict[str, Any]:
    """A volume's geometry (everything but its voxels), as plain picklable values."""
    return {"spacing": tuple(volume.spacing), "origin": tuple(volume.origin),
            "direction": [[float(v) for v in row] for row in volume.direction],
            "window": None if volume.window is None else tuple(volume.window)}


class _PipeObserver(LoadObserver):
    """The engine's observer calls (on the worker's loop) sent to the app; remembers PoC2's buffer for previews."""

    def __init__(self, worker: LoadWorker, load_id: int) -> None:
        self.worker = worker
        self.load_id = load_id
        self.buffer: Any = None

    def on_progress(self, event: Any) -> None:
        self.worker.send(("progress", self.load_id, event))

    def on_volume_allocated(self, buffer: Any) -> None:
        self.buffer = buffer
        buffer.final_sort_gate = self.worker.wait_preview_released

    def on_slices_placed(self, buffer: Any, placed: int) -> None:
        first = self.buffer is not buffer
        if first:
            self.on_volume_allocated(buffer)
        self.worker.send(("placed", self.load_id, int(placed), first))


class LoadWorker:
    """Serves loads, one at a time, over ``conn`` until the app says exit or goes away."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.allocator = SegmentAllocator()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.load_id = 0
        self.observer: _PipeObserver | None = None
        self._preview_released = threading.Event()
        self._preview_released.set()
        self._done: asyncio.Future | None = None

    def send(self, message: tuple, fd: int | None = None) -> None:
        """Send one message (and an fd right after it); on the worker's loop thread only."""
        try:
            self.conn.send(message)
            if fd is not None:
                send_handle(self.conn, fd, os.getppid())
        except (OSError, ValueError):  # the app is gone: nothing to tell
            self._exit()

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._done = self.loop.create_future()
        set_volume_allocator(self.allocator)
        self.loop.add_reader(self.conn.fileno(), self._readable)
        self.send(("ready", os.getpid(), current_rss()))
        await self._done

    def _exit(self) -> None:
        os._exit(0)  # the kernel frees every segment and fd; nothing of a half-done load needs saving

    def _readable(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):  # the app is gone
            log.info("load worker: the app closed its end; exiting")
            self._exit()
            return
        kind, args = message[0], message[1:]
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            log.warning("load worker: unknown message %r", kind)
            return
        handler(*args)

    # -- messages ------------------------------------------------------------------------------------
    def _on_load(self, load_id: int, source: str, mode: str, options: Any) -> None:
        if self.task is not None and not self.task.done():
            self.send(("error", load_id, "webviewer.errors", "WebViewerError",
                       "A load is already running in this session's load process.", {}))
            return
        self.load_id = load_id
        self.task = asyncio.ensure_future(self._load(load_id, source, mode, options))

    def _on_cancel(self, load_id: int) -> None:
        if self.task is not None and not self.task.done() and load_id == self.load_id:
            self._preview_released.set()
            self.task.cancel()

    def _on_preview(self, load_id: int) -> None:
        asyncio.ensure_future(self._preview(load_id))

    def _on_preview_done(self, load_id: int) -> None:
        self._preview_released.set()

    def _on_exit(self) -> None:
        self._exit()

    # -- work ------------------------------------------------------------------------------------------
    def wait_preview_released(self) -> None:
        """PoC2's final sort (a worker thread) waits while the app renders the slots of a preview."""
        if not self._preview_released.wait(PREVIEW_HOLD_S):
            log.warning("load worker: the app held a preview over %.0f s; sorting anyway", PREVIEW_HOLD_S)

    async def _load(self, load_id: int, source: str, mode: str, options: Any) -> None:
        from webviewer.loading.modes import load

        self.observer = observer = _PipeObserver(self, load_id)
        try:
            result = await load(source, mode, options=options, observer=observer)
            located = self.allocator.locate(result.volume.hu)
            if located is None:  # cannot happen with the allocator installed; say so rather than copy
                raise WebViewerError("The load process built a volume outside shared memory; this is a bug.")
            place, fd = located
            meta = geometry(result.volume)
            light = dataclasses.replace(result, volume=None)
            self.send(("result", load_id, light, place, meta), fd)  # result keeps the segment's fd open
        except asyncio.CancelledError:
            self.send(("cancelled", load_id))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the app as an error message
            self.send(_error_message(load_id, exc))
        finally:
            self.observer = observer = result = None  # noqa: F841 - drop the volume's mapping here
            self._preview_released.set()
            gc.collect()
            trim_heap()

    async def _preview(self, load_id: int) -> None:
        observer = self.observer
        buffer = observer.buffer if observer is not None and load_id == self.load_id else None
        volume = None
        if buffer is not None:
            self._preview_released.clear()
            volume = await asyncio.to_thread(buffer.preview_volume)
        located = self.allocator.locate(volume.hu) if volume is not None else None
        if located is None:
            self._preview_released.set()
            self.send(("preview", load_id, None, None))
            return
        place, fd = located
        self.send(("preview", load_id, place, geometry(volume)), fd)


def _error_message(load_id: int, exc: BaseException) -> tuple:
    """An engine error as a message the app turns back into the same type (a WebViewerError subclass)."""
    if not isinstance(exc, WebViewerError):
        log.error("load worker: unexpected failure", exc_info=exc)
        exc = WebViewerError(f"The load failed unexpectedly: {exc!r}. See the log for details.")
    attrs = {k: v for k, v in vars(exc).items() if isinstance(v, (str, int, float, bool, type(None)))}
    return ("error", load_id, type(exc).__module__, type(exc).__qualname__, str(exc), attrs)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the app process ends (besides the end-of-file on the socket)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point of the worker process: ``FD [module:function ...]``."""
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    logging.getLogger("webviewer").setLevel(logging.INFO)
    tune_malloc()  # webviewer.runtime.configure_runtime(rendering=False), without importing the entry points' module
    for spec in argv[1:]:
        module, _, name = spec.partition(":")
        getattr(importlib.import_module(module), name)()
    import webviewer.loading.modes  # noqa: F401 - warm: the engine's imports are done before the first load

    asyncio.run(LoadWorker(Connection(int(argv[0]))).serve())


if __name__ == "__main__":
    main()
