"""Mouse handling of the 2D panes: window/level drag, click-to-cursor, wheel slicing (vtk observers)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Protocol

from .observers import weak_callback

if TYPE_CHECKING:
    from .image import VolumeGeometry
    from .slice_view import SliceView


class InteractionTarget(Protocol):
    """What the mouse handlers drive: the four-pane renderer (``panes.FourPaneRenderer``)."""

    geometry: VolumeGeometry | None

    @property
    def window_level(self) -> tuple[float, float]: ...

    def set_window_level(self, width: float, level: float) -> None: ...

    def slice_info(self, pane: str) -> tuple[int, int]: ...

    def set_slice(self, pane: str, index: int) -> None: ...

    def set_cursor(self, ijk: tuple[float, float, float]) -> None: ...

    def notify(self, kind: str, pane: str | None = None) -> None: ...

#: pixels the pointer may move between press and release and still count as a click
CLICK_TOLERANCE_PX = 3


def bind_slice_interaction(renderer: InteractionTarget, view: SliceView) -> None:
    """Left drag = window/level of all 2D panes (right = wider window, up = higher level, i.e. darker; a full
    pane width changes the window by 2x max(window, 100) HU), left click = move the cursor to that point,
    wheel = next/previous slice; shift/ctrl-left, middle and right buttons keep vtkInteractorStyleImage's
    pan / spin / zoom. Observers on the style replace its own handlers for these events.

    The view keeps its handlers (``view.mouse``); they reach the renderer through a weak proxy and the style
    through weak callbacks, so no reference cycle holds the panes (``observers``)."""
    view.mouse = _SliceMouse(renderer, view)
    view.mouse.bind()


class _SliceMouse:
    """The mouse handlers of one 2D pane, with the state of the current left drag."""

    def __init__(self, renderer: InteractionTarget, view: SliceView) -> None:
        self.renderer = weakref.proxy(renderer)
        self.view = weakref.proxy(view)
        self.style, self.iren = view.style, view.interactor
        self.drag: dict[str, Any] = {"mode": None}

    def bind(self) -> None:
        style = self.style
        style.AddObserver("LeftButtonPressEvent", weak_callback(self.press))
        style.AddObserver("MouseMoveEvent", weak_callback(self.move))
        style.AddObserver("LeftButtonReleaseEvent", weak_callback(self.release))
        style.AddObserver("MouseWheelForwardEvent", weak_callback(self.wheel, +1))
        style.AddObserver("MouseWheelBackwardEvent", weak_callback(self.wheel, -1))
        style.AddObserver("RightButtonReleaseEvent", weak_callback(self.camera_button_up, "OnRightButtonUp"))
        style.AddObserver("MiddleButtonReleaseEvent", weak_callback(self.camera_button_up, "OnMiddleButtonUp"))

    def press(self, *_: Any) -> None:
        if self.iren.GetShiftKey() or self.iren.GetControlKey() or self.renderer.geometry is None:
            self.drag["mode"] = "style"
            self.style.OnLeftButtonDown()
            return
        x, y = self.iren.GetEventPosition()
        self.drag.update(mode="wl", start=(x, y), wl=self.renderer.window_level, moved=False)

    def move(self, *_: Any) -> None:
        drag = self.drag
        if drag["mode"] != "wl":
            self.style.OnMouseMove()
            return
        x, y = self.iren.GetEventPosition()
        x0, y0 = drag["start"]
        if not drag["moved"] and max(abs(x - x0), abs(y - y0)) <= CLICK_TOLERANCE_PX:
            return
        drag["moved"] = True
        w, h = self.view.window.GetSize()
        width0, level0 = drag["wl"]
        scale = 2.0 * max(width0, 100.0)
        self.renderer.set_window_level(width0 + (x - x0) / max(w, 1) * scale,
                                       level0 + (y - y0) / max(h, 1) * scale)
        self.renderer.notify("window", self.view.name)

    def release(self, *_: Any) -> None:
        mode, self.drag["mode"] = self.drag["mode"], None
        renderer = self.renderer
        if mode == "style":
            self.style.OnLeftButtonUp()
            renderer.notify("camera")
        elif mode == "wl" and not self.drag["moved"] and renderer.geometry is not None:
            x, y = self.iren.GetEventPosition()
            point = self.view.display_to_plane(x, y)
            renderer.set_cursor(renderer.geometry.to_ijk(point))
            renderer.notify("cursor", self.view.name)

    def wheel(self, step: int) -> None:
        if self.renderer.geometry is None:
            return
        index, _count = self.renderer.slice_info(self.view.name)
        self.renderer.set_slice(self.view.name, index + step)
        self.renderer.notify("slice", self.view.name)

    def camera_button_up(self, default: str) -> None:
        """The style's own handler ``default`` (a method name) ends the pan/zoom, then the app is told."""
        getattr(self.style, default)()
        self.renderer.notify("camera")
