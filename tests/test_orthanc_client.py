"""The Orthanc REST catalog against a real Orthanc: series list, auth, 401, 404, unreachable."""

from __future__ import annotations

import pytest
from orthanc_helpers import PASSWORD, USER, free_port, orthanc  # noqa: F401 - fixture
from realdata import REAL_SERIES

from webviewer.errors import HttpStatusError, SourceError
from webviewer.orthanc import ID_PREFIX, OrthancAuth, OrthancClient, parse_orthanc_url


async def test_catalog_lists_the_uploaded_series(orthanc):  # noqa: F811
    async with OrthancClient(orthanc.url, user=USER, password=PASSWORD) as client:
        await client.system()
        series = await client.list_series()
    by_uid = {s.series_uid: s for s in series}
    assert len(series) == len(REAL_SERIES)
    for name in REAL_SERIES:
        up = orthanc.series[name]
        s = by_uid[up.series_uid]
        assert s.id == up.orthanc_id and s.study_id == up.study_id and s.study_uid == up.study_uid
        assert s.instances == REAL_SERIES[name] == up.instances
        assert s.modality == "CT"
        entry = s.to_entry()
        assert entry["id"] == ID_PREFIX + up.orthanc_id and entry["slices"] == REAL_SERIES[name]
        assert PASSWORD not in repr(entry) and PASSWORD not in repr(client)
    ge = by_uid[orthanc.series["dcmqa-ge-head-gantrytilt"].series_uid]
    assert ge.patient_name == "REMOVED"
    assert ge.study_description  # HEAD


async def test_urls_of_a_series(orthanc):  # noqa: F811
    async with OrthancClient(orthanc.url, user=USER, password=PASSWORD) as client:
        s = await client.get_series(orthanc.series["slicer-cthead-64px"].orthanc_id)
        assert await client.count_instances("series", s.id) == 93
        assert await client.count_instances("studies", s.study_id) == 93
    archive = parse_orthanc_url(client.archive_url(s))
    assert archive and archive.kind == "archive" and archive.level == "series" and archive.resource_id == s.id
    web = parse_orthanc_url(client.dicomweb_url(s))
    assert web and web.kind == "dicomweb" and web.series_uid == s.series_uid and web.study_uid == s.study_uid
    assert web.root == orthanc.url + "/dicom-web"


async def test_wrong_password_is_a_401_about_credentials(orthanc):  # noqa: F811
    async with OrthancClient(orthanc.url, user=USER, password="wrong") as client:
        with pytest.raises(HttpStatusError) as err:
            await client.list_series()
    assert err.value.status == 401 and err.value.exit_code == 2
    assert "401" in str(err.value) and "password" in str(err.value) and "wrong" not in str(err.value)


async def test_no_credentials_is_a_401_asking_for_them(orthanc):  # noqa: F811
    async with OrthancClient(orthanc.url) as client:
        with pytest.raises(HttpStatusError, match="needs credentials") as err:
            await client.system()
    assert err.value.status == 401


async def test_unknown_series_is_a_404(orthanc):  # noqa: F811
    async with OrthancClient(orthanc.url, user=USER, password=PASSWORD) as client:
        with pytest.raises(HttpStatusError, match="no such series") as err:
            await client.get_series("00000000-00000000-00000000-00000000-00000000")
    assert err.value.status == 404


async def test_unreachable_orthanc_is_a_source_error():
    port = free_port()  # nothing listens there
    async with OrthancClient(f"http://127.0.0.1:{port}", user=USER, password=PASSWORD, timeout_s=2) as client:
        with pytest.raises(SourceError, match="unreachable") as err:
            await client.list_series()
    assert not isinstance(err.value, HttpStatusError)
    assert str(port) in str(err.value)


def test_auth_headers_and_repr():
    basic = OrthancAuth(user="u", password="p")
    assert basic.headers() == {"Authorization": "Basic dTpw"}
    assert "p" not in repr(basic).replace("password", "")
    token = OrthancAuth(token="abc")
    assert token.headers() == {"Authorization": "Bearer abc"} and "abc" not in repr(token)
    assert OrthancAuth().headers() == {}
    assert OrthancAuth.from_headers(None, {"authorization": "Bearer xyz"}).token == "xyz"
    assert OrthancAuth.from_headers(("a", "b"), None).user == "a"
    with pytest.raises(ValueError):
        OrthancAuth(user="u", token="t")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://h:8042/studies/1a-2b/archive", "archive"),
        ("http://h:8042/orthanc/series/abc/archive", "archive"),
        ("https://h/dicom-web/studies/1.2.3/series/4.5.6", "dicomweb"),
        ("http://h/wado/studies/1.2.3/series/4.5.6/", "dicomweb"),
        ("http://h/api/cts/sample-tiny/archive", None),
        ("http://h/dicom-web/studies/1.2.3", None),
        ("/tmp/studies/x/archive", None),
    ],
)
def test_url_detection(url, kind):
    parsed = parse_orthanc_url(url)
    assert (parsed.kind if parsed else None) == kind
