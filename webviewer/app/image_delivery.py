"""Tuning of trame-vtk's image delivery for low latency.

trame-vtk renders on the event loop and JPEG-encodes on a thread. A push whose image is still being encoded
sends the previous image and re-polls later (``delta_stale_time_before_render``, 0.5 s by default). Two
things are changed here, on the protocol instance only:

- re-poll after 20 ms instead of 500 ms, so a new slice or window/level reaches the browser in tens of ms;
- a re-poll that finds the image still encoding polls again. The stock ``render_stale_image`` (trame-vtk
  2.11) only re-polls when ``delta >= interval * (stale_count + 1)`` and otherwise reschedules only when
  ``delta < interval``, so a second re-poll that comes back stale is dropped and the pane keeps its old
  picture until the next push. With a 20 ms interval that happens often on a busy machine.
"""

from __future__ import annotations

import logging
import types
from typing import Any

log = logging.getLogger(__name__)

REPOLL_S = 0.02
MAX_REPOLLS = 50  # 1 s of polling at most, then the stock behaviour (the next push) takes over


def _render_stale_image(self: Any, v_id: str, stale_count: int = 0) -> None:
    if self.stale_handler_count.get(v_id, 0) > 0:
        self.stale_handler_count[v_id] -= 1
    if self.last_stale_time.get(v_id, 0) != 0 and stale_count < self.stale_count_limit:
        self.push_render(v_id, False, stale_count + 1)


def tune(root_protocol: Any) -> int:
    """Apply the tuning to every image-delivery protocol linked to ``root_protocol``; returns how many."""
    tuned = 0
    for link in root_protocol.getLinkProtocols() if root_protocol is not None else ():
        if hasattr(link, "delta_stale_time_before_render") and hasattr(link, "render_stale_image"):
            link.delta_stale_time_before_render = REPOLL_S
            link.stale_count_limit = MAX_REPOLLS
            link.render_stale_image = types.MethodType(_render_stale_image, link)
            tuned += 1
    log.info("image delivery tuned on %d protocol(s): re-poll every %.0f ms", tuned, REPOLL_S * 1000)
    return tuned
