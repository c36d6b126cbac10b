"""Orthanc series in the app's CT picker (OrthancCatalogSource): ids and names only for the browser,
URLs and credentials server-side, the demo CTs kept when Orthanc fails, and loads through the catalog."""

from __future__ import annotations

import json

import numpy as np
import pytest
from orthanc_helpers import PASSWORD, USER, free_port, orthanc  # noqa: F401 - fixture
from realdata import REAL_SERIES

from webviewer.api.throttle import PROFILES
from webviewer.errors import HttpStatusError, SourceError
from webviewer.loading import LoadOptions, load
from webviewer.orthanc import OrthancClient
from webviewer.orthanc.catalog import WADO_PREFIX, OrthancCatalogSource

NETWORKS = tuple(PROFILES)


class FakeBase:
    """The demo API catalog's interface (webviewer.app.catalog.CatalogSource)."""

    def __init__(self) -> None:
        self.url = "http://127.0.0.1:9"

    @property
    def base_url(self) -> str:
        return self.url

    def set_base_url(self, url: str) -> None:
        self.url = url

    async def refresh(self):
        return self.entries()

    def entries(self):
        return [{"id": "sample-tiny", "name": "Tiny", "slices": 48}]

    def get(self, ct_id):
        return next((e for e in self.entries() if e["id"] == ct_id), None)

    def applies_network(self, ct_id):
        return True

    def archive_url(self, ct_id, network):
        if self.get(ct_id) is None:
            raise KeyError(ct_id)
        return f"{self.url}/api/cts/{ct_id}/archive"


async def test_picker_entries_beside_the_demo_catalog(orthanc):  # noqa: F811
    source = OrthancCatalogSource(OrthancClient(orthanc.url, user=USER, password=PASSWORD), FakeBase(),
                                  networks=NETWORKS)
    try:
        entries = await source.refresh()
    finally:
        await source.client.close()
    assert entries[0]["id"] == "sample-tiny" and source.entries() == entries
    orthanc_entries = entries[1:]
    assert len(orthanc_entries) == 2 * len(REAL_SERIES)  # archive ZIP and DICOMweb per series
    assert {e["slices"] for e in orthanc_entries} == set(REAL_SERIES.values())
    assert all(e["dicom_bytes"] > e["slices"] * 4096 for e in orthanc_entries)  # sizes for the picker
    blob = json.dumps(entries)
    assert PASSWORD not in blob and "http" not in blob.replace("http://127.0.0.1:9", "")  # no URL, no secret
    up = orthanc.series["dcmqa-ge-head-gantrytilt"]
    zip_id, wado_id = f"orthanc-{up.orthanc_id}", f"{WADO_PREFIX}{up.orthanc_id}"
    assert source.get(zip_id)["orthanc_source"] == "archive" and source.get(wado_id)["orthanc_source"] == "dicomweb"
    assert source.archive_url(zip_id, "unlimited") == orthanc.archive_url(up.name)
    assert source.archive_url(wado_id, "100mbit") == orthanc.dicomweb_url(up.name)
    assert source.archive_url("sample-tiny", "unlimited").endswith("/api/cts/sample-tiny/archive")
    assert source.load_options(zip_id) == {"auth": (USER, PASSWORD)} and source.load_options("sample-tiny") == {}
    assert not source.applies_network(zip_id) and not source.applies_network(wado_id)
    assert source.applies_network("sample-tiny")
    with pytest.raises(KeyError):
        source.archive_url("orthanc-../../tools/reset", "unlimited")
    with pytest.raises(ValueError):
        source.archive_url(zip_id, "10gbit")


@pytest.mark.parametrize("source_kind", ["archive", "dicomweb"])
async def test_load_through_the_catalog(orthanc, source_kind):  # noqa: F811
    """What the app does: id -> URL + server-side options -> load()."""
    source = OrthancCatalogSource(OrthancClient(orthanc.url, user=USER, password=PASSWORD))
    await source.refresh()
    await source.client.close()
    name = "dcmqa-ge-head-gantrytilt"
    ct_id = next(e["id"] for e in source.entries()
                 if e["series_uid"] == orthanc.series[name].series_uid and e["orthanc_source"] == source_kind)
    entry = source.get(ct_id)
    options = LoadOptions(expected_slices=entry["slices"], name=entry["name"], **source.load_options(ct_id))
    result = await load(source.archive_url(ct_id, "unlimited"), "stream-dicom", options=options)
    ref = await load(orthanc.series[name].folder, "stream-dicom")
    assert np.array_equal(result.volume.hu, ref.volume.hu) and result.volume.spacing == ref.volume.spacing
    assert result.name.startswith(entry["name"])


async def test_token_credentials_become_a_header():
    client = OrthancClient("http://127.0.0.1:9", token="tok")
    source = OrthancCatalogSource(client)
    source._series["orthanc-x"] = object()  # a known id without a network round trip
    assert source.load_options("orthanc-x") == {"headers": {"Authorization": "Bearer tok"}}


async def test_orthanc_down_or_refusing_keeps_the_demo_cts(orthanc):  # noqa: F811
    down = OrthancCatalogSource(OrthancClient(f"http://127.0.0.1:{free_port()}", timeout_s=2), FakeBase())
    entries = await down.refresh()
    await down.client.close()
    assert [e["id"] for e in entries] == ["sample-tiny"] and "unreachable" in down.error
    refused = OrthancCatalogSource(OrthancClient(orthanc.url, user=USER, password="bad"), FakeBase())
    assert [e["id"] for e in await refused.refresh()] == ["sample-tiny"] and "401" in refused.error
    await refused.client.close()
    alone = OrthancCatalogSource(OrthancClient(orthanc.url, user=USER, password="bad"))
    with pytest.raises(HttpStatusError):
        await alone.refresh()
    await alone.client.close()
    assert issubclass(HttpStatusError, SourceError)
