"""Every state value a page sends is checked on the server: type, range, membership.

A page can send any key with any value (``trame.state.update`` from the browser console). ``StateValidator.clean``
keeps the valid changes (normalised: ``"3"`` for a slice becomes ``3``), drops the others, resets them to the
server's value and says so in ``notice``; keys a page has no control for are dropped. Nothing a page sends raises.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from webviewer.app import i18n
from webviewer.app.state import MODES, NETWORKS, SLICE_PANES, VR_PRESETS, WL_PRESETS
from webviewer.errors import ControlSignal

log = logging.getLogger(__name__)

MAX_COMPARE_RUNS = 50
#: longest string a page may send for a picked value (ids, language codes)
MAX_TEXT = 200


class Invalid(ControlSignal, ValueError):
    """A value a page sent is not acceptable for its key."""


def as_int(value: Any, low: int, high: int) -> int:
    """``value`` as an integer in ``[low, high]``: ints, integral floats, decimal ASCII strings; else Invalid."""
    if isinstance(value, bool):
        raise Invalid("a number is needed")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise Invalid("a whole number is needed")
        value = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not (0 < len(text) <= 12 and text.lstrip("-").isascii() and text.lstrip("-").isdigit()):
            raise Invalid("a whole number is needed")
        value = int(text)
    if not isinstance(value, int):
        raise Invalid("a whole number is needed")
    if not low <= value <= high:
        raise Invalid(f"must be between {low} and {high}")
    return value


def one_of(value: Any, choices: Any) -> Any:
    if not isinstance(value, str) or len(value) > MAX_TEXT or value not in choices:
        raise Invalid("not one of the offered choices")
    return value


class StateValidator:
    """Checks page changes against the app's state (slice counts) and catalog (CT ids)."""

    def __init__(self, state: Any, ct_exists: Callable[[str], bool]) -> None:
        self.state = state
        self.ct_exists = ct_exists
        self.rules: dict[str, Callable[[Any], Any]] = {
            "mode": lambda v: one_of(v, MODES),
            "network": lambda v: one_of(v, NETWORKS),
            "wl_preset": lambda v: one_of(v, WL_PRESETS),
            "vr_preset": lambda v: one_of(v, VR_PRESETS),
            "lang": lambda v: one_of(v, {item["value"] for item in i18n.languages()}),
            "compare_runs": lambda v: as_int(v, 1, MAX_COMPARE_RUNS),
            "ct_id": self._ct_id,
        }
        for pane in SLICE_PANES:
            self.rules[f"slice_{pane}"] = self._slice_rule(pane)

    def _ct_id(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > MAX_TEXT or not self.ct_exists(value):
            raise Invalid("not a CT of the catalog")
        return value

    def _slice_rule(self, pane: str) -> Callable[[Any], int]:
        def rule(value: Any) -> int:
            count = self.state[f"count_{pane}"] or 1
            return as_int(value, 0, max(0, int(count) - 1))

        return rule

    def check(self, key: Any, value: Any) -> Any:
        """The cleaned value for one change; Invalid (with a reason) if the page may not send it."""
        if not isinstance(key, str) or key not in self.rules:
            raise Invalid("the page has no control for this value")
        return self.rules[key](value)

    def clean(self, changes: Any) -> tuple[list[dict[str, Any]], list[str]]:
        """(accepted changes, rejected keys) for a ``trame.state.update`` payload: a list of {key, value}."""
        accepted: list[dict[str, Any]] = []
        rejected: list[str] = []
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            key, value = change.get("key"), change.get("value")
            if isinstance(key, str) and key.startswith("trame__"):  # trame's own client bookkeeping
                accepted.append(change)
                continue
            try:
                accepted.append({**change, "value": self.check(key, value)})
            except Invalid as exc:
                shown = key if isinstance(key, str) and len(key) <= 40 else repr(key)[:40]
                log.warning("page sent %s = %.60r: %s; kept the server's value", shown, value, exc)
                rejected.append(shown)
        return accepted, rejected

    def reject_message(self, rejected: list[str]) -> str:
        """The notice shown for rejected values, in the page's language."""
        return i18n.fmt(self.state.t, "rejected_value", keys=", ".join(rejected))


def guard_state_updates(wslink_server: Any, validator: StateValidator) -> None:
    """Route ``trame.state.update`` through ``validator``: bad values never reach the state; they are reset."""
    for handler in getattr(wslink_server, "_ws_handlers", []):
        functions = handler.functionMap
        if "trame.state.update" not in functions:
            continue
        obj, original = functions["trame.state.update"]

        def update_state(protocol: Any, changes: Any = None, *_: Any, _original: Any = original, **__: Any) -> None:
            accepted, rejected = validator.clean(changes)
            if accepted:
                _original(protocol, accepted)
            if rejected:
                state = validator.state
                with state:
                    state.notice = validator.reject_message(rejected)
                real = [k for k in rejected if k in validator.rules]
                if real:  # send the server's value back to every page (its cache would skip a plain push)
                    protocol.force_push_state(*real)

        functions["trame.state.update"] = (obj, update_state)
