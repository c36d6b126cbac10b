"""Process-wide runtime settings, made once by each entry point and never by a library call.

- glibc's mmap threshold fixed at 1 MiB and numpy's transparent-huge-page advice off
  (:func:`webviewer.loading.metrics.tune_malloc`; ``WEBVIEWER_MALLOC_TUNING=0`` opts out): steady load times and
  memory that goes back to the OS when a volume is dropped;
- VTK's EGL offscreen render window (``VTK_DEFAULT_OPENGL_WINDOW``) unless the environment chose one; it must be
  set before the first render window exists.
"""

from __future__ import annotations

import logging
import os

from webviewer.loading.metrics import tune_malloc

log = logging.getLogger(__name__)

VTK_WINDOW_ENV = "VTK_DEFAULT_OPENGL_WINDOW"


def configure_runtime(*, rendering: bool = True) -> dict[str, object]:
    """Apply the process-wide settings (idempotent); returns what was set, for the log."""
    applied: dict[str, object] = {"malloc_tuned": tune_malloc()}
    if rendering:
        os.environ.setdefault(VTK_WINDOW_ENV, "vtkEGLRenderWindow")
        applied["vtk_window"] = os.environ[VTK_WINDOW_ENV]
    log.debug("runtime: %s", applied)
    return applied
