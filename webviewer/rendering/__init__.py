"""VTK rendering of the four panes (axial, 3D, sagittal, coronal); engine code, never imports trame.

Offscreen rendering without a GPU needs VTK's EGL window: the entry points select it through
``webviewer.runtime.configure_runtime()`` before the first render window exists.
"""

from __future__ import annotations

from .orientation import direction_letter, labels_for_view, orientation_labels
from .panes import FourPaneRenderer
from .presets import (
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
