"""One offscreen render window with its renderer, interactor and orientation letters (base of every pane)."""

from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingCore import (
    vtkRenderer,
    vtkRenderWindow,
    vtkRenderWindowInteractor,
    vtkTextActor,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

from .observers import weak_callback
from .orientation import orientation_labels

# (x, y, horizontal justification 0/1/2, vertical justification 0/1/2) in normalized viewport coordinates
_LABEL_PLACES = {
    "top": (0.5, 0.985, 1, 2),
    "bottom": (0.5, 0.015, 1, 0),
    "left": (0.015, 0.5, 0, 1),
    "right": (0.985, 0.5, 2, 1),
}


class Pane:
    """Offscreen vtkRenderWindow + vtkRenderer + (not started) interactor for remote rendering.

    The interactor is a vtkGenericRenderWindowInteractor, initialized (so trame-vtk's forwarded mouse and wheel
    events reach the style) with rendering through the interactor off by default: the remote view renders the
    window itself after each event, so the style's own Render() would only double the cost.
    """

    def __init__(self, name: str, size: tuple[int, int], style, *, interactor_renders: bool = False,
                 show_labels: bool = True) -> None:
        self.name = name
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetMultiSamples(0)
        self.window.SetSize(int(size[0]), int(size[1]))
        self.window.AddRenderer(self.renderer)
        self.style = style
        self.interactor: vtkRenderWindowInteractor = vtkGenericRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.window)
        self.interactor.SetInteractorStyle(style)
        self.interactor.Initialize()
        if not interactor_renders:
            self.interactor.EnableRenderOff()
        self.show_labels = show_labels
        self.labels: dict[str, vtkTextActor] = {}
        for edge, (x, y, hj, vj) in _LABEL_PLACES.items():
            actor = vtkTextActor()
            prop = actor.GetTextProperty()
            prop.SetFontSize(16)
            prop.SetBold(True)
            prop.SetColor(0.95, 0.85, 0.3)
            prop.SetJustification(hj)
            prop.SetVerticalJustification(vj)
            actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            actor.GetPositionCoordinate().SetValue(x, y)
            actor.SetVisibility(False)
            actor.PickableOff()
            self.renderer.AddViewProp(actor)
            self.labels[edge] = actor
        self.has_content = False
        # runs before every Render() of the window, also the ones trame-vtk makes directly
        self.window.AddObserver("StartEvent", weak_callback(self.prepare_render))

    @property
    def camera(self):
        return self.renderer.GetActiveCamera()

    def orientation_labels(self) -> dict[str, str]:
        return orientation_labels(self.camera)

    def _update_labels(self) -> None:
        visible = self.show_labels and self.has_content
        letters = self.orientation_labels() if visible else {}
        for edge, actor in self.labels.items():
            actor.SetVisibility(visible)
            if visible:
                actor.SetInput(letters[edge])

    def prepare_render(self) -> None:
        """Bring labels and the camera clipping range up to date (called from the window's StartEvent)."""
        self._update_labels()
        if self.has_content:
            self.renderer.ResetCameraClippingRange()

    def render(self) -> None:
        self.window.Render()

    def capture(self) -> np.ndarray:
        """Render and return the pane's pixels as (height, width, 3) uint8, top row first."""
        self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def render_png(self) -> bytes:
        self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.ReadFrontBufferOff()
        writer = vtkPNGWriter()
        writer.WriteToMemoryOn()
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
        return bytes(memoryview(writer.GetResult()))

    def finalize(self) -> None:
        """Take the pane apart in a fixed order and release its OpenGL context (also when it is dropped).

        Left to itself, the interactor went first: its style held the last reference to the renderer, whose props
        were then destroyed from inside the style's destructor, and VTK's garbage collector crashed on the way
        (seen under gdb, a few test runs in a hundred)."""
        if self.window is None:
            return
        self.style.SetCurrentRenderer(None)
        self.interactor.SetInteractorStyle(None)
        self.interactor.SetRenderWindow(None)
        self.renderer.RemoveAllViewProps()
        self.window.RemoveRenderer(self.renderer)
        self.window.Finalize()
        self.window = None

    def __del__(self) -> None:
        self.finalize()
