"""The memory budget of one session's loaded contents (volumes and their render copies).

The registry keeps a session's contents within this budget, and the multi-user deployment derives its default
number of sessions from it (free memory / (idle session + budget)).
"""

from __future__ import annotations

#: default budget in MB (10**6 bytes): sized so that a seed-sized CT on screen and its predecessor fit
DEFAULT_CONTENT_BUDGET_MB = 800
