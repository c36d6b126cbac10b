"""How long inflating an archive's members alone takes (no I/O, no parse): the floor the load modes are held to.

``python -m webviewer.bench.inflate ARCHIVE.zip`` prints it.
"""

from __future__ import annotations

import sys

from webviewer.loading.inflate import INFLATER_NAME, inflate_alone_s
from webviewer.loading.unzip import raw_deflated_members


def inflate_reference(zip_bytes: bytes, rounds: int = 3) -> dict[str, float]:
    """Seconds to inflate every deflated member of ``zip_bytes`` alone, keyed by the inflater's name."""
    return {INFLATER_NAME: inflate_alone_s(raw_deflated_members(zip_bytes), rounds)}


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m webviewer.bench.inflate ARCHIVE.zip", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as fh:
        data = fh.read()
    for name, seconds in inflate_reference(data).items():
        print(f"{name}: {seconds:.3f} s to inflate and CRC every member (best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
