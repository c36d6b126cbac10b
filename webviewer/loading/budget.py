"""The memory budget of one session's loaded contents (volumes and their render copies).

The registry keeps a session's contents within this budget, and the multi-user deployment derives its default
number of sessions from it (free memory / (idle session + budget)).

Policy: the content on screen is never unloaded; by default it and the one loaded before it are kept
(``keep=2``), and never more than the budget. A load first makes room for its volume (oldest contents not on
screen go first); a volume that alone exceeds the budget is refused before the download.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from webviewer.errors import LimitExceededError
from webviewer.units import MB

log = logging.getLogger(__name__)


#: default budget in MB (10**6 bytes): sized so that a seed-sized CT on screen and its predecessor fit, with the
#: next seed-sized load in flight. Measured with the app's renderer (llvmpipe): the seed CT (512x512x380) costs
#: 199.2 MB of volume + 73 MB of render copies (3D half-resolution copy, gradient tables) while on screen:
#: 272 + 199 (predecessor) + 199 (next load) = 670 MB, rounded up with >= 10 % headroom -> 800.
DEFAULT_CONTENT_BUDGET_MB = 800
#: contents kept by default: the one on screen and the one loaded before it
DEFAULT_KEEP = 2
#: peak memory of a load / its volume, per mode (the benchmark's seed medians: Batch 708 MB, PoC1 603 MB, PoC2
#: 205 MB for a 199 MB volume): a load makes room for its working memory, not only for the volume it leaves
WORKING_MEMORY_FACTOR = {"batch": 3.6, "stream-files": 3.1, "stream-dicom": 1.05}
#: files that sit in CT ZIPs but hold no slice (they do not count toward a volume estimate)
_NOT_SLICES = ("dicomdir", "dirfile")
#: a DICOM slice file holds its header besides the pixels; subtracted per member from a ZIP directory estimate
HEADER_ALLOWANCE_BYTES = 2048


class BudgetExceededError(LimitExceededError):
    """A load's volume alone exceeds the session's content budget (refused before the download)."""

    code = "budget"
    default_message = "The CT is larger than this session's memory budget. Raise --content-budget-mb."


@dataclass(frozen=True)
class Eviction:
    """A content the budget unloads, and why (``reason``: ``"budget"`` or ``"count"``)."""

    content_id: str
    nbytes: int
    reason: str
    detail: str


@dataclass(frozen=True)
class ContentBudget:
    """How much a session may hold in loaded contents, and how many it keeps."""

    budget_bytes: int = DEFAULT_CONTENT_BUDGET_MB * MB
    keep: int = DEFAULT_KEEP

    def __post_init__(self) -> None:
        if self.budget_bytes <= 0:
            raise ValueError(f"the content budget must be positive, got {self.budget_bytes} bytes")
        if self.keep < 1:
            raise ValueError(f"keep at least the content on screen (keep >= 1), got {self.keep}")

    @classmethod
    def from_mb(cls, mb: float, keep: int = DEFAULT_KEEP) -> ContentBudget:
        """A budget of ``mb`` megabytes (10**6 bytes)."""
        return cls(int(float(mb) * MB), keep)

    @property
    def budget_mb(self) -> float:
        return self.budget_bytes / MB

    def refusal(self, volume_bytes: int, what: str) -> str:
        """The message for a volume that alone exceeds the budget: names the budget and how to raise it."""
        need = -(-volume_bytes // MB)
        suggest = -(-(2 * need) // 100) * 100  # this CT and one like it before it, rounded up to 100 MB
        return (f"{what} needs {volume_bytes / MB:.0f} MB for its volume alone, more than this session's content "
                f"budget of {self.budget_mb:g} MB, so it was not downloaded and the content on screen stays. "
                f"To load it, start webviewer with --content-budget-mb {suggest} (at least {need}).")

    def check_volume(self, volume_bytes: int | None, what: str = "This CT") -> None:
        """Raise BudgetExceededError when ``volume_bytes`` (an estimate; None = unknown) exceeds the budget."""
        if volume_bytes is not None and volume_bytes > self.budget_bytes:
            raise BudgetExceededError(self.refusal(volume_bytes, what))

    def evictions(self, held: Sequence[tuple[str, int]], *, on_screen: str | None,
                  incoming_bytes: int = 0, extra_bytes: int = 0) -> list[Eviction]:
        """What to unload, oldest first. ``held``: (id, bytes) in load order; ``on_screen`` is never unloaded.

        ``incoming_bytes > 0`` (before a load): only make room, so that held + extra + incoming fits the budget.
        ``incoming_bytes == 0`` (after a load): also keep at most ``keep`` contents.
        ``extra_bytes``: memory held outside the list (render copies, an unregistered volume on screen).
        """
        total = sum(n for _, n in held) + extra_bytes + incoming_bytes
        count = len(held)
        out: list[Eviction] = []
        for content_id, nbytes in held:
            if content_id == on_screen:
                continue
            if incoming_bytes == 0 and count > self.keep:
                out.append(Eviction(content_id, nbytes, "count", f"only the content on screen and the "
                                    f"{self.keep - 1} loaded before it are kept"))
            elif total > self.budget_bytes:
                what = f"a {incoming_bytes / MB:.0f} MB load" if incoming_bytes else "the content on screen"
                out.append(Eviction(content_id, nbytes, "budget", f"oldest not on screen, to make room for "
                                    f"{what} within the {self.budget_mb:g} MB budget"))
            else:
                continue
            total -= nbytes
            count -= 1
        return out


def load_need_bytes(volume_bytes: int, mode: Any) -> int:
    """The memory a load of ``mode`` needs at its peak for a volume of ``volume_bytes``."""
    factor = WORKING_MEMORY_FACTOR.get(str(getattr(mode, "value", mode)), max(WORKING_MEMORY_FACTOR.values()))
    return int(volume_bytes * factor)


def volume_bytes_from_catalog(entry: dict[str, Any]) -> int | None:
    """slices x rows x columns x 2 (int16 HU) from a catalog entry; None when a dimension is unknown."""
    try:
        dims = [int(entry[k]) for k in ("slices", "rows", "columns")]
    except (KeyError, TypeError, ValueError):
        return None
    return dims[0] * dims[1] * dims[2] * 2 if all(d > 0 for d in dims) else None


def volume_bytes_from_directory(entries: Iterable[Any]) -> int | None:
    """An estimate from a ZIP central directory: the sizes of the slice files less a header allowance each."""
    total = 0
    for e in entries:
        name = os.path.basename(str(e.name).rstrip("/")).lower()
        if str(e.name).endswith("/") or name in _NOT_SLICES:
            continue
        total += max(0, int(e.size) - HEADER_ALLOWANCE_BYTES)
    return total or None


async def volume_bytes_from_source(url: str, options: Any = None) -> int | None:
    """Read only the ZIP central directory of ``url`` (Range requests, or the local file) and estimate the
    volume; None when the source has no directory to read (a folder, DICOMweb, a server without Range)."""
    from webviewer.loading.source import SourceOptions, open_source

    src_opts = SourceOptions(
        connect_timeout_s=getattr(options, "connect_timeout_s", 10.0),
        auth=getattr(options, "auth", None), headers=getattr(options, "headers", None))
    source = open_source(url, src_opts)
    try:
        entries = await source.directory()
    finally:
        await source.close()
    return volume_bytes_from_directory(entries) if entries else None
