"""The session's loaded contents within the memory budget: refuse a load too large before its download, make
room before a load, keep the one on screen and its predecessor after it, and list what was unloaded and why."""

from __future__ import annotations

import logging
from typing import Any

from webviewer.app.i18n import fmt
from webviewer.app.memory import MemoryAccount, held_volume_bytes, is_registered, release_memory
from webviewer.app.ports import Registry
from webviewer.errors import WebViewerError
from webviewer.loading.budget import (
    BudgetExceededError,
    ContentBudget,
    load_need_bytes,
    volume_bytes_from_catalog,
    volume_bytes_from_source,
)
from webviewer.loading.metrics import current_rss
from webviewer.units import MB

log = logging.getLogger(__name__)


class ContentsLogic:
    """Budget decisions for one session (the registry holds the contents, the account measures memory)."""

    def __init__(self, state: Any, registry: Registry, account: MemoryAccount | None = None) -> None:
        self.state = state
        self.registry = registry
        self.account = account or MemoryAccount()

    @property
    def budget(self) -> ContentBudget | None:
        return getattr(self.registry, "budget", None)

    def holds(self, volume: Any) -> bool:
        """True when a registered content keeps ``volume`` (it stays in memory when the panes let it go)."""
        return is_registered(self.registry, volume)

    def held_bytes(self) -> int:
        """Bytes of the registered contents' volumes."""
        return held_volume_bytes(self.registry)

    def limits_kwargs(self, options_kwargs: dict[str, Any]) -> dict[str, Any]:
        """LoadOptions keywords: the engine refuses a volume above the budget when it allocates (backstop for
        sources whose size is unknown before the download)."""
        if self.budget is None:
            return {}
        from dataclasses import replace

        from webviewer.loading.limits import Limits

        limits = options_kwargs.get("limits") or Limits()
        return {"limits": replace(limits, max_volume_bytes=min(limits.max_volume_bytes, self.budget.budget_bytes))}

    async def estimate(self, entry: dict[str, Any], url: str, options: Any) -> int | None:
        """Volume bytes from the catalog, else from the ZIP central directory (read alone); None if unknown."""
        found = volume_bytes_from_catalog(entry)
        if found is not None:
            return found
        try:
            return await volume_bytes_from_source(url, options)
        except Exception as exc:  # noqa: BLE001 - no estimate: the engine's allocation check still applies
            log.info("no volume estimate before the download of %s: %r", entry.get("id"), exc)
            return None

    async def admit(self, entry: dict[str, Any], url: str, mode: str, options: Any,
                    current_volume: Any) -> str | None:
        """Before a load: the refusal message if its volume alone exceeds the budget (nothing changes then),
        else make room for its working memory (oldest contents not on screen first) and return None."""
        if self.budget is None:
            return None
        need = await self.estimate(entry, url, options)
        try:
            self.budget.check_volume(need, str(entry.get("name") or entry.get("id") or "This CT"))
        except BudgetExceededError as exc:
            log.info("refused before the download: %s", exc.message)
            return exc.message
        if need:
            before = current_rss()
            gone = self.registry.make_room(load_need_bytes(need, mode), extra_bytes=self.account.extra_bytes(self.registry, current_volume))
            self._released(gone, current_volume, before)
        return None

    def budget_message(self, exc: WebViewerError) -> str:
        """The engine's volume limit, hit while allocating, said in budget terms."""
        if self.budget is not None and "max_volume_bytes" in exc.message:
            return (f"{exc.message.split(' Raise')[0].rstrip('.')}: this session's content budget is "
                    f"{self.budget.budget_mb:g} MB. The content on screen stays. Start webviewer with a larger "
                    f"--content-budget-mb to load it.")
        return exc.message

    def after_finish(self, current_volume: Any, *, registered: bool) -> None:
        """A load finished and its volume is on screen: keep the predecessor within the budget, free the rest."""
        self.account.shown()
        gone, before = [], current_rss()
        if registered and self.budget is not None:
            gone = self.registry.enforce(extra_bytes=self.account.extra_bytes(self.registry, current_volume))
        elif self.registry is not None:
            self.registry.on_screen = None  # an unregistered run (Compare modes) is on screen
        self._released(gone, current_volume, before)

    def unload(self, content_id: str) -> None:
        """The user unloaded a content (the views were cleared by the caller if it was on screen)."""
        self.registry.remove(content_id)
        release_memory()

    def _released(self, gone: list[Any], current_volume: Any, rss_before: int) -> None:
        release_memory()
        if gone:
            log.info("unloaded %s (%.1f MB of volumes, budget %s MB): RSS %.0f -> %.0f MB",
                     ", ".join(f"{u.id} [{u.reason}]" for u in gone), sum(u.nbytes for u in gone) / MB,
                     self.budget.budget_mb if self.budget else "-", rss_before / MB, current_rss() / MB)
        self.refresh(current_volume)

    def refresh(self, current_volume: Any) -> None:
        """The contents list, what the budget unloaded and the memory line."""
        t = self.state.t
        if current_volume is None and (self.registry is None or len(self.registry.list()) == 0):
            self.account.start()  # nothing held: what the session uses now is its idle baseline
        items = []
        for c in self.registry.list() if self.registry is not None else []:
            vol = getattr(c, "volume", None)
            items.append({"id": c.id, "name": c.name, "slices": int(vol.hu.shape[0]) if vol is not None else 0,
                          "memory_mb": round((vol.nbytes if vol is not None else 0) / MB, 1)})
        unloaded = []
        budget_mb = f"{self.budget.budget_mb:g}" if self.budget else "-"
        for u in getattr(self.registry, "unloaded", []):
            unloaded.append({"id": u.id, "reason": u.reason, "text": fmt(
                t, f"unloaded.{u.reason}", id=u.id, mb=f"{u.nbytes / MB:.1f}", budget=budget_mb)})
        fig = self.account.figures(self.registry, current_volume)
        with self.state:
            self.state.contents = items
            self.state.contents_unloaded = unloaded
            self.state.budget_text = fmt(t, "budget_line", used=f"{fig['budget_used_mb']:.1f}", budget=budget_mb,
                                         accounted=f"{fig['accounted_mb']:.0f}", rss=f"{fig['rss_mb']:.0f}")
            self.state.memory_accounted_mb = fig["accounted_mb"]
