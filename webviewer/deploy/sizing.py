"""How many sessions one machine holds: free memory ÷ the memory budget of one session."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from webviewer.loading.budget import DEFAULT_CONTENT_BUDGET_MB
from webviewer.units import MB

#: RSS of one idle `webviewer --server` session (VTK, trame, four render windows): 330 MB connected and idle
#: (tests/e2e/bench_demo.py), plus about 45 MB that stays after the first load is unloaded (renderer caches and
#: engine imports, tests/e2e/bench_budget.py), plus the session's load worker process idle after seed-sized loads:
#: 40 MB private (RssAnon; its 30 MB of RssFile are the shared libraries the session maps too)
IDLE_SESSION_MB = 415


@dataclass(frozen=True)
class SessionSizing:
    """The default session count and the figures it came from."""

    sessions: int
    available_mb: float
    idle_mb: float
    budget_mb: float

    @property
    def per_session_mb(self) -> float:
        return self.idle_mb + self.budget_mb

    def explain(self) -> str:
        return (f"{self.sessions} session(s) = free memory {self.available_mb:,.0f} MB ÷ "
                f"({self.idle_mb:.0f} MB idle session + {self.budget_mb:.0f} MB content budget, the worst case "
                f"of a seed-sized CT loaded in Batch) = {self.available_mb / self.per_session_mb:.2f}, at least 1")


def default_sessions(available_bytes: int | None = None, *, idle_mb: float = IDLE_SESSION_MB,
                     budget_mb: float = DEFAULT_CONTENT_BUDGET_MB) -> SessionSizing:
    """Sessions this machine holds now: ``available ÷ (idle + budget)``, rounded down, at least 1."""
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    available_mb = available / MB
    return SessionSizing(max(1, int(available_mb // (idle_mb + budget_mb))), available_mb, idle_mb, budget_mb)
