"""argparse ``type=`` functions for the numeric options of the entry points.

A bad value makes argparse exit with code 2 and ``argument --NAME: <what was wrong>``, before anything starts.
Shared by ``webviewer`` (the app), the ``cli`` commands and the Docker config writer, which may not import each other.
"""

from __future__ import annotations

import argparse
import math

#: more inflate threads than this gain nothing on a CT and only cost memory
MAX_INFLATE_WORKERS = 64


def _number(text: str, kind: type[int] | type[float]) -> float:
    noun = "a whole number" if kind is int else "a number"
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a timeout, a budget)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number, 0 or above (an interval where 0 switches the feature off, a latency)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or above, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1 (a count of runs, sessions or seconds)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or above, got {text!r}")
    return value


def inflate_workers(text: str) -> int:
    """Members inflated at once: 0 (stream-unzip) to MAX_INFLATE_WORKERS."""
    value = non_negative_int(text)
    if value > MAX_INFLATE_WORKERS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INFLATE_WORKERS}, got {text!r}")
    return value


def listen_port(text: str) -> int:
    """A TCP port to listen on, 0 (the system picks a free one) to 65535."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0 to 65535, got {text!r}")
    return value


def tcp_port(text: str) -> int:
    """A fixed TCP port, 1 to 65535."""
    value = listen_port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("a TCP port is 1 to 65535, got '0'")
    return value
