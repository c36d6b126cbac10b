"""Rate/latency parsing, the network profiles and the pacing logic (injected clock: no timing asserts)."""

from __future__ import annotations

import pytest

from webviewer.api.throttle import PROFILES, Pacer, chunk_size_for, parse_latency, parse_profile, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100mbit", 12_500_000.0),
        ("40mbit", 5_000_000.0),
        ("1gbit", 125_000_000.0),
        ("5MB", 5_000_000.0),
        ("5MB/s", 5_000_000.0),
        ("500kB", 500_000.0),
        ("30Mbit/s", 3_750_000.0),
        ("30Mbps", 3_750_000.0),
        ("2.5mbit", 312_500.0),
        ("123456", 123_456.0),
        ("8000b", 1000.0),
        (" 100MBIT ", 12_500_000.0),
        ("4g", 3_750_000.0),
        ("unlimited", None),
        ("Unlimited", None),
        ("0", None),
        (None, None),
        (2_000_000, 2_000_000.0),
    ],
)
def test_parse_rate(text, expected) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "fast", "-5MB", "5M", "1e9", "mbit", "100 parsecs", "nan", "12", "1kbit"])
def test_parse_rate_rejects(text) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("10", 10.0), ("10ms", 10.0), ("0.5s", 500.0), ("0", 0.0), ("", 0.0), (None, 0.0),
                           (25, 25.0)]
)
def test_parse_latency(text, expected) -> None:
    assert parse_latency(text) == expected


@pytest.mark.parametrize("text", ["-1", "abc", "10 min", "99999999", "inf"])
def test_parse_latency_rejects(text) -> None:
    with pytest.raises(ValueError, match="latency"):
        parse_latency(text)


def test_profiles() -> None:
    assert list(PROFILES) == ["unlimited", "1gbit", "100mbit", "40mbit", "4g"]
    assert [p.label for p in PROFILES.values()] == ["Unlimited", "1 Gbit/s", "100 Mbit/s", "40 Mbit/s", "4G"]
    assert PROFILES["unlimited"].rate_bytes_per_s is None
    assert PROFILES["4g"].rate_bytes_per_s == 30e6 / 8 and PROFILES["4g"].latency_ms == 10
    for p in PROFILES.values():
        assert parse_rate(p.name) == p.rate_bytes_per_s
    assert parse_profile("100 Mbit/s") is PROFILES["100mbit"]
    assert parse_profile("4G") is PROFILES["4g"]
    with pytest.raises(ValueError, match="unknown profile"):
        parse_profile("dialup")


class FakeClock:
    """A clock that only moves when the pacer sleeps (plus an optional oversleep, like a busy loop)."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.now = 1000.0
        self.oversleep = oversleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep


@pytest.mark.parametrize("oversleep", [0.0, 0.003])
async def test_pacer_never_exceeds_rate(oversleep: float) -> None:
    rate = 12_500_000.0
    clock = FakeClock(oversleep)
    pacer = Pacer(rate, clock=clock, sleep=clock.sleep)
    chunk = chunk_size_for(rate)
    total = 10_000_000
    start = clock.now
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        await pacer.wait(n)
        sent += n
        # the chunk leaves now: everything sent so far fits in rate * elapsed
        assert sent <= rate * (clock.now - start) + 1e-6
    elapsed = clock.now - start
    assert pacer.sent == total
    # the target is absolute, so oversleeping adds at most one oversleep, not one per chunk
    assert total / rate - 1e-9 <= elapsed <= total / rate + oversleep + 1e-9


async def test_pacer_catches_up_after_a_stall() -> None:
    clock = FakeClock()
    pacer = Pacer(1_000_000.0, clock=clock, sleep=clock.sleep)
    await pacer.wait(100_000)
    assert clock.sleeps == [pytest.approx(0.1)]
    clock.now += 1.0  # the client stalled for a second (TCP backpressure)
    await pacer.wait(500_000)  # within the budget: no sleep
    assert len(clock.sleeps) == 1
    assert pacer.delay_for(1_000_000) == pytest.approx(0.5)


async def test_unlimited_pacer_never_sleeps() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        await pacer.wait(1 << 20)
    assert clock.sleeps == []
    assert pacer.sent == 100 << 20


def test_chunk_size_bounds() -> None:
    assert chunk_size_for(None) == 256 * 1024
    assert chunk_size_for(1000.0) == 4096
    assert chunk_size_for(5_000_000.0) == 100_000
    assert chunk_size_for(125_000_000.0) == 256 * 1024
