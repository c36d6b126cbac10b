"""Tuning of trame-vtk's image delivery for low latency.

trame-vtk renders on the event loop and JPEG-encodes on a thread. A push whose image is still being encoded
sends the previous image and re-polls later (``delta_stale_time_before_render``, 0.5 s by default). Two
things are changed here, on the protocol instance only:

- re-poll after 20 ms instead of 500 ms, so a new slice or window/level reaches the browser in tens of ms;
- a re-poll that finds the image still encoding polls again. The stock ``render_stale_image`` (trame-vtk
  2.11) only re-polls when ``delta >= interval * (stale_count + 1)`` and otherwise reschedules only when
  ``delta < interval``, so a second re-poll that comes back stale is dropped and the pane keeps its old
  picture until the next push. With a 20 ms interval that happens often on a busy machine.

``set_view_quality`` switches a view's JPEG quality for its next pushes through trame-vtk's own
``viewport.image.push.quality`` RPC (``vtkWebPublishImageDelivery.set_view_quality(view_id, quality, ratio)``),
what the browser side calls when it animates a view; the app uses it while a slider or wheel scrolls a pane.

The replacement relies on trame-vtk's internals (``push_render``, ``stale_handler_count``, ``last_stale_time``,
``stale_count_limit``): checked on trame-vtk 2.11.17 (``TESTED_TRAME_VTK``, pinned in pyproject.toml) and tested
against its real ``vtkWebPublishImageDelivery``. Another version, or a protocol without those members, is
logged as an error and left stock: slower panes, never a broken app.
"""

from __future__ import annotations

import inspect
import logging
import types
from importlib.metadata import PackageNotFoundError, version
from typing import Any

log = logging.getLogger(__name__)

REPOLL_S = 0.02
MAX_REPOLLS = 50  # 1 s of polling at most, then the stock behaviour (the next push) takes over
#: the trame-vtk minor version whose image delivery this patch was written and tested against
TESTED_TRAME_VTK = "2.11"
#: ``ref`` of the pane's VtkRemoteView; trame-vtk keeps the view's id in state under ``ref + "Id"``
VIEW_REF = "view_{pane}"
#: JPEG quality while a pane is scrolled or dragged, and of its still frames (trame-slicer: 50 / 90)
INTERACTIVE_QUALITY = 50
STILL_QUALITY = 90
#: JPEG quality and size ratio of the frames that show a volume while it loads (the finished volume's are full)
PROGRESSIVE_QUALITY = 70
PROGRESSIVE_RATIO = 0.5
QUALITY_RPC = "viewport.image.push.quality"
_NEEDED = ("delta_stale_time_before_render", "stale_count_limit", "stale_handler_count", "last_stale_time",
           "push_render", "render_stale_image")


def _render_stale_image(self: Any, v_id: str, stale_count: int = 0) -> None:
    if self.stale_handler_count.get(v_id, 0) > 0:
        self.stale_handler_count[v_id] -= 1
    if self.last_stale_time.get(v_id, 0) != 0 and stale_count < self.stale_count_limit:
        self.push_render(v_id, False, stale_count + 1)


def trame_vtk_version() -> str:
    try:
        return version("trame-vtk")
    except PackageNotFoundError:
        return "unknown"


def patchable(link: Any) -> bool:
    """True when ``link`` has the members and the ``render_stale_image(v_id, stale_count=0)`` this patch expects."""
    if not all(hasattr(link, name) for name in _NEEDED):
        return False
    try:
        params = list(inspect.signature(link.render_stale_image).parameters)
    except (TypeError, ValueError):
        return False
    return params[:2] == ["v_id", "stale_count"]


def tune(root_protocol: Any) -> int:
    """Apply the tuning to every image-delivery protocol linked to ``root_protocol``; returns how many.

    A protocol that looks like trame-vtk's image delivery but lacks what the patch needs is logged as an error
    (the images then arrive on trame-vtk's stock schedule)."""
    tuned = 0
    found = trame_vtk_version()
    if not found.startswith(TESTED_TRAME_VTK + "."):
        log.error("image delivery patch: written for trame-vtk %s.x, found %s; check app/image_delivery.py",
                  TESTED_TRAME_VTK, found)
    for link in root_protocol.getLinkProtocols() if root_protocol is not None else ():
        if not hasattr(link, "render_stale_image") and not hasattr(link, "delta_stale_time_before_render"):
            continue  # not an image-delivery protocol
        if not patchable(link):
            log.error("image delivery patch NOT applied to %s (trame-vtk %s changed its internals): panes update "
                      "on trame-vtk's stock 0.5 s re-poll", type(link).__name__, found)
            continue
        link.delta_stale_time_before_render = REPOLL_S
        link.stale_count_limit = MAX_REPOLLS
        link.render_stale_image = types.MethodType(_render_stale_image, link)
        tuned += 1
    log.info("image delivery tuned on %d protocol(s): re-poll every %.0f ms", tuned, REPOLL_S * 1000)
    return tuned


def set_view_quality(server: Any, pane: str, quality: int, ratio: float = 1.0) -> bool:
    """Set the JPEG quality (and size ratio) of a pane's next pushes; False (logged) when trame-vtk refused.

    Before a browser subscribed to the view, trame-vtk answers with an error: nothing to change then."""
    if server is None or not getattr(server, "protocol", None):
        return False
    view_id = server.state[VIEW_REF.format(pane=pane) + "Id"]
    try:
        reply = server.protocol_call(QUALITY_RPC, view_id, int(quality), float(ratio))
    except (KeyError, TypeError, ValueError) as exc:
        log.error("image quality of pane %s not set: trame-vtk %s refused %s (%s)", pane, trame_vtk_version(),
                  QUALITY_RPC, exc)
        return False
    if reply is None:
        log.error("image quality of pane %s not set: trame-vtk %s has no %s RPC", pane, trame_vtk_version(),
                  QUALITY_RPC)
        return False
    if isinstance(reply, dict) and "error" in reply:
        log.debug("image quality of pane %s not set yet: %s", pane, reply["error"])
        return False
    return True


def animating(server: Any) -> bool:
    """True while trame-vtk animates a view (a mouse button or the wheel is down in a pane): its ``push_render``
    drops every other push meanwhile (``views_in_animations``; absent: False)."""
    protocol = getattr(server, "protocol", None)
    if protocol is None:
        return False
    return any(getattr(link, "views_in_animations", None) for link in protocol.getLinkProtocols())
