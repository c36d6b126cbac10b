"""Sources: dispatch, local files and folders, the aiohttp client (status, HTML, drops, stalls, Range probe)."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from tests.pipeline_helpers import make_zip, serve, static_handler, zip_handler
from webviewer.errors import ArchiveError, BadInputError, HttpStatusError, LimitExceededError, SourceError
from webviewer.loading.limits import Limits
from webviewer.loading.source import (
    FileSource,
    FolderSource,
    HttpSource,
    SourceOptions,
    check_zip_magic,
    open_source,
    parse_central_directory,
    parse_eocd,
)

MEMBERS = [(f"s/{i}.dcm", bytes([i]) * (1000 + i)) for i in range(12)] + [
    ("__MACOSX/s/._0.dcm", b"j"),
    ("s/.DS_Store", b"j"),
    ("s/empty", b""),
]
BIG = [(f"r/{i}.dcm", os.urandom(20000)) for i in range(4)]


async def read_all(source) -> bytes:
    out = bytearray()
    async for c in source.chunks():
        out += c
    return bytes(out)


def test_open_source_dispatch(tmp_path):
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(MEMBERS))
    assert isinstance(open_source("http://127.0.0.1:1/x.zip"), HttpSource)
    assert isinstance(open_source("https://example.org/a"), HttpSource)
    assert isinstance(open_source(z), FileSource)
    assert isinstance(open_source(f"file://{z}"), FileSource)
    assert isinstance(open_source(tmp_path), FolderSource)
    assert open_source(z).name == "ct"
    assert open_source("http://h/studies/abc/ct%20one.zip").name == "ct one"
    with pytest.raises(BadInputError, match="does not exist"):
        open_source(tmp_path / "missing.zip")
    with pytest.raises(BadInputError, match="Unsupported source"):
        open_source("ftp://example.org/a.zip")


def test_zip_magic():
    check_zip_magic(b"PK\x03\x04rest", "x")
    check_zip_magic(b"PK\x05\x06" + b"\x00" * 18, "x")
    with pytest.raises(ArchiveError, match="HTML"):
        check_zip_magic(b"  <!DOCTYPE html><html>", "http://x")
    with pytest.raises(ArchiveError, match="JSON"):
        check_zip_magic(b'{"error": 1}', "http://x")
    with pytest.raises(ArchiveError, match="empty"):
        check_zip_magic(b"", "http://x")


async def test_file_source_reads_and_counts(tmp_path):
    z = tmp_path / "ct.zip"
    data = make_zip(MEMBERS)
    z.write_bytes(data)
    src = FileSource(str(z))
    assert await read_all(src) == data
    assert b"".join(src.local_chunks(7)) == data
    assert await src.member_count() == 12  # junk and empty members are not counted
    (tmp_path / "page.zip").write_bytes(b"<html>oops</html>")
    with pytest.raises(ArchiveError):
        list(FileSource(str(tmp_path / "page.zip")).local_chunks())
    with pytest.raises(LimitExceededError):
        list(FileSource(str(z), SourceOptions(limits=Limits(max_archive_bytes=100))).local_chunks())


async def test_folder_source(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "1.dcm").write_bytes(b"one")
    (tmp_path / "2.dcm").write_bytes(b"two")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    src = FolderSource(str(tmp_path))
    assert dict(src.iter_members()) == {"a/b/1.dcm": b"one", "2.dcm": b"two", ".DS_Store": b"junk"}
    assert await src.member_count() == 2
    assert src.name == tmp_path.name


@pytest.mark.parametrize("chunked", [False, True])
async def test_http_streams_with_and_without_content_length(aiohttp_server, chunked):
    data = make_zip(MEMBERS)
    server = await serve(aiohttp_server, {"/ct.zip": zip_handler(data, chunked=chunked, chunk=999)})
    src = HttpSource(str(server.make_url("/ct.zip")))
    try:
        assert await read_all(src) == data
        assert src.size == (None if chunked else len(data))
    finally:
        await src.close()


@pytest.mark.parametrize("status, exit_code", [(404, 2), (500, 1), (403, 2), (503, 1)])
async def test_http_status_errors(aiohttp_server, status, exit_code):
    server = await serve(aiohttp_server, {"/x": static_handler(b"nope", status=status, content_type="text/plain")})
    src = HttpSource(str(server.make_url("/x")))
    try:
        with pytest.raises(HttpStatusError) as info:
            await read_all(src)
    finally:
        await src.close()
    assert info.value.status == status
    assert info.value.exit_code == exit_code
    assert str(status) in str(info.value)


async def test_http_html_page_with_200_is_not_a_zip(aiohttp_server):
    page = b"<!DOCTYPE html><html><body><h1>Login required</h1></body></html>"
    server = await serve(aiohttp_server, {"/x": static_handler(page)})
    src = HttpSource(str(server.make_url("/x")))
    try:
        with pytest.raises(ArchiveError, match="not a ZIP.*HTML"):
            await read_all(src)
    finally:
        await src.close()


async def test_http_connection_dropped_midway(aiohttp_server):
    data = make_zip(BIG)
    server = await serve(aiohttp_server, {"/x": zip_handler(data, chunk=1000, drop_after=30000)})
    src = HttpSource(str(server.make_url("/x")))
    try:
        with pytest.raises(SourceError, match="dropped"):
            await read_all(src)
    finally:
        await src.close()


async def test_http_stall_timeout(aiohttp_server):
    data = make_zip(BIG)
    server = await serve(aiohttp_server, {"/x": zip_handler(data, chunk=1000, stall_after=20000)})
    src = HttpSource(str(server.make_url("/x")), SourceOptions(stall_timeout_s=0.3))
    try:
        with pytest.raises(SourceError, match=r"stalled: no bytes for 0.3 s"):
            await read_all(src)
    finally:
        await src.close()


async def test_http_connection_refused():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = HttpSource(f"http://127.0.0.1:{port}/x.zip", SourceOptions(connect_timeout_s=2))
    try:
        with pytest.raises(SourceError, match="Could not connect"):
            await read_all(src)
    finally:
        await src.close()


async def test_http_archive_limit_from_content_length(aiohttp_server):
    data = make_zip(MEMBERS)
    server = await serve(aiohttp_server, {"/x": zip_handler(data)})
    src = HttpSource(str(server.make_url("/x")), SourceOptions(limits=Limits(max_archive_bytes=1000)))
    try:
        with pytest.raises(LimitExceededError, match="archive"):
            await read_all(src)
    finally:
        await src.close()


@pytest.mark.parametrize("zip64", [False, True])
async def test_http_member_count_from_central_directory(aiohttp_server, zip64):
    data = make_zip(MEMBERS, force_zip64=zip64)
    requests: list = []
    server = await serve(aiohttp_server, {"/x": zip_handler(data, requests=requests)})
    src = HttpSource(str(server.make_url("/x")))
    try:
        assert await src.member_count() == 12
    finally:
        await src.close()
    assert requests and all(r is not None for r in requests)


async def test_http_member_count_without_range_support(aiohttp_server):
    data = make_zip(MEMBERS)
    server = await serve(aiohttp_server, {"/x": zip_handler(data, ranges=False)})
    src = HttpSource(str(server.make_url("/x")))
    try:
        assert await src.member_count() is None
        assert await read_all(src) == data  # the session still works after the refused probe
    finally:
        await src.close()


def test_parse_eocd_and_central_directory_large_directory():
    members = [(f"dir/{i:05d}.dcm", b"x" * 10) for i in range(3000)]
    data = make_zip(members)
    tail = data[-(65536 + 22) :]
    offset, size, entries, concat = parse_eocd(tail, len(data) - len(tail))
    assert (entries, concat) == (3000, 0)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert offset == zf.start_dir
    parsed = parse_central_directory(data[offset : offset + size])
    assert [e.name for e in parsed] == [n for n, _ in members]
    assert {e.size for e in parsed} == {10}
    assert [(e.header_offset, e.compressed_size, e.crc) for e in parsed] == [
        (i.header_offset, i.compress_size, i.CRC) for i in zf.infolist()
    ]


async def test_http_basic_auth_and_headers(aiohttp_server):
    import base64

    from aiohttp import web

    data = make_zip(MEMBERS)
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    seen: list = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("X-Trace"))
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, text="login")
        return await zip_handler(data)(request)

    server = await serve(aiohttp_server, {"/x": handler})
    url = str(server.make_url("/x"))
    src = HttpSource(url, SourceOptions(auth=("alice", "s3cret"), headers={"X-Trace": "t1"}))
    try:
        assert await read_all(src) == data
    finally:
        await src.close()
    assert seen == ["t1"]
    anonymous = HttpSource(url)
    try:
        with pytest.raises(HttpStatusError) as info:
            await read_all(anonymous)
    finally:
        await anonymous.close()
    assert info.value.status == 401 and info.value.exit_code == 2
    assert "s3cret" not in repr(SourceOptions(auth=("alice", "s3cret")))
