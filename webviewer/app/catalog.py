"""Which CTs the user can pick, and the server-side mapping from a catalog id to an archive URL.

The browser only ever sends a catalog id and a network profile name; the URL is built here from
the CT API's base address, so no user-supplied URL is ever fetched (no SSRF).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from webviewer.app.state import NETWORKS

log = logging.getLogger(__name__)


class CatalogSource:
    """CT entries from an in-process ``Catalog`` (same server) or from another CT API at ``api_url``."""

    def __init__(self, *, catalog: Any = None, api_url: str | None = None) -> None:
        if catalog is None and api_url is None:
            raise ValueError("give a catalog or an API URL")
        self.catalog = catalog
        self.api_url = api_url.rstrip("/") if api_url else None
        self._entries: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str | None:
        return self.api_url

    def set_base_url(self, url: str) -> None:
        """Where the in-process API answers (known once the server has its port)."""
        self.api_url = url.rstrip("/")

    async def refresh(self) -> list[dict[str, Any]]:
        """Read the catalog (in process, or ``GET {api}/api/cts``)."""
        if self.catalog is not None:
            self._entries = [e.to_json() for e in self.catalog.entries()]
        else:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.get(f"{self.api_url}/api/cts") as resp:
                resp.raise_for_status()
                body = await resp.json()
            self._entries = list(body.get("cts", body.get("items", [])) if isinstance(body, dict) else body)
        return self._entries

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def get(self, ct_id: str | None) -> dict[str, Any] | None:
        return next((e for e in self._entries if e.get("id") == ct_id), None)

    def applies_network(self, ct_id: str | None) -> bool:
        """Whether the network profile throttles this CT's download (our CT API does)."""
        return True

    def load_options(self, ct_id: str | None) -> dict[str, Any]:
        """Extra LoadOptions for an entry: none for the CT API."""
        return {}

    def archive_url(self, ct_id: str, network: str) -> str:
        """The archive URL for a known catalog id and a known network profile; anything else is refused."""
        if self.get(ct_id) is None:
            raise KeyError(f"unknown CT id {ct_id!r}")
        if network not in NETWORKS:
            raise ValueError(f"unknown network profile {network!r}")
        if not self.api_url:
            raise RuntimeError("the CT API address is not known yet")
        url = f"{self.api_url}/api/cts/{quote(ct_id, safe='')}/archive"
        return url if network == "unlimited" else f"{url}?{urlencode({'profile': network})}"


def ct_item(entry: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
    """A ct-select item: title with name, slices (or the frames of a multi-frame file) and size."""
    from webviewer.app.i18n import fmt

    size = entry.get("zip_bytes") or entry.get("dicom_bytes") or 0
    key = "ct_item_frames" if entry.get("frames") else "ct_item"
    title = fmt(t, key, name=entry.get("name", entry["id"]), slices=entry.get("slices", "?"),
                frames=entry.get("frames", 0), size=f"{size / 1e6:.1f} MB")
    return {"title": title, "value": entry["id"]}
