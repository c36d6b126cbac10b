"""Network emulation for the archive endpoint: named profiles, rate/latency parsing and a byte pacer.

The pacer is a token bucket without burst: before a chunk goes out it sleeps until
``bytes_sent + len(chunk) <= rate * elapsed``. Because the target is computed from the absolute start time,
oversleeping never accumulates into a rate error; the body streams in small chunks, never buffered whole.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

#: largest latency accepted (ms): more is a typo, not a network
MAX_LATENCY_MS = 60_000.0
#: slowest rate accepted (bytes/s)
MIN_RATE = 1_000.0


@dataclass(frozen=True)
class NetworkProfile:
    """A named network condition the UI, the API query and the bench share."""

    name: str
    label: str
    rate_bytes_per_s: float | None  # None: unlimited
    latency_ms: float

    def to_json(self) -> dict:
        return asdict(self)


PROFILES: dict[str, NetworkProfile] = {
    p.name: p
    for p in (
        NetworkProfile("unlimited", "Unlimited", None, 0.0),
        NetworkProfile("1gbit", "1 Gbit/s", 125_000_000.0, 0.0),
        NetworkProfile("100mbit", "100 Mbit/s", 12_500_000.0, 0.0),
        NetworkProfile("40mbit", "40 Mbit/s", 5_000_000.0, 0.0),
        NetworkProfile("4g", "4G", 3_750_000.0, 10.0),
    )
}

_UNLIMITED = {"unlimited", "none", "off", "inf", "0"}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]?)(bits?|b|B|bps|Bps)?(/s|ps)?\s*$")
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_rate(value: str | float | int | None) -> float | None:
    """Bytes per second from ``100mbit``, ``40Mbit/s``, ``1gbit``, ``5MB``, ``500kB/s``, ``123456`` (bytes/s).

    SI prefixes; ``bit``/``b``/``bps`` mean bits, ``B``/``Bps`` bytes, a bare number bytes/s; a prefix needs a
    unit (``5M`` is refused). A profile name (``4g``) gives that profile's rate. ``unlimited``
    (or None, ``none``, ``off``, ``0``) returns None. Anything else raises ValueError with a message.
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if number == 0:
            return None
        if not math.isfinite(number) or number < MIN_RATE:
            raise ValueError(f"rate {value!r} must be at least {MIN_RATE:.0f} bytes/s, or 'unlimited'")
        return number
    text = str(value).strip()
    if text.lower() in _UNLIMITED:
        return None
    if text.lower() in PROFILES:  # "4g" is the 4G profile's rate, not 4 GB/s
        return PROFILES[text.lower()].rate_bytes_per_s
    m = _RATE_RE.match(text)
    if not m or (m.group(2) and not m.group(3)):
        raise ValueError(
            f"bad rate {text!r}: use forms like 100mbit, 40mbit, 1gbit, 5MB (bytes/s) or unlimited"
        )
    number, prefix, unit, _ = m.groups()
    rate = float(number) * _PREFIX[prefix.lower()]
    unit = unit or "B"
    if unit.lower().startswith("bit") or unit in ("b", "bps"):
        rate /= 8.0
    if rate == 0:
        return None
    if rate < MIN_RATE:
        raise ValueError(f"rate {text!r} is below {MIN_RATE:.0f} bytes/s; use a larger rate or unlimited")
    return rate


def parse_latency(value: str | float | int | None) -> float:
    """Milliseconds before the first byte from ``10``, ``10ms``, ``0.5s``; 0 for None/empty.

    Raises ValueError for negative, non-numeric or absurd (> 60 s) values.
    """
    if value is None:
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = float(value)
    else:
        text = str(value).strip().lower()
        if not text:
            return 0.0
        m = re.match(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?$", text)
        if not m:
            raise ValueError(f"bad latency {value!r}: give milliseconds, e.g. 10 or 10ms (or 0.5s)")
        ms = float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)
    if not math.isfinite(ms) or ms < 0 or ms > MAX_LATENCY_MS:
        raise ValueError(f"latency {value!r} must be between 0 and {MAX_LATENCY_MS:.0f} ms")
    return ms


def parse_profile(name: str) -> NetworkProfile:
    """The profile called ``name`` (case-insensitive); ValueError listing the names otherwise."""
    key = name.strip().lower().replace(" ", "").replace("/s", "")
    if key in PROFILES:
        return PROFILES[key]
    for p in PROFILES.values():
        if p.label.lower().replace(" ", "").replace("/s", "") == key:
            return p
    raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")


def format_rate(rate: float | None) -> str:
    """Human form of a rate: ``100.0 Mbit/s`` or ``unlimited``."""
    if rate is None:
        return "unlimited"
    return f"{rate * 8 / 1e6:.1f} Mbit/s"


def chunk_size_for(rate: float | None) -> int:
    """Chunk size that keeps pacing smooth: about 20 ms of data, between 4 KiB and 256 KiB."""
    if rate is None:
        return 256 * 1024
    return int(min(256 * 1024, max(4096, rate / 50)))


class Pacer:
    """Paces a byte stream so that bytes sent never exceed ``rate * elapsed``.

    ``clock`` (seconds, monotonic) and ``sleep`` (awaitable) are injectable for tests. The clock starts at the
    first ``wait``.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self.sent = 0

    def delay_for(self, nbytes: int) -> float:
        """Seconds to wait now before ``nbytes`` more may be sent (0 when within the budget)."""
        if self.rate is None:
            return 0.0
        if self._start is None:
            self._start = self._clock()
        due = (self.sent + nbytes) / self.rate
        return max(0.0, due - (self._clock() - self._start))

    async def wait(self, nbytes: int) -> None:
        """Sleep until ``nbytes`` may be sent, then count them as sent."""
        delay = self.delay_for(nbytes)
        if delay > 0:
            await self._sleep(delay)
        self.sent += nbytes

    @property
    def elapsed(self) -> float:
        return 0.0 if self._start is None else self._clock() - self._start
