"""Loaded contents (one per load), addressable by id; removing one drops every reference to its volume."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

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


class ContentRegistry:
    """Thread-safe registry of loaded contents, in load order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Content] = {}

    def add(self, result: Any, *, source: str | None = None) -> Content:
        """Register a LoadResult (content_id, name, mode, volume, metadata; ``source`` if it has one)."""
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
        if content is None:
            return False
        content.volume = None
        return True

    def clear(self) -> None:
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        for content in items:
            content.volume = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, content_id: object) -> bool:
        with self._lock:
            return content_id in self._items
