"""Unzipping: stream-unzip members over chunk sizes 1/7/65536, data descriptors, ZIP64, broken archives, bombs."""

from __future__ import annotations

import asyncio
import os
import threading
import zipfile

import pytest

from tests.pipeline_helpers import make_zip
from webviewer.errors import ArchiveError, LimitExceededError, LoadCancelledError, NotStreamableError
from webviewer.loading.limits import Limits
from webviewer.loading.unzip import ChunkBridge, extract_all, iter_stream_members

MEMBERS = [
    ("a/one.dcm", os.urandom(3000) + b"\x00" * 5000),
    ("b/c/two.dcm", bytes(range(256)) * 40),
    ("empty.dcm", b""),
    ("__MACOSX/a/._one.dcm", b"junk"),
    ("a/.DS_Store", b"\x00\x00\x00\x01Bud1"),
    ("three.dcm", b"x" * 70000),
]
KEPT = {n: d for n, d in MEMBERS if "__MACOSX" not in n and not n.endswith(".DS_Store")}


def chunked(data: bytes, size: int):
    return (data[i : i + size] for i in range(0, len(data), size))


def unzip_all(data: bytes, size: int, limits: Limits | None = None) -> tuple[dict, list]:
    out, skipped = {}, []
    for m in iter_stream_members(chunked(data, size), limits or Limits()):
        if m.data is None:
            skipped.append(m.name)
        else:
            out[m.name] = m.data
    return out, skipped


@pytest.mark.parametrize("size", [1, 7, 65536])
@pytest.mark.parametrize(
    "kind",
    ["deflate", "stored", "deflate-descriptor", "zip64", "zip64-descriptor"],
)
def test_stream_members_match_zipfile(kind, size):
    data = make_zip(
        MEMBERS,
        compression=zipfile.ZIP_STORED if kind == "stored" else zipfile.ZIP_DEFLATED,
        force_zip64=kind.startswith("zip64"),
        data_descriptors=kind.endswith("descriptor"),
    )
    got, skipped = unzip_all(data, size)
    assert got == KEPT
    assert sorted(skipped) == ["__MACOSX/a/._one.dcm", "a/.DS_Store"]
    if kind.endswith("descriptor"):
        assert all(i.flag_bits & 0x08 for i in zipfile.ZipFile(__import__("io").BytesIO(data)).infolist())


def test_stored_with_data_descriptor_is_not_streamable():
    data = make_zip(MEMBERS[:2], compression=zipfile.ZIP_STORED, data_descriptors=True)
    with pytest.raises(NotStreamableError) as info:
        unzip_all(data, 65536)
    assert info.value.to_mode == "batch"
    assert "a/one.dcm" in str(info.value)
    # batch (zipfile) reads it fine
    members = extract_all(data, Limits())
    assert {m.name: m.data for m in members} == dict(MEMBERS[:2])


@pytest.mark.parametrize("size", [7, 65536])
def test_truncated_archive(size):
    data = make_zip(MEMBERS)
    with pytest.raises(ArchiveError, match="truncated"):
        unzip_all(data[: len(data) // 2], size)
    with pytest.raises(ArchiveError, match="truncated or not a ZIP"):
        extract_all(data[: len(data) // 2], Limits())


def test_corrupted_deflate_data():
    payload = bytes(range(256)) * 400
    data = bytearray(make_zip([("x.dcm", payload)]))
    start = 30 + len("x.dcm")
    for i in range(start + 10, start + 60):
        data[i] ^= 0x5A
    with pytest.raises(ArchiveError, match="corrupted|integrity"):
        unzip_all(bytes(data), 65536)
    with pytest.raises(ArchiveError):
        extract_all(bytes(data), Limits())


def test_not_a_zip():
    with pytest.raises(ArchiveError):
        unzip_all(b"<html><body>Not found</body></html>", 65536)


def test_zip_bomb_streaming_and_batch():
    bomb = make_zip([("bomb.dcm", b"\x00" * (40 << 20))])
    assert len(bomb) < 100_000
    limits = Limits(max_compression_ratio=100, ratio_check_min_bytes=1 << 20)
    consumed = {"n": 0}

    def counting():
        for c in chunked(bomb, 4096):
            consumed["n"] += len(c)
            yield c

    with pytest.raises(LimitExceededError, match="ZIP bomb"):
        for _ in iter_stream_members(counting(), limits, consumed=lambda: consumed["n"]):
            pass
    with pytest.raises(LimitExceededError, match="ZIP bomb"):
        extract_all(bomb, limits)


def test_member_and_total_limits():
    data = make_zip([("a.dcm", b"a" * 5000), ("b.dcm", b"b" * 5000), ("c.dcm", b"c" * 10)])
    with pytest.raises(LimitExceededError, match="member"):
        unzip_all(data, 65536, Limits(max_member_bytes=4000))
    with pytest.raises(LimitExceededError, match="unzips to more than"):
        unzip_all(data, 65536, Limits(max_total_bytes=8000))
    with pytest.raises(LimitExceededError, match="more than 2 members"):
        unzip_all(data, 65536, Limits(max_members=2))
    with pytest.raises(LimitExceededError, match="member"):
        extract_all(data, Limits(max_member_bytes=4000))
    with pytest.raises(LimitExceededError, match="more than 2 members"):
        extract_all(data, Limits(max_members=2))
    # data descriptors: the size is unknown up front, the running count catches it
    dd = make_zip([("a.dcm", b"a" * 50000)], data_descriptors=True)
    with pytest.raises(LimitExceededError, match="member"):
        unzip_all(dd, 1000, Limits(max_member_bytes=4000))


def test_extract_all_skips_junk_and_directories():
    data = make_zip([*MEMBERS, ("dir/", b"")])
    members = extract_all(data, Limits())
    kept = {m.name: m.data for m in members if m.data is not None}
    assert kept == KEPT
    assert {m.name for m in members if m.data is None} == {"__MACOSX/a/._one.dcm", "a/.DS_Store", "dir/"}


async def test_chunk_bridge_backpressure_and_order():
    loop = asyncio.get_running_loop()
    bridge = ChunkBridge(loop, max_bytes=100)
    seen_queued: list[int] = []
    got: list[bytes] = []
    release = threading.Event()

    def consume():
        release.wait()
        for c in bridge:
            got.append(c)

    worker = loop.run_in_executor(None, consume)
    chunks = [bytes([i]) * 30 for i in range(20)]
    producer = asyncio.ensure_future(_produce(bridge, chunks, seen_queued))
    while bridge.queued_bytes < 100:  # the producer fills the queue (yields to the loop, no clock)
        await asyncio.sleep(0)
    for _ in range(50):  # give it every chance to queue more
        await asyncio.sleep(0)
    # the consumer is held: the producer must be waiting with at most max_bytes (+ one chunk) queued
    assert not producer.done()
    assert bridge.queued_bytes <= 100 + 30
    release.set()
    await producer
    await worker
    assert got == chunks
    assert bridge.consumed == 600
    assert max(seen_queued) <= 130


async def _produce(bridge, chunks, seen):
    for c in chunks:
        await bridge.put(c)
        seen.append(bridge.queued_bytes)
    bridge.close()


async def test_chunk_bridge_cancel_wakes_consumer():
    loop = asyncio.get_running_loop()
    bridge = ChunkBridge(loop, max_bytes=100)
    result = {}

    def consume():
        try:
            for _ in bridge:
                pass
        except LoadCancelledError:
            result["cancelled"] = True

    worker = loop.run_in_executor(None, consume)
    await bridge.put(b"x" * 10)
    bridge.cancel()
    await worker
    assert result == {"cancelled": True}
    await bridge.put(b"y")  # after cancel a put returns at once
