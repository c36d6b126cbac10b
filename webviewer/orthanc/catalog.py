"""Orthanc series in the app's CT picker, beside (or instead of) the demo API's CTs. No trame here.

:class:`OrthancCatalogSource` has the interface of ``webviewer.app.catalog.CatalogSource`` (``refresh``,
``entries``, ``get``, ``archive_url``, ``base_url``, ``set_base_url``) plus :meth:`load_options`, the
server-side credentials of an entry. The browser only ever sees catalog ids and names: the URLs are built here
and the credentials never leave this object.

Each Orthanc series is offered twice, as two *sources* of the same series:

- ``orthanc-<id>``: Orthanc's series archive ZIP (any mode);
- ``orthanc-wado-<id>``: the DICOMweb WADO-RS series (multipart; the "WADO-RS" source option of PoC2, works in
  every mode).

Network profiles do not apply to Orthanc (it is not our throttled API): the profile is validated and ignored.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from webviewer.errors import WebViewerError
from webviewer.orthanc.client import ID_PREFIX, OrthancClient, OrthancSeries

log = logging.getLogger(__name__)

WADO_PREFIX = ID_PREFIX + "wado-"


class OrthancCatalogSource:
    """The demo catalog (``base``, optional) followed by the Orthanc series of ``client``."""

    def __init__(self, client: OrthancClient, base: Any = None, *, dicomweb: bool = True,
                 modality: str | None = "CT", networks: Any = None) -> None:
        self.client = client
        self.base = base
        self.dicomweb = dicomweb
        self.modality = modality
        self.networks = networks
        self._series: dict[str, OrthancSeries] = {}
        self._entries: list[dict[str, Any]] = []
        #: why the Orthanc part of the list is empty (unreachable, 401...), for the UI; "" when fine
        self.error = ""

    # -- CatalogSource interface ------------------------------------------------------------------------
    @property
    def base_url(self) -> str | None:
        return getattr(self.base, "base_url", None) if self.base is not None else self.client.url

    def set_base_url(self, url: str) -> None:
        if self.base is not None:
            self.base.set_base_url(url)

    async def refresh(self) -> list[dict[str, Any]]:
        """Re-read both catalogs. Orthanc failing (stopped, wrong password) leaves the demo CTs usable."""
        base_entries: list[dict[str, Any]] = []
        if self.base is not None:
            base_entries = list(await self.base.refresh())
        try:
            series = await self.client.list_series(modality=self.modality, sizes=True)
        except WebViewerError as exc:
            log.warning("Orthanc catalog unavailable: %s", exc)
            self.error = str(exc)
            if self.base is None:
                raise
            series = []
        else:
            self.error = ""
        self._series = {}
        entries = []
        for s in series:
            self._series[s.catalog_id] = s
            entries.append({**s.to_entry(), "name": f"{s.name} · Orthanc ZIP", "orthanc_source": "archive"})
            if self.dicomweb:
                wado_id = WADO_PREFIX + s.id
                self._series[wado_id] = s
                entries.append({**s.to_entry(), "id": wado_id, "name": f"{s.name} · Orthanc DICOMweb (WADO-RS)",
                                "orthanc_source": "dicomweb"})
        self._entries = entries
        return base_entries + entries

    def entries(self) -> list[dict[str, Any]]:
        base = self.base.entries() if self.base is not None else []
        return list(base) + list(self._entries)

    def get(self, ct_id: str | None) -> dict[str, Any] | None:
        if ct_id is not None and ct_id in self._series:
            return next((e for e in self._entries if e["id"] == ct_id), None)
        return self.base.get(ct_id) if self.base is not None else None

    def is_orthanc(self, ct_id: str | None) -> bool:
        return ct_id is not None and ct_id in self._series

    def applies_network(self, ct_id: str | None) -> bool:
        """Network profiles throttle only the demo API; Orthanc is read at whatever speed it serves."""
        if self.is_orthanc(ct_id):
            return False
        return self.base is not None and self.base.applies_network(ct_id)

    def archive_url(self, ct_id: str, network: str) -> str:
        """The URL to load for a known id (server side only); unknown ids are refused (no SSRF)."""
        series = self._series.get(ct_id)
        if series is None:
            if self.base is None:
                raise KeyError(f"unknown CT id {ct_id!r}")
            return self.base.archive_url(ct_id, network)
        if self.networks is not None and network not in self.networks:
            raise ValueError(f"unknown network profile {network!r}")
        if ct_id.startswith(WADO_PREFIX):
            return self.client.dicomweb_url(series)
        return self.client.archive_url(series)

    def load_options(self, ct_id: str | None) -> dict[str, Any]:
        """Extra LoadOptions for an entry: Orthanc's credentials (never sent to the browser)."""
        if not self.is_orthanc(ct_id):
            return {}
        auth = self.client.auth
        if auth.user:
            return {"auth": (auth.user, auth.password or "")}
        if auth.token:
            return {"headers": auth.headers()}
        return {}


def add_orthanc_arguments(parser: Any) -> None:
    """The app's ``--orthanc URL [--orthanc-user U --orthanc-password P | --orthanc-token T]`` options."""
    parser.add_argument("--orthanc", default=None, metavar="URL",
                        help="add the CT series of this Orthanc server (REST root, e.g. http://127.0.0.1:8042)")
    parser.add_argument("--orthanc-user", default=os.environ.get("WEBVIEWER_ORTHANC_USER"),
                        help="Orthanc basic-auth user (default: $WEBVIEWER_ORTHANC_USER)")
    parser.add_argument("--orthanc-password", default=os.environ.get("WEBVIEWER_ORTHANC_PASSWORD"),
                        help="its password (default: $WEBVIEWER_ORTHANC_PASSWORD; kept server-side)")
    parser.add_argument("--orthanc-token", default=os.environ.get("WEBVIEWER_ORTHANC_TOKEN"),
                        help="bearer token instead of user/password (default: $WEBVIEWER_ORTHANC_TOKEN)")
    parser.add_argument("--orthanc-only", action="store_true",
                        help="list only Orthanc's series (no demo CTs)")
    parser.add_argument("--orthanc-no-dicomweb", action="store_true",
                        help="offer only the archive ZIP of each series, not the DICOMweb (WADO-RS) source")


def orthanc_catalog_from_args(args: Any, base: Any = None, networks: Any = None) -> Any:
    """``base`` unchanged without ``--orthanc``; else an OrthancCatalogSource beside (or instead of) it.

    ``networks``: the network profile names the caller accepts (None: any).
    """
    url = getattr(args, "orthanc", None)
    if not url:
        return base
    token = getattr(args, "orthanc_token", None)
    user = None if token else getattr(args, "orthanc_user", None)
    client = OrthancClient(url, user=user, password=getattr(args, "orthanc_password", None) if user else None,
                           token=token)
    return OrthancCatalogSource(client, None if getattr(args, "orthanc_only", False) else base,
                                dicomweb=not getattr(args, "orthanc_no_dicomweb", False), networks=networks)
