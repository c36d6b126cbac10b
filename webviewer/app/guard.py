"""What a page may ask the server: wslink's built-in RPCs that stop the process are removed, life-cycle calls
are limited to the ones trame's client sends.

Every visitor's page can call any RPC registered on the websocket (``session.call(name, args)`` in the browser
console). wslink registers ``application.exit`` and ``application.exit.later`` on every server, and trame's
``trame.lifecycle.update`` runs any ``on_<name>`` controller (``on_server_ready``, ``on_server_bind``...). The app
removes the first two and limits the third to the client's own life-cycle names, when the server binds.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: RPCs a visitor must not call: they stop the whole process (the CT API and every other visitor with it)
REFUSED_RPCS = ("application.exit", "application.exit.later")
#: the life-cycle names trame's browser client sends (trame_client: client_connected / exited / unmounted)
CLIENT_LIFE_CYCLES = frozenset({"client_connected", "client_exited", "client_unmounted"})
LIFE_CYCLE_RPC = "trame.lifecycle.update"
FORCE_PUSH_RPC = "trame.force.push"


def _guarded_life_cycle(original: Any) -> Any:
    def life_cycle_update(protocol: Any, name: Any = None, *args: Any, **kwargs: Any) -> None:
        if not isinstance(name, str) or name not in CLIENT_LIFE_CYCLES:
            log.warning("refused life-cycle call %r from a page (allowed: %s)", name, sorted(CLIENT_LIFE_CYCLES))
            return None
        return original(protocol, name)

    return life_cycle_update


def _guarded_force_push(original: Any) -> Any:
    def force_push(protocol: Any, *keys: Any) -> None:
        state = protocol.server.state
        known = [k for k in keys if isinstance(k, str) and k in state]
        if len(known) != len(keys):
            log.warning("ignored %d unknown key(s) in a page's force push", len(keys) - len(known))
        return original(protocol, *known) if known else None

    return force_push


def guard_rpcs(wslink_server: Any) -> list[str]:
    """Remove the stopping RPCs and guard the life-cycle RPC on every websocket handler; returns what was removed.

    ``wslink_server`` is what trame passes to ``on_server_bind`` (wslink's aiohttp ``WebAppServer``).
    """
    removed: list[str] = []
    for handler in getattr(wslink_server, "_ws_handlers", []):
        functions = handler.functionMap
        for name in REFUSED_RPCS:
            if functions.pop(name, None) is not None:
                removed.append(name)
        if LIFE_CYCLE_RPC in functions:
            obj, func = functions[LIFE_CYCLE_RPC]
            functions[LIFE_CYCLE_RPC] = (obj, _guarded_life_cycle(func))
        if FORCE_PUSH_RPC in functions:  # unknown keys would raise KeyError inside the handler
            obj, func = functions[FORCE_PUSH_RPC]
            functions[FORCE_PUSH_RPC] = (obj, _guarded_force_push(func))
    if removed:
        log.info("refusing page RPCs: %s", ", ".join(sorted(set(removed))))
    return removed
