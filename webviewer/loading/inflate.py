"""The deflate inflater every load mode shares: zlib, or ISA-L (``isal.isal_zlib``) when asked for.

Inflating is the largest CPU cost of an unthrottled load (200 MB for the seed-sized CT), and every mode pays it:
Batch and the directory path through :func:`inflate_member`, stream-unzip through its ``zlib`` global. They all
use the same library, so a faster inflater speeds every mode alike and the comparison between modes stays fair.

Measured on the seed-sized sample (380 members, 106 MB -> 200 MB; 2 EPYC cores; best of 3;
``python -m webviewer.loading.inflate ZIP`` reproduces the first two rows):

==========================================  ========  ========
path                                        zlib      ISA-L
==========================================  ========  ========
each member inflated in one call, + CRC     0.59 s    0.36 s
stream-unzip, 1 MiB input chunks            0.75 s    0.44 s
zipfile.ZipFile.read (zlib only)            0.90 s    --
==========================================  ========  ========

stream-unzip reads the module global ``zlib`` when it runs (``zlib.decompressobj``, ``zlib.crc32``,
``zlib.error``, ``zlib.MAX_WBITS``); :func:`install_in_stream_unzip` points that global at the chosen inflater.
``WEBVIEWER_INFLATER=isal`` (with ``pip install isal``) selects ISA-L for every mode.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
import zlib

log = logging.getLogger(__name__)

#: what the inflaters accept without a copy
Buffer = bytes | bytearray | memoryview

#: environment variable that picks the inflater: "isal" (default when installed) or "zlib"
INFLATER_ENV = "WEBVIEWER_INFLATER"


def _isal_module() -> types.ModuleType | None:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def choose_inflater(requested: str | None = None) -> tuple[str, types.ModuleType]:
    """(name, zlib-compatible module): ``requested`` or ``$WEBVIEWER_INFLATER``; zlib unless "isal" is asked for.

    ISA-L is opt-in: with it installed, the full test suite crashed in the garbage collector in 2 of about 10
    runs (0 of 8 without it); the cause was not found, so it is not the default (see the README).
    """
    wanted = (requested or os.environ.get(INFLATER_ENV) or "zlib").strip().lower()
    if wanted not in ("isal", "zlib"):
        raise ValueError(f"{INFLATER_ENV} must be 'isal' or 'zlib', not {wanted!r}")
    if wanted == "zlib":
        return "zlib", zlib
    isal = _isal_module()
    if isal is not None:
        return "isal", isal
    log.warning("%s=isal but the isal package is not installed (pip install isal); using zlib", INFLATER_ENV)
    return "zlib", zlib


INFLATER_NAME, _IMPL = choose_inflater()
#: what both inflaters raise on corrupt deflate data
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, *((_IMPL.error,) if _IMPL is not zlib else ()))


def inflate_member(raw: Buffer, size: int) -> bytes:
    """Inflate one raw-deflate ZIP member that should hold ``size`` bytes (from the central directory).

    At most ``size + 1`` bytes come out, so a member that lies about its size is caught without inflating it
    all (the caller compares the length and the CRC).
    """
    return _IMPL.decompressobj(-15).decompress(raw, size + 1)


def crc32(data: Buffer, value: int = 0) -> int:
    """CRC-32 as ZIP stores it, with the chosen library (ISA-L's is several times faster than zlib's)."""
    return _IMPL.crc32(data, value)


class _StreamUnzipZlib(types.ModuleType):
    """What stream-unzip sees as ``zlib``: the chosen inflater for what it uses, zlib for anything else."""

    def __init__(self, impl: types.ModuleType) -> None:
        super().__init__("zlib")
        self.decompressobj = impl.decompressobj
        self.crc32 = impl.crc32
        self.error = impl.error
        self.MAX_WBITS = zlib.MAX_WBITS

    def __getattr__(self, name: str) -> object:
        return getattr(zlib, name)


def install_in_stream_unzip() -> None:
    """Point stream-unzip's ``zlib`` global at the chosen inflater (idempotent; nothing to do for zlib)."""
    import stream_unzip

    if not hasattr(stream_unzip, "zlib"):
        raise RuntimeError("stream_unzip no longer has a module-level zlib; re-check webviewer.loading.inflate")
    if _IMPL is zlib:
        stream_unzip.zlib = zlib
    elif not isinstance(stream_unzip.zlib, _StreamUnzipZlib):
        stream_unzip.zlib = _StreamUnzipZlib(_IMPL)
    log.debug("stream-unzip inflates with %s", INFLATER_NAME)


def inflate_alone_s(members: list[tuple[Buffer, int]], module: types.ModuleType, rounds: int = 3) -> float:
    """Best-of-``rounds`` seconds to inflate and CRC ``(raw, size)`` members with ``module`` in memory."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for raw, size in members:
            module.crc32(module.decompressobj(-15).decompress(raw, size + 1))
        best = min(best, time.perf_counter() - t0)
    return best


def inflate_reference(zip_bytes: bytes, rounds: int = 3) -> dict[str, float]:
    """Seconds to inflate every deflated member of ``zip_bytes`` alone, per available library (no I/O, no parse)."""
    from webviewer.loading.unzip import raw_deflated_members

    members = raw_deflated_members(zip_bytes)
    timings = {"zlib": inflate_alone_s(members, zlib, rounds)}
    isal = _isal_module()
    if isal is not None:
        timings["isal"] = inflate_alone_s(members, isal, rounds)
    return timings


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m webviewer.loading.inflate ARCHIVE.zip", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as fh:
        data = fh.read()
    for name, seconds in inflate_reference(data).items():
        print(f"{name}: {seconds:.3f} s to inflate and CRC every member (best of 3)")
    print(f"the loader uses: {INFLATER_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
