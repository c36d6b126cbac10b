"""The CT API: catalog of real and synthetic folders, archive streaming, Range/HEAD, errors and traversal."""

from __future__ import annotations

import asyncio
import io
import json
import math
import zipfile
from pathlib import Path

import aiohttp
import pytest
from realdata import REAL_DATA_DIR, REAL_SERIES, real_series_dir

from webviewer.api import catalog as catalog_mod
from webviewer.api.app import API_KEY, CATALOG_KEY, create_app, parse_range, start_api_server
from webviewer.api.catalog import Catalog, CatalogEntry
from webviewer.api.samples import SeriesSpec, write_series, zip_folder
from webviewer.api.throttle import Pacer, chunk_size_for

FIELDS = {"id", "name", "modality", "slices", "rows", "columns", "dicom_bytes", "zip_bytes", "description"}


@pytest.fixture(scope="session")
def real_catalog(tmp_path_factory) -> Catalog:
    """The three real series, each folder zipped once per test session."""
    for name in REAL_SERIES:
        real_series_dir(name)
    return Catalog.from_data_dir(REAL_DATA_DIR, cache_dir=tmp_path_factory.mktemp("api-cache"), compresslevel=1)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """A data folder like a user's: nested series, a ZIP, junk files, a broken ZIP, an empty folder."""
    root = tmp_path_factory.mktemp("data")
    write_series(root / "patient1" / "study" / "chest", SeriesSpec(rows=32, columns=32, slices=12))
    tilted = root / "patient2" / "Tilted Series!"
    write_series(tilted, SeriesSpec(rows=16, columns=24, slices=5, gantry_tilt_deg=12))
    (tilted / "notes.txt").write_text("not DICOM")
    (tilted / ".DS_Store").write_bytes(b"\0\1junk")
    src = root.parent / f"{root.name}-zipsrc"
    write_series(src, SeriesSpec(rows=16, columns=16, slices=7, transfer_syntax="rle"))
    zip_folder(src, root / "exports" / "Study A.zip")
    (root / "exports" / "broken.zip").write_bytes(b"PK\3\4 this is not really a zip")
    src3 = root.parent / f"{root.name}-corrupt"
    write_series(src3, SeriesSpec(rows=16, columns=16, slices=3))
    _corrupt_first_member(zip_folder(src3, root / "exports" / "corrupt.zip"))
    (root / "empty").mkdir()
    (root / "docs").mkdir()
    (root / "docs" / "readme").write_text("hello")
    return root


def _corrupt_first_member(path: Path) -> None:
    """Overwrite the start of the first member's deflate stream with garbage."""
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    data = bytearray(path.read_bytes())
    pos = info.header_offset
    start = pos + 30 + int.from_bytes(data[pos + 26:pos + 28], "little") + int.from_bytes(data[pos + 28:pos + 30],
                                                                                          "little")
    data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def synth_catalog(synth_dir: Path, tmp_path_factory) -> Catalog:
    return Catalog.from_data_dir(synth_dir, cache_dir=tmp_path_factory.mktemp("synth-cache"))


# ------------------------------------------------------------------------------------------------ catalog
def test_real_catalog_counts(real_catalog: Catalog) -> None:
    by_id = {e.id: e for e in real_catalog.entries()}
    assert {name: by_id[name].slices for name in REAL_SERIES} == REAL_SERIES
    philips = by_id["dcmqa-philips-headphantom-1mm"]
    assert philips.extra["images"] == 140  # DIRFILE (a DICOMDIR) is not a slice
    assert (philips.rows, philips.columns, philips.modality) == (512, 512, "CT")
    assert (by_id["slicer-cthead-64px"].rows, by_id["slicer-cthead-64px"].columns) == (64, 64)
    for entry in by_id.values():
        assert entry.zip_bytes == entry.zip_path.stat().st_size
        assert 0 < entry.zip_bytes < entry.dicom_bytes
        assert set(entry.to_json()) >= FIELDS and "zip_path" not in entry.to_json()


def test_real_folder_zip_members(real_catalog: Catalog) -> None:
    entry = real_catalog.get("dcmqa-philips-headphantom-1mm")
    folder = real_series_dir("dcmqa-philips-headphantom-1mm")
    with zipfile.ZipFile(entry.zip_path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert "DIRFILE" in names and len([n for n in names if n.startswith("I")]) == 140
    assert sorted(names) == sorted(p.name for p in folder.iterdir())
    assert names != sorted(names)  # member order is not name order
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
    # sizes recorded in the catalog: only image slices count as DICOM bytes
    assert entry.dicom_bytes == sum(i.file_size for i in infos if i.filename.startswith("I"))


def test_synthetic_data_dir(synth_catalog: Catalog) -> None:
    by_id = {e.id: e for e in synth_catalog.entries()}
    assert set(by_id) == {"patient1-study-chest", "patient2-tilted-series", "exports-study-a", "exports-corrupt"}
    assert by_id["exports-corrupt"].slices == 2  # the corrupt member is not a slice, and no crash
    chest = by_id["patient1-study-chest"]
    assert (chest.slices, chest.rows, chest.columns, chest.source) == (12, 32, 32, "folder")
    tilted = by_id["patient2-tilted-series"]
    assert (tilted.slices, tilted.rows, tilted.columns) == (5, 16, 24)
    with zipfile.ZipFile(tilted.zip_path) as zf:
        assert "notes.txt" in zf.namelist() and ".DS_Store" not in zf.namelist()
    study = by_id["exports-study-a"]
    assert (study.slices, study.source, study.name) == (7, "zip", "Study A")
    assert study.zip_path.name == "Study A.zip"  # a ZIP is served as it is


def test_catalog_cache_makes_restart_instant(synth_dir: Path, tmp_path: Path, monkeypatch) -> None:
    first = Catalog.from_data_dir(synth_dir, cache_dir=tmp_path)
    mtimes = {e.id: e.zip_path.stat().st_mtime_ns for e in first.entries()}

    def no_probe(*a, **k):
        raise AssertionError("headers must come from the cache")

    monkeypatch.setattr(catalog_mod, "_probe_path", no_probe)
    monkeypatch.setattr(catalog_mod, "_probe_member", no_probe)
    monkeypatch.setattr(catalog_mod, "zip_folder", no_probe)
    again = Catalog.from_data_dir(synth_dir, cache_dir=tmp_path)
    assert [e.to_json() for e in again.entries()] == [e.to_json() for e in first.entries()]
    assert {e.id: e.zip_path.stat().st_mtime_ns for e in again.entries()} == mtimes


def test_changed_folder_is_rezipped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_series(data / "s", SeriesSpec(rows=16, columns=16, slices=3))
    cache = tmp_path / "cache"
    assert Catalog.from_data_dir(data, cache_dir=cache).get("s").slices == 3
    write_series(data / "s", SeriesSpec(rows=16, columns=16, slices=2), name_prefix="X")
    entry = Catalog.from_data_dir(data, cache_dir=cache).get("s")
    assert entry.extra["images"] == 5
    with zipfile.ZipFile(entry.zip_path) as zf:
        assert len(zf.namelist()) == 5
    assert len(list((cache / "zips").glob("s-*.zip"))) == 1  # the stale zip is gone


def test_catalog_ids_are_dict_lookups(synth_catalog: Catalog) -> None:
    for bad in ["..", "../patient1", "/etc/passwd", "patient1/study/chest", "", None, 3]:
        assert synth_catalog.get(bad) is None
    dup = Catalog([_entry("a", Path("/x")), _entry("a", Path("/y"))])
    assert [e.id for e in dup.entries()] == ["a", "a-2"]


def _entry(ct_id: str, path: Path, size: int = 0) -> CatalogEntry:
    return CatalogEntry(id=ct_id, name=ct_id, modality="CT", slices=1, rows=1, columns=1, dicom_bytes=size,
                        zip_bytes=size, description="", zip_path=path)


def test_from_samples(tmp_path: Path) -> None:
    cat = Catalog.from_samples(["tiny"], tmp_path, progress=False)
    (entry,) = cat.entries()
    assert (entry.id, entry.slices, entry.rows, entry.columns) == ("sample-tiny", 48, 64, 64)
    assert entry.zip_path.is_file() and entry.zip_bytes == entry.zip_path.stat().st_size
    assert entry.dicom_bytes > entry.zip_bytes


# ------------------------------------------------------------------------------------------------ HTTP
async def test_list_and_get(aiohttp_client, real_catalog: Catalog) -> None:
    client = await aiohttp_client(create_app(real_catalog))
    resp = await client.get("/api/cts")
    assert resp.status == 200 and resp.content_type == "application/json"
    items = await resp.json()
    assert {i["id"]: i["slices"] for i in items} == REAL_SERIES
    assert all(set(i) >= FIELDS and "zip_path" not in i for i in items)
    resp = await client.get("/api/cts/dcmqa-ge-head-gantrytilt")
    assert resp.status == 200
    assert (await resp.json())["slices"] == 28
    resp = await client.get("/api/cts/nope")
    assert resp.status == 404 and resp.content_type == "application/json"
    assert "error" in await resp.json()
    resp = await client.get("/api/profiles")
    assert [p["name"] for p in await resp.json()] == ["unlimited", "1gbit", "100mbit", "40mbit", "4g"]


@pytest.mark.parametrize("name", sorted(REAL_SERIES))
async def test_full_download_is_the_zip_and_the_files(aiohttp_client, real_catalog: Catalog, name: str) -> None:
    client = await aiohttp_client(create_app(real_catalog))
    entry = real_catalog.get(name)
    resp = await client.get(f"/api/cts/{name}/archive")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert int(resp.headers["Content-Length"]) == entry.zip_bytes
    body = await resp.read()
    assert body == entry.zip_path.read_bytes()
    folder = real_series_dir(name)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted(p.name for p in folder.iterdir())
        for member in names:
            assert zf.read(member) == (folder / member).read_bytes(), member


async def test_range_and_head(aiohttp_client, synth_catalog: Catalog) -> None:
    client = await aiohttp_client(create_app(synth_catalog))
    entry = synth_catalog.get("patient1-study-chest")
    data = entry.zip_path.read_bytes()
    size = len(data)
    url = f"/api/cts/{entry.id}/archive"

    resp = await client.get(url, headers={"Range": "bytes=100-199"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert resp.headers["Content-Length"] == "100"
    assert await resp.read() == data[100:200]

    resp = await client.get(url, headers={"Range": "bytes=1000-"})
    assert resp.status == 206 and await resp.read() == data[1000:]
    resp = await client.get(url, headers={"Range": "bytes=-22"})  # the end-of-central-directory record
    assert resp.status == 206 and await resp.read() == data[-22:]
    resp = await client.get(url, headers={"Range": f"bytes=0-{size + 100}"})
    assert resp.status == 206 and await resp.read() == data

    for bad in [f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=50-10", "bytes=abc", "lines=1-2",
                "bytes=-0"]:
        resp = await client.get(url, headers={"Range": bad})
        assert resp.status == 416, bad
        assert resp.headers["Content-Range"] == f"bytes */{size}"
        assert "error" in await resp.json()

    resp = await client.get(url, headers={"Range": "bytes=0-1,5-6"})  # multiple ranges: whole file
    assert resp.status == 200 and await resp.read() == data
    resp = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert resp.status == 200
    etag = resp.headers["ETag"]
    await resp.read()
    resp = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert resp.status == 206 and await resp.read() == data[:10]

    resp = await client.head(url)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(size)
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert await resp.read() == b""
    resp = await client.head(url, headers={"Range": "bytes=10-19"})
    assert resp.status == 206 and resp.headers["Content-Length"] == "10"
    resp = await client.head("/api/cts/unknown/archive")
    assert resp.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/cts/../../etc/passwd",
        "/api/cts/..%2f..%2fetc%2fpasswd/archive",
        "/api/cts/%2e%2e%2f%2e%2e%2fetc%2fpasswd/archive",
        "/api/cts/%2e%2e/archive",
        "/api/cts/%2Fetc%2Fpasswd/archive",
        "/api/cts//etc/passwd/archive",
        "/api/cts/patient1%2fstudy%2fchest/archive",
        "/api/cts/..%5c..%5cwindows/archive",
        "/api/cts/%252e%252e%252f/archive",
        "/api/nothing",
    ],
)
async def test_traversal_gets_404(aiohttp_client, synth_catalog: Catalog, path: str) -> None:
    client = await aiohttp_client(create_app(synth_catalog))
    status, body = await raw_get(client.host, client.port, path)
    assert status == 404, body
    assert json.loads(body)["error"]


async def raw_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client-side normalisation of ``..`` or escapes)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "query", ["rate=fast", "rate=-1MB", "latency=-5", "latency=soon", "profile=dialup", "rate=5M", "latency=1e9"]
)
async def test_bad_query_gets_400(aiohttp_client, synth_catalog: Catalog, query: str) -> None:
    client = await aiohttp_client(create_app(synth_catalog))
    resp = await client.get(f"/api/cts/patient1-study-chest/archive?{query}")
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] and body["status"] == 400


class RecordingPacer(Pacer):
    instances: list[RecordingPacer] = []

    def __init__(self, rate):
        super().__init__(rate)
        self.chunks: list[int] = []
        RecordingPacer.instances.append(self)

    async def wait(self, nbytes: int) -> None:
        self.chunks.append(nbytes)
        self.sent += nbytes


@pytest.mark.parametrize(
    ("query", "server", "rate", "latency"),
    [
        ("", {}, None, 0),
        ("", {"rate": 5e6, "latency_ms": 20}, 5e6, 0.02),
        ("?rate=100mbit&latency=10", {"rate": 5e6}, 12.5e6, 0.01),
        ("?profile=4g", {}, 3.75e6, 0.01),
        ("?profile=40mbit&latency=3", {}, 5e6, 0.003),
        ("?rate=unlimited", {"rate": 5e6}, None, 0),
    ],
)
async def test_throttle_settings_and_chunked_streaming(aiohttp_client, synth_catalog, query, server, rate,
                                                       latency) -> None:
    app = create_app(synth_catalog, **server)
    api = app[API_KEY]
    assert app[CATALOG_KEY] is synth_catalog
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    api.sleep = fake_sleep
    api.pacer_factory = RecordingPacer
    RecordingPacer.instances.clear()
    client = await aiohttp_client(app)
    entry = synth_catalog.get("patient1-study-chest")
    resp = await client.get(f"/api/cts/{entry.id}/archive{query}")
    assert resp.status == 200
    assert await resp.read() == entry.zip_path.read_bytes()
    (pacer,) = RecordingPacer.instances
    assert pacer.rate == (pytest.approx(rate) if rate else None)
    assert sleeps == ([pytest.approx(latency)] if latency else [])
    assert sum(pacer.chunks) == entry.zip_bytes
    assert max(pacer.chunks) <= chunk_size_for(rate)  # streamed in chunks, never the whole body at once
    assert len(pacer.chunks) == math.ceil(entry.zip_bytes / chunk_size_for(rate))


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    assert parse_range("bytes=9-", 10) == (9, 10)


async def test_start_api_server(tmp_path: Path) -> None:
    blob = tmp_path / "blob.zip"
    blob.write_bytes(b"x" * 300_000)
    runner, base = await start_api_server(Catalog([_entry("blob", blob, 300_000)]), rate=None)
    try:
        assert base.startswith("http://127.0.0.1:") and not base.endswith(":0")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/cts") as resp:
                assert [i["id"] for i in await resp.json()] == ["blob"]
            async with session.get(f"{base}/api/cts/blob/archive?rate=40mbit") as resp:
                assert await resp.read() == blob.read_bytes()
    finally:
        await runner.cleanup()


async def test_client_leaving_mid_download(tmp_path: Path, caplog) -> None:
    blob = tmp_path / "blob.zip"
    blob.write_bytes(b"y" * 2_000_000)
    runner, base = await start_api_server(Catalog([_entry("blob", blob, 2_000_000)]), rate="1MB")
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(f"{base}/api/cts/blob/archive")
            first = await resp.content.readany()
            assert 0 < len(first) < 2_000_000
            resp.close()  # drop the connection while the server is still pacing
            async with session.get(f"{base}/api/cts") as again:
                assert again.status == 200
                assert [i["id"] for i in await again.json()] == ["blob"]
    finally:
        await runner.cleanup()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Catalog.from_data_dir(tmp_path / "nope", cache_dir=tmp_path / "cache")
