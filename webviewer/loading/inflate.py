"""The deflate inflater every load mode shares: zlib.

Inflating is the largest CPU cost of an unthrottled load (200 MB for the seed-sized CT), and every mode pays it:
Batch and the directory path through :func:`inflate_member`, stream-unzip through zlib. They all use the same
library, so the comparison between modes stays fair.

Measured on the seed-sized sample (380 members, 106 MB -> 200 MB; 2 EPYC cores; best of 3;
``python -m webviewer.bench.inflate ZIP`` reproduces the first row):

==========================================  ========
path                                        zlib
==========================================  ========
each member inflated in one call, + CRC     0.59 s
stream-unzip, 1 MiB input chunks            0.75 s
zipfile.ZipFile.read                        0.90 s
==========================================  ========

ISA-L (python-isal) inflated the same members in 0.36 s and was an opt-in until this version; with it installed
the full test suite crashed inside the garbage collector in 2 of about 10 runs (0 of 8 without it), and the cause
was not found. A known crash must not stay behind a flag, so the option was removed.

zlib-ng (python-zlib-ng 1.1.0, zlib-ng 2.3.3, ``zlib_ng.zlib_ng.decompressobj``) was A/B-tested against zlib
1.2.13 on the sample-seed and sample-seed-enhanced ZIPs: interleaved, 7-11 runs a trial, load average 1.7-4.6
(shared machine), output bit for bit the same. Median wall time saved on the Enhanced sample's one 200 MB
member: 13-22 % fed in 1 MiB pieces, as PoC2 inflates it (``zipstream.inflate_streaming``; CPU time 23-27 %),
9-26 % in one call (44 % in a trial a test run disturbed); on the seed's 380 members 20-30 %. Not reliably the
25 % on the single stream that a new native dependency had to show (and stream-unzip would keep zlib): not adopted.
"""

from __future__ import annotations

import time
import zlib

#: what the inflater accepts without a copy
Buffer = bytes | bytearray | memoryview

#: the inflater's name, as the benchmark reports it
INFLATER_NAME = "zlib"
#: what the inflater raises on corrupt deflate data
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,)


def inflate_member(raw: Buffer, size: int) -> bytes:
    """Inflate one raw-deflate ZIP member that should hold ``size`` bytes (from the central directory).

    At most ``size + 1`` bytes come out, so a member that lies about its size is caught without inflating it
    all (the caller compares the length and the CRC).
    """
    return zlib.decompressobj(-15).decompress(raw, size + 1)


def new_inflater() -> zlib._Decompress:
    """A raw-deflate decompressor for one member inflated piece by piece (a member too large to hold whole)."""
    return zlib.decompressobj(-15)


def crc32(data: Buffer, value: int = 0) -> int:
    """CRC-32 as ZIP stores it."""
    return zlib.crc32(data, value)


def inflate_alone_s(members: list[tuple[Buffer, int]], rounds: int = 3) -> float:
    """Best-of-``rounds`` seconds to inflate and CRC ``(raw, size)`` members in memory."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for raw, size in members:
            crc32(inflate_member(raw, size))
        best = min(best, time.perf_counter() - t0)
    return best
