"""Orthanc as a CT source: REST catalog, archive ZIP and DICOMweb (WADO-RS) series. No trame here."""

from webviewer.orthanc.auth import OrthancAuth
from webviewer.orthanc.client import ID_PREFIX, OrthancClient, OrthancSeries
from webviewer.orthanc.urls import OrthancUrl, is_dicomweb_series_url, parse_orthanc_url

__all__ = [
    "ID_PREFIX",
    "OrthancAuth",
    "OrthancClient",
    "OrthancSeries",
    "OrthancUrl",
    "is_dicomweb_series_url",
    "parse_orthanc_url",
]
