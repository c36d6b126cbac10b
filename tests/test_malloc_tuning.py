"""glibc tuning of the engine's processes (webviewer.loading.metrics.tune_malloc), in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest

# member-sized buffers (compressed and inflated DICOM members are 0.2-0.6 MB) made and freed one after another,
# as a load does 380 times; the minor page faults of the last 20 rounds are printed
CHURN = """
import ctypes, resource, sys
from webviewer.loading import metrics
metrics.tune_malloc()
if sys.argv[1] == "stock-trim":  # the fixed mmap threshold alone (glibc then keeps its 128 KiB trim threshold)
    ctypes.CDLL("libc.so.6").mallopt(metrics.M_TRIM_THRESHOLD, 128 * 1024)
def churn(rounds):
    for _ in range(rounds):
        a = bytearray(600_000); a[::4096] = b"x" * len(a[::4096])
        b = bytearray(300_000); b[::4096] = b"y" * len(b[::4096])
        del a, b
churn(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn(20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(variant: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, variant], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_member_buffers_are_reused_without_faulting_pages_in_again():
    """With the mmap threshold fixed, glibc's trim threshold stays at 128 KiB: a freed 0.6 MB buffer goes back to
    the kernel and the next one faults ~220 pages in again. tune_malloc keeps the freed heap for the next buffer
    (a load ends with malloc_trim, which gives it back)."""
    stock, tuned = _faults("stock-trim"), _faults("tuned")
    assert stock >= 20 * 100  # most of every round's pages faulted in again
    assert tuned < stock / 10
