"""VTK observers that do not keep their Python owner alive.

``vtk_object.AddObserver(event, self.method)`` on a VTK object that ``self`` holds is a reference cycle through
VTK (the object holds the callback, the callback holds ``self``, ``self`` holds the object). Only Python's cyclic
garbage collector frees such a cycle, and it tears the VTK pipelines down in an order VTK does not expect: a pane
left to it crashed inside ``vtkGarbageCollector`` (a full ``gc.collect()`` in the test suite, seen under gdb). With
a weak reference the panes are freed by reference counting, the way VTK objects normally go.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


def weak_callback(method: Callable[..., Any], *args: Any) -> Callable[..., None]:
    """An observer callback that calls the bound ``method(*args)`` while its object lives, and nothing after."""
    ref = weakref.WeakMethod(method)

    def call(*_vtk_args: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(*args)

    return call
