"""VTK rendering of the four panes (axial, 3D, sagittal, coronal); engine code, never imports trame.

Importing this package selects VTK's EGL offscreen window (``VTK_DEFAULT_OPENGL_WINDOW``) unless the
environment already chose one; it must happen before the first render window exists.
"""

from __future__ import annotations

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from .orientation import direction_letter, labels_for_view, orientation_labels  # noqa: E402
from .panes import FourPaneRenderer  # noqa: E402
from .presets import (  # noqa: E402
    VR_PRESET_NAMES,
    VR_PRESETS,
    WINDOW_PRESET_NAMES,
    WINDOW_PRESETS,
    auto_window,
)

__all__ = [
    "FourPaneRenderer",
    "VR_PRESETS",
    "VR_PRESET_NAMES",
    "WINDOW_PRESETS",
    "WINDOW_PRESET_NAMES",
    "auto_window",
    "direction_letter",
    "labels_for_view",
    "orientation_labels",
]
