"""At most one update per interval: the newest of the events offered in between is shown once it has passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class LatestEvery:
    """Calls ``show(event)`` at once for an urgent event or when ``interval_s`` has passed since the last call;
    otherwise keeps the event (the newest wins) and shows it when the interval has passed (a loop timer)."""

    def __init__(self, show: Callable[[Any], None], interval_s: float = 0.25,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.show = show
        self.interval_s = interval_s
        self.clock = clock
        self._shown = float("-inf")
        self._due: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, event: Any, *, urgent: bool = False) -> None:
        wait = self._shown + self.interval_s - self.clock()
        if urgent or wait <= 0:
            self.cancel()
            self._show(event)
            return
        self._due = event
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._show_due)

    def take_due(self) -> Any:
        """The event waiting for its turn (None if none); it will not be shown by the timer any more."""
        event = self._due
        self.cancel()
        return event

    def cancel(self) -> None:
        self._due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _show_due(self) -> None:
        self._timer = None
        event, self._due = self._due, None
        if event is not None:
            self._show(event)

    def _show(self, event: Any) -> None:
        self._shown = self.clock()
        self.show(event)
