"""Orthanc REST catalog: the series a user can load, with patient, study and series description, modality and
instance count, plus the archive and DICOMweb URLs of each. Credentials stay in this object (server side).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from webviewer.errors import HttpStatusError, SourceError
from webviewer.orthanc.auth import OrthancAuth
from webviewer.orthanc.http import client_error, status_error

log = logging.getLogger(__name__)

#: prefix of catalog ids, so Orthanc series never collide with the demo API's ids
ID_PREFIX = "orthanc-"
#: list_series(sizes=True) asks each series' size only for catalogs up to this many series
MAX_SIZED = 200


@dataclass
class OrthancSeries:
    """One series in Orthanc, as the CT picker shows it."""

    id: str  # Orthanc's series id
    study_id: str  # Orthanc's study id
    series_uid: str
    study_uid: str
    patient_name: str
    patient_id: str
    study_description: str
    series_description: str
    modality: str
    instances: int
    series_number: str = ""
    study_date: str = ""
    dicom_bytes: int | None = None  # uncompressed size of its DICOM files (statistics), when asked

    @property
    def catalog_id(self) -> str:
        return ID_PREFIX + self.id

    @property
    def name(self) -> str:
        parts = [self.patient_name.replace("^", " ").strip(), self.study_description, self.series_description]
        return " · ".join(p for p in parts if p) or self.id

    def to_entry(self) -> dict[str, Any]:
        """A CT-picker entry (the keys of the API's CatalogEntry.to_json, plus Orthanc fields; no URL, no secret)."""
        return {
            "id": self.catalog_id,
            "name": self.name,
            "modality": self.modality,
            "slices": self.instances,
            "rows": None,
            "columns": None,
            "dicom_bytes": self.dicom_bytes,
            "zip_bytes": None,
            "description": self.series_description,
            "source": "orthanc",
            "patient_name": self.patient_name,
            "study_description": self.study_description,
            "series_description": self.series_description,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
        }


class OrthancClient:
    """Async client of Orthanc's REST API (one aiohttp session; use ``async with`` or call :meth:`close`)."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 token: str | None = None, timeout_s: float = 10.0, dicomweb_root: str = "dicom-web") -> None:
        self.url = url.rstrip("/")
        self.auth = OrthancAuth(user=user, password=password if user else None, token=token)
        self.timeout_s = timeout_s
        self.dicomweb_root = dicomweb_root.strip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OrthancClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"OrthancClient({self.url!r}, auth={self.auth!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            t = self.timeout_s
            timeout = aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t, sock_read=t)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self.auth.headers())
        return self._session

    async def get_json(self, path: str, *, what: str = "resource", params: dict[str, str] | None = None) -> Any:
        """GET ``{url}/{path}`` as JSON; raises SourceError (unreachable) or HttpStatusError (401, 404, ...)."""
        url = f"{self.url}/{path.lstrip('/')}"
        try:
            async with self._get_session().get(url, params=params) as resp:
                if resp.status >= 400:
                    raise status_error(resp.status, url, auth=self.auth, what=what, reason=resp.reason or "")
                return await resp.json(content_type=None)
        except (HttpStatusError, SourceError):
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError, ValueError) as exc:
            raise client_error(exc, url, timeout_s=self.timeout_s) from exc

    async def system(self) -> dict[str, Any]:
        """``GET /system``: checks that Orthanc answers and the credentials work."""
        return await self.get_json("system", what="server")

    async def list_series(self, *, modality: str | None = "CT", limit: int = 1000,
                          sizes: bool = False) -> list[OrthancSeries]:
        """Every series (of ``modality``, None for all), by study date, study and series number. Two requests,
        plus one statistics request per series with ``sizes`` (up to ``MAX_SIZED`` series, 8 at a time)."""
        params = {"expand": "", "since": "0", "limit": str(limit)}
        studies, series = await asyncio.gather(
            self.get_json("studies", what="study list", params=params),
            self.get_json("series", what="series list", params=params),
        )
        by_study = {s["ID"]: s for s in studies}
        out = []
        for s in series:
            item = _series_from_json(s, by_study.get(s.get("ParentStudy", "")))
            if modality is None or item.modality.upper() == modality.upper():
                out.append(item)
        out.sort(key=lambda x: (x.study_date, x.study_id, _num(x.series_number)))
        if sizes and len(out) <= MAX_SIZED:
            await self._add_sizes(out)
        return out

    async def _add_sizes(self, series: list[OrthancSeries]) -> None:
        gate = asyncio.Semaphore(8)

        async def one(s: OrthancSeries) -> None:
            async with gate:
                try:
                    stats = await self.get_json(f"series/{quote(s.id, safe='')}/statistics", what="series")
                    s.dicom_bytes = int(stats.get("UncompressedSize", 0)) or None
                except (SourceError, TypeError, ValueError) as exc:  # a size is nice to have, not needed
                    log.debug("no size for series %s: %s", s.id, exc)

        await asyncio.gather(*(one(s) for s in series))

    async def get_series(self, series_id: str) -> OrthancSeries:
        """One series by Orthanc id (404 -> HttpStatusError)."""
        s = await self.get_json(f"series/{quote(series_id, safe='')}", what="series")
        study = await self.get_json(f"studies/{quote(s['ParentStudy'], safe='')}", what="study")
        return _series_from_json(s, study)

    async def count_instances(self, level: str, resource_id: str) -> int:
        """Instances below a patient, study or series (for progress and preallocation)."""
        if level == "series":
            s = await self.get_json(f"series/{quote(resource_id, safe='')}", what="series")
            return len(s.get("Instances", []))
        stats = await self.get_json(f"{level}/{quote(resource_id, safe='')}/statistics", what=level)
        return int(stats.get("CountInstances", 0))

    # -- URLs (server side only: the browser gets catalog ids) ------------------------------------------
    def archive_url(self, series: OrthancSeries) -> str:
        return f"{self.url}/series/{quote(series.id, safe='')}/archive"

    def study_archive_url(self, series: OrthancSeries) -> str:
        return f"{self.url}/studies/{quote(series.study_id, safe='')}/archive"

    def dicomweb_url(self, series: OrthancSeries) -> str:
        return f"{self.url}/{self.dicomweb_root}/studies/{series.study_uid}/series/{series.series_uid}"


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _series_from_json(s: dict[str, Any], study: dict[str, Any] | None) -> OrthancSeries:
    tags = s.get("MainDicomTags", {})
    study = study or {}
    st = study.get("MainDicomTags", {})
    pt = study.get("PatientMainDicomTags", {})
    return OrthancSeries(
        id=s["ID"],
        study_id=s.get("ParentStudy", ""),
        series_uid=tags.get("SeriesInstanceUID", ""),
        study_uid=st.get("StudyInstanceUID", ""),
        patient_name=pt.get("PatientName", ""),
        patient_id=pt.get("PatientID", ""),
        study_description=st.get("StudyDescription", ""),
        series_description=tags.get("SeriesDescription", ""),
        modality=tags.get("Modality", ""),
        instances=len(s.get("Instances", [])),
        series_number=str(tags.get("SeriesNumber", "")),
        study_date=st.get("StudyDate", ""),
    )
