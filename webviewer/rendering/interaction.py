"""Mouse handling of the 2D panes: window/level drag, click-to-cursor, wheel slicing (vtk observers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

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

    def notify(self, kind: str) -> None: ...

#: pixels the pointer may move between press and release and still count as a click
CLICK_TOLERANCE_PX = 3


def bind_slice_interaction(renderer: InteractionTarget, view: SliceView) -> None:
    """Left drag = window/level of all 2D panes (right = wider window, up = higher level, i.e. darker; a full
    pane width changes the window by 2x max(window, 100) HU), left click = move the cursor to that point,
    wheel = next/previous slice; shift/ctrl-left, middle and right buttons keep vtkInteractorStyleImage's
    pan / spin / zoom. Observers on the style replace its own handlers for these events."""
    style, iren = view.style, view.interactor
    drag: dict[str, Any] = {"mode": None}

    def press(*_):
        if iren.GetShiftKey() or iren.GetControlKey() or renderer.geometry is None:
            drag["mode"] = "style"
            style.OnLeftButtonDown()
            return
        x, y = iren.GetEventPosition()
        drag.update(mode="wl", start=(x, y), wl=renderer.window_level, moved=False)

    def move(*_):
        if drag["mode"] != "wl":
            style.OnMouseMove()
            return
        x, y = iren.GetEventPosition()
        x0, y0 = drag["start"]
        if not drag["moved"] and max(abs(x - x0), abs(y - y0)) <= CLICK_TOLERANCE_PX:
            return
        drag["moved"] = True
        w, h = view.window.GetSize()
        width0, level0 = drag["wl"]
        scale = 2.0 * max(width0, 100.0)
        renderer.set_window_level(width0 + (x - x0) / max(w, 1) * scale, level0 + (y - y0) / max(h, 1) * scale)
        renderer.notify("window")

    def release(*_):
        mode, drag["mode"] = drag["mode"], None
        if mode == "style":
            style.OnLeftButtonUp()
            renderer.notify("camera")
        elif mode == "wl" and not drag["moved"] and renderer.geometry is not None:
            x, y = iren.GetEventPosition()
            point = view.display_to_plane(x, y)
            renderer.set_cursor(renderer.geometry.to_ijk(point))
            renderer.notify("cursor")

    def wheel(step: int):
        def handler(*_):
            if renderer.geometry is None:
                return
            index, _count = renderer.slice_info(view.name)
            renderer.set_slice(view.name, index + step)
            renderer.notify("slice")
        return handler

    style.AddObserver("LeftButtonPressEvent", press)
    style.AddObserver("MouseMoveEvent", move)
    style.AddObserver("LeftButtonReleaseEvent", release)
    style.AddObserver("MouseWheelForwardEvent", wheel(+1))
    style.AddObserver("MouseWheelBackwardEvent", wheel(-1))

    def button_up(default):
        def handler(*_):
            default()
            renderer.notify("camera")
        return handler

    style.AddObserver("RightButtonReleaseEvent", button_up(style.OnRightButtonUp))
    style.AddObserver("MiddleButtonReleaseEvent", button_up(style.OnMiddleButtonUp))
