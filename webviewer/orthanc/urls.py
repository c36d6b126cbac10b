"""Recognise Orthanc URLs: a study/series archive ZIP, or a DICOMweb (WADO-RS) series."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

_ARCHIVE_RE = re.compile(r"^(?P<root>.*?)/(?P<level>patients|studies|series)/(?P<id>[^/]+)/archive/?$")
_DICOMWEB_RE = re.compile(r"^(?P<root>.*?)/studies/(?P<study>[0-9.]+)/series/(?P<series>[0-9.]+)/?$")


@dataclass(frozen=True)
class OrthancUrl:
    """What an Orthanc URL points at. ``root``: the server (archive) or DICOMweb root URL, no trailing slash."""

    kind: Literal["archive", "dicomweb"]
    root: str
    level: str = ""  # archive: patients | studies | series
    resource_id: str = ""  # archive: the Orthanc id
    study_uid: str = ""  # dicomweb
    series_uid: str = ""  # dicomweb


def parse_orthanc_url(url: str) -> OrthancUrl | None:
    """``OrthancUrl`` for ``.../{studies|series|patients}/{id}/archive`` or ``.../studies/{uid}/series/{uid}``."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return None
    if m := _DICOMWEB_RE.match(parts.path):
        root = urlunsplit((parts.scheme, parts.netloc, m["root"], "", ""))
        return OrthancUrl("dicomweb", root, study_uid=m["study"], series_uid=m["series"])
    if m := _ARCHIVE_RE.match(parts.path):
        root = urlunsplit((parts.scheme, parts.netloc, m["root"], "", ""))
        return OrthancUrl("archive", root, level=m["level"], resource_id=m["id"])
    return None


def is_dicomweb_series_url(url: str) -> bool:
    u = parse_orthanc_url(url)
    return u is not None and u.kind == "dicomweb"
