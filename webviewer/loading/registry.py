"""Loaded contents (one per load), addressable by id; removing one drops every reference to its volume.

With a ``ContentBudget`` the registry also says which contents to unload to stay within the session's memory
budget (``make_room`` before a load, ``enforce`` after it) and remembers what it unloaded and why.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from webviewer.loading.budget import ContentBudget, Eviction
from webviewer.loading.volume import CTVolume

CONTENT_ID_PREFIXES = {
    "stream-dicom": "PoC_CT_STREAMDICOM_",
    "stream-files": "PoC_CT_STREAMFILE_",
    "batch": "CT_BATCH_",
}

_last_ms = 0
_id_lock = threading.Lock()


def _mode_name(mode: Any) -> str:
    return str(getattr(mode, "value", mode))


def make_content_id(mode: Any, now_ms: int | None = None) -> str:
    """``PoC_CT_STREAMDICOM_<epoch ms>`` / ``PoC_CT_STREAMFILE_<epoch ms>`` / ``CT_BATCH_<epoch ms>``.

    Without ``now_ms`` the clock is read, and ids made in the same millisecond get increasing numbers, so they
    stay unique within the process.
    """
    global _last_ms
    name = _mode_name(mode)
    try:
        prefix = CONTENT_ID_PREFIXES[name]
    except KeyError:
        raise ValueError(f"unknown load mode {name!r}; use one of {sorted(CONTENT_ID_PREFIXES)}") from None
    if now_ms is None:
        with _id_lock:
            now_ms = max(int(time.time() * 1000), _last_ms + 1)
            _last_ms = now_ms
    return f"{prefix}{int(now_ms)}"


@dataclass(eq=False)
class Content:
    """One loaded CT, as the app lists it."""

    id: str
    name: str
    source: str
    metadata: dict
    volume: CTVolume | None
    mode: str
    created: float = field(default_factory=time.time)  # epoch seconds
    type: str = "CT"

    def to_json(self) -> dict:
        """Everything but the voxels."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "source": self.source,
            "metadata": dict(self.metadata),
            "mode": self.mode,
            "created": self.created,
            "volume_bytes": self.volume.nbytes if self.volume is not None else 0,
        }


@dataclass(frozen=True)
class UnloadedContent:
    """A content the budget unloaded: what it was, the memory it gave back, and why."""

    id: str
    name: str
    nbytes: int
    reason: str  # "budget" or "count"
    detail: str
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "memory_mb": round(self.nbytes / 1e6, 1),
                "reason": self.reason, "detail": self.detail, "at": self.at}


class ContentRegistry:
    """Thread-safe registry of loaded contents, in load order, optionally kept within a ``ContentBudget``."""

    def __init__(self, budget: ContentBudget | None = None, *, history: int = 10) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Content] = {}
        self.budget = budget
        #: the id of the content the views show (never unloaded by the budget)
        self.on_screen: str | None = None
        self._unloaded: list[UnloadedContent] = []
        self._history = int(history)

    def add(self, result: Any, *, source: str | None = None, on_screen: bool = True) -> Content:
        """Register a LoadResult (content_id, name, mode, volume, metadata; ``source`` if it has one); by
        default it becomes the content on screen."""
        src = source if source is not None else str(getattr(result, "source", "") or "")
        content = Content(
            id=result.content_id,
            name=result.name,
            source=src,
            metadata=dict(result.metadata),
            volume=result.volume,
            mode=_mode_name(result.mode),
        )
        with self._lock:
            old = self._items.pop(content.id, None)
            if old is not None:
                old.volume = None
            self._items[content.id] = content
            if on_screen:
                self.on_screen = content.id
        return content

    def list(self) -> list[Content]:
        with self._lock:
            return list(self._items.values())

    def get(self, content_id: str) -> Content | None:
        with self._lock:
            return self._items.get(content_id)

    def remove(self, content_id: str) -> bool:
        """Forget a content and drop its volume reference (memory is freed once no view holds it)."""
        with self._lock:
            content = self._items.pop(content_id, None)
            if content_id == self.on_screen:
                self.on_screen = None
        if content is None:
            return False
        content.volume = None
        return True

    def clear(self) -> None:
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
            self.on_screen = None
        for content in items:
            content.volume = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, content_id: object) -> bool:
        with self._lock:
            return content_id in self._items

    # -- the memory budget ----------------------------------------------------------------------------
    def held_bytes(self) -> int:
        """Bytes of every registered volume."""
        with self._lock:
            return sum(_nbytes(c) for c in self._items.values())

    def make_room(self, incoming_bytes: int, *, extra_bytes: int = 0) -> list[UnloadedContent]:
        """Before a load of ``incoming_bytes``: unload the oldest contents not on screen until it fits."""
        return self._apply(max(1, int(incoming_bytes)), int(extra_bytes))

    def enforce(self, *, extra_bytes: int = 0) -> list[UnloadedContent]:
        """After a load: keep the content on screen and at most ``keep - 1`` before it, within the budget."""
        return self._apply(0, int(extra_bytes))

    def _apply(self, incoming: int, extra: int) -> list[UnloadedContent]:
        if self.budget is None:
            return []
        with self._lock:
            held = [(c.id, _nbytes(c)) for c in self._items.values()]
            plan: list[Eviction] = self.budget.evictions(held, on_screen=self.on_screen, incoming_bytes=incoming,
                                                         extra_bytes=extra)
            done = []
            for ev in plan:
                content = self._items.pop(ev.content_id)
                done.append(UnloadedContent(content.id, content.name, ev.nbytes, ev.reason, ev.detail))
                content.volume = None
            self._unloaded = (done[::-1] + self._unloaded)[: self._history]
        return done

    @property
    def unloaded(self) -> list[UnloadedContent]:
        """What the budget unloaded, newest first (the last ``history`` of them)."""
        with self._lock:
            return list(self._unloaded)


def _nbytes(content: Content) -> int:
    return int(content.volume.nbytes) if content.volume is not None else 0
