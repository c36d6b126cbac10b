"""Loading from a real Orthanc: the series archive ZIP in all three modes and the DICOMweb (WADO-RS) series
give the same volume, geometry and warnings as the local folder; failures give clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from orthanc_helpers import (  # noqa: F401 - fixture
    PASSWORD,
    USER,
    KillingProxy,
    free_port,
    orthanc,
    start_orthanc_with,
)
from realdata import REAL_SERIES

from webviewer.errors import HttpStatusError, SourceError
from webviewer.loading import LoadMode, LoadObserver, LoadOptions, LoadState, load
from webviewer.loading.modes import running_jobs

MODES = [m.value for m in LoadMode]
_REFERENCE: dict[str, object] = {}


async def reference(orthanc_server, name: str):
    """The same series loaded from its local folder (batch): the ground truth."""
    if name not in _REFERENCE:
        _REFERENCE[name] = await load(orthanc_server.series[name].folder, "batch")
    return _REFERENCE[name]


def assert_same_ct(result, ref) -> None:
    a, b = result.volume, ref.volume
    assert a.hu.dtype == b.hu.dtype and a.hu.shape == b.hu.shape
    assert np.array_equal(a.hu, b.hu)
    assert a.spacing == b.spacing and a.origin == b.origin and a.window == b.window
    assert np.array_equal(a.direction, b.direction)
    # the folder also holds files Orthanc never got (SOURCE.md, the DICOMDIR): only that warning differs
    ref_warnings = [(w.code, w.message) for w in ref.warnings if w.code != "skipped_files"]
    assert [(w.code, w.message) for w in result.warnings] == ref_warnings
    assert result.skipped_files == []
    for key in ("series_uid", "patient_name", "series_description", "dimensions", "spacing", "origin"):
        assert result.metadata[key] == ref.metadata[key]


def options(**kw) -> LoadOptions:
    return LoadOptions(**{"auth": (USER, PASSWORD), "connect_timeout_s": 5, "stall_timeout_s": 20, **kw})


class Recorder(LoadObserver):
    def __init__(self) -> None:
        self.events = []

    def on_progress(self, event) -> None:
        self.events.append(event)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
async def test_archive_in_every_mode_matches_the_folder(orthanc, name, mode):  # noqa: F811
    rec = Recorder()
    result = await load(orthanc.archive_url(name), mode, options=options(), observer=rec)
    assert result.mode == LoadMode(mode) and result.fallback is None
    assert_same_ct(result, await reference(orthanc, name))
    if name == "dcmqa-ge-head-gantrytilt":
        assert {w.code for w in result.warnings} >= {"gantry_tilt", "irregular_spacing"}
    # Orthanc streams the ZIP without Content-Length: progress counts against the instance count
    downloading = [e for e in rec.events if e.state == LoadState.DOWNLOADING]
    assert downloading and all(e.bytes_total is None for e in rec.events)
    assert downloading[-1].slices_total == REAL_SERIES[name]
    assert rec.events[-1].state == LoadState.FINISHED


@pytest.mark.parametrize("name", sorted(REAL_SERIES))
async def test_dicomweb_series_streams_into_the_volume(orthanc, name):  # noqa: F811
    rec = Recorder()
    result = await load(orthanc.dicomweb_url(name), "stream-dicom", options=options(), observer=rec)
    assert result.mode == LoadMode.STREAM_DICOM and result.fallback is None
    assert_same_ct(result, await reference(orthanc, name))
    assert result.metrics.first_slice_s is not None and result.metrics.first_slice_s <= result.metrics.total_s
    assert result.metrics.bytes_dicom > 0 and result.metrics.bytes_downloaded > result.metrics.bytes_dicom
    assert [e.slices_total for e in rec.events if e.state == LoadState.DOWNLOADING][-1] == REAL_SERIES[name]


@pytest.mark.parametrize("mode", ["batch", "stream-files"])
async def test_dicomweb_series_in_the_other_modes(orthanc, mode):  # noqa: F811
    name = "slicer-cthead-64px"
    result = await load(orthanc.dicomweb_url(name), mode, options=options())
    assert result.mode == LoadMode(mode)
    assert_same_ct(result, await reference(orthanc, name))


async def test_study_archive_and_token_header(orthanc):  # noqa: F811
    """The study archive URL works too; credentials may come as an Authorization header."""
    import base64

    name = "dcmqa-ge-head-gantrytilt"
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    result = await load(orthanc.study_archive_url(name), "stream-dicom",
                        options=LoadOptions(headers={"Authorization": basic}))
    assert_same_ct(result, await reference(orthanc, name))


# -- failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["archive", "dicomweb"])
async def test_unreachable_orthanc(kind):
    port = free_port()
    url = (f"http://127.0.0.1:{port}/series/0a-0b/archive" if kind == "archive"
           else f"http://127.0.0.1:{port}/dicom-web/studies/1.2.3/series/4.5.6")
    with pytest.raises(SourceError) as err:
        await load(url, "stream-dicom", options=options(connect_timeout_s=2))
    assert not isinstance(err.value, HttpStatusError)
    assert str(port) in str(err.value) and "running" in str(err.value)
    assert running_jobs() == 0


@pytest.mark.parametrize(("kind", "mode"), [("archive", "batch"), ("archive", "stream-dicom"),
                                            ("dicomweb", "stream-dicom")])
async def test_wrong_credentials_are_a_401(orthanc, kind, mode):  # noqa: F811
    name = "slicer-cthead-64px"
    url = orthanc.archive_url(name) if kind == "archive" else orthanc.dicomweb_url(name)
    with pytest.raises(HttpStatusError) as err:
        await load(url, mode, options=LoadOptions(auth=(USER, "not-the-password")))
    assert err.value.status == 401 and err.value.exit_code == 2
    text = str(err.value)
    assert "401" in text and "password" in text and "not-the-password" not in text
    with pytest.raises(HttpStatusError, match="needs credentials"):
        await load(url, mode)  # no credentials at all


@pytest.mark.parametrize("kind", ["archive", "dicomweb"])
async def test_unknown_study_is_a_404(orthanc, kind):  # noqa: F811
    url = (f"{orthanc.url}/studies/00000000-00000000-00000000-00000000-00000000/archive" if kind == "archive"
           else f"{orthanc.url}/dicom-web/studies/1.2.3.4/series/5.6.7.8")
    with pytest.raises(HttpStatusError) as err:
        await load(url, "stream-dicom", options=options())
    assert err.value.status == 404 and "404" in str(err.value)
    assert running_jobs() == 0


@pytest.fixture(scope="module")
def orthanc_to_stop(tmp_path_factory):
    """A second Orthanc holding the Philips series (75 MB), restarted after each test stopped it."""
    server = start_orthanc_with(tmp_path_factory.mktemp("orthanc-stop"), ["dcmqa-philips-headphantom-1mm"])
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(("kind", "mode"), [("archive", "batch"), ("archive", "stream-files"),
                                            ("archive", "stream-dicom"), ("dicomweb", "stream-dicom")])
async def test_orthanc_stopped_in_the_middle_of_a_load(orthanc_to_stop, orthanc, kind, mode):  # noqa: F811
    server = orthanc_to_stop
    if not server.running():
        server.port = free_port()
        server.start()
    proxy = KillingProxy(server)
    base = await proxy.start()
    name = "dcmqa-philips-headphantom-1mm"
    url = (server.archive_url(name) if kind == "archive" else server.dicomweb_url(name)).replace(server.url, base)
    rec = Recorder()
    try:
        with pytest.raises(SourceError) as err:
            await load(url, mode, options=options(fallback=False), observer=rec)
    finally:
        await proxy.close()
    assert proxy.killed and not server.running()
    text = str(err.value)
    assert "stopped or the connection dropped" in text and "Retry" in text and err.value.exit_code == 1
    assert rec.events[-1].state == LoadState.ERROR
    assert running_jobs() == 0
    # the engine keeps working: the next load (another Orthanc) succeeds
    small = "slicer-cthead-64px"
    result = await load(orthanc.archive_url(small), mode, options=options())
    assert_same_ct(result, await reference(orthanc, small))


@pytest.mark.parametrize("kind", ["archive", "dicomweb"])
async def test_cancel_an_orthanc_load(orthanc, kind):  # noqa: F811
    """Cancel at the first placed slice: `cancelled`, workers joined; Orthanc and the engine go on serving."""
    import asyncio

    name = "dcmqa-philips-headphantom-1mm"
    url = orthanc.archive_url(name) if kind == "archive" else orthanc.dicomweb_url(name)

    class CancelAtFirstSlice(Recorder):
        task: asyncio.Task | None = None

        def on_slices_placed(self, buffer, placed) -> None:
            if self.task is not None:
                self.task.cancel()

    rec = CancelAtFirstSlice()
    task = asyncio.ensure_future(load(url, "stream-dicom", options=options(), observer=rec))
    rec.task = task
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.events[-1].state == LoadState.CANCELLED
    assert running_jobs() == 0
    small = "slicer-cthead-64px"
    assert_same_ct(await load(orthanc.dicomweb_url(small), "stream-dicom", options=options()),
                   await reference(orthanc, small))
