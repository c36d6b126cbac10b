"""Engine loads on an event loop of their own, so the app's loop (renders, state pushes, image delivery) never
stalls a download.

The app's loop renders VTK frames (a 3D frame costs 90-150 ms on llvmpipe), re-polls images and pushes state;
while a load shared that loop, every render held up the reading of the ZIP stream and the hand-off of members to
the inflate/parse workers. Here the engine's ``load()`` runs unchanged on a second loop in a daemon thread of the
same process: the volume stays in this process (the renderer wraps it without a copy) and the engine's observer
calls come back to the app's loop with ``call_soon_threadsafe``. Cancelling the awaiting task cancels the load on
its loop and waits until the engine has released its buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class _ToAppLoop:
    """The engine's observer calls (made on the load loop) forwarded to the app's observer on the app loop."""

    def __init__(self, observer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._observer = observer
        self._loop = loop

    def _post(self, name: str, *args: Any) -> None:
        method = getattr(self._observer, name, None)
        if method is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(method, *args)

    def on_progress(self, event: Any) -> None:
        self._post("on_progress", event)

    def on_volume_allocated(self, buffer: Any) -> None:
        self._post("on_volume_allocated", buffer)

    def on_slices_placed(self, buffer: Any, placed: int) -> None:
        self._post("on_slices_placed", buffer, placed)


class LoadThread:
    """One loop thread per session (started on first use, stopped by :meth:`close`)."""

    def __init__(self, name: str = "webviewer-load") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self.alive:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.close()

                self._thread = threading.Thread(target=run, name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    async def run(self, load_fn: Callable[..., Awaitable[Any]], *args: Any, observer: Any = None,
                  **kwargs: Any) -> Any:
        """``await load_fn(*args, observer=…, **kwargs)`` on the load loop; the result or exception comes back.

        Cancelling the caller cancels the load and returns once the engine has finished its cleanup."""
        loop = self._ensure()
        app_loop = asyncio.get_running_loop()
        outcome: asyncio.Future = app_loop.create_future()
        proxy = _ToAppLoop(observer, app_loop) if observer is not None else None
        tasks: list[asyncio.Task] = []

        def deliver(task: asyncio.Task) -> None:  # app loop
            if outcome.done():
                return
            if task.cancelled():
                outcome.cancel()
            elif task.exception() is not None:
                outcome.set_exception(task.exception())
            else:
                outcome.set_result(task.result())

        def start() -> None:  # load loop
            task = loop.create_task(load_fn(*args, observer=proxy, **kwargs))
            task.add_done_callback(lambda t: app_loop.call_soon_threadsafe(deliver, t))
            tasks.append(task)

        loop.call_soon_threadsafe(start)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            if not outcome.done():  # the caller was cancelled: cancel the load and wait for its cleanup
                loop.call_soon_threadsafe(lambda: tasks[0].cancel())  # after start(): the loop runs in order
                with contextlib.suppress(BaseException):  # cancelled, or the engine's error while cancelling
                    await outcome
            raise

    def close(self) -> None:
        """Stop the loop thread (a running load is cancelled by the loop's shutdown)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def shutdown() -> None:  # cancel the loads, let their cleanup and done callbacks run, then stop
            tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)
            loop.stop()

        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        thread.join(timeout=10)
        if thread.is_alive():
            log.warning("the load thread did not stop within 10 s")
