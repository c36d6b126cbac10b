"""freeze_startup_objects(): the start-up heap leaves the collector's reach, what comes later is still collected.

Run in a fresh interpreter: freezing this test process would freeze pytest's own heap."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, weakref
from webviewer.app.memory import freeze_startup_objects, release_memory

class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it

before = Node()
before_ref = weakref.ref(before)
freeze_startup_objects()
assert gc.get_freeze_count() > 0
del before
release_memory()
assert before_ref() is not None, "a start-up cycle was collected"
later = Node()
later_ref = weakref.ref(later)
del later
release_memory()
assert later_ref() is None, "garbage made after the freeze was not collected"
gc.unfreeze()
gc.collect()
assert before_ref() is None, "unfrozen, the start-up cycle is collected"
print("ok")
"""


def test_frozen_start_up_objects_stay_and_later_garbage_cycles_are_still_freed():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
