"""Unzipping a stream by its central directory (zipdir) against stream-unzip, and the shared inflater."""

from __future__ import annotations

import concurrent.futures
import io
import logging
import random
import struct
import zipfile
import zlib

import pytest
from pipeline_helpers import make_zip

from webviewer.errors import ArchiveError, LimitExceededError
from webviewer.loading.limits import Limits
from webviewer.loading.unzip import extract_all, iter_stream_members, iter_zip_members, read_member
from webviewer.loading.zipdir import (
    StreamWindow,
    entries_from_zipfile,
    parse_central_directory,
    parse_eocd,
    streamable_directory,
)


def _members(n: int = 12) -> list[tuple[str, bytes]]:
    """Slice-like payloads of varied size and compressibility, plus junk, a folder and an empty file."""
    out = [(f"series/IM{i:04d}", bytes(range(256)) * (40 + 7 * i) + zlib.crc32(bytes([i])).to_bytes(4, "little") * 900)
           for i in range(n)]
    out.insert(3, ("__MACOSX/series/._IM0002", b"junk" * 50))
    out.insert(5, ("series/empty", b""))
    out.append(("series/sub/", b""))
    return out


def _entries(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return streamable_directory(entries_from_zipfile(zf.infolist()))


def _entries_raw(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return entries_from_zipfile(zf.infolist())


def _chunks(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        yield ex


def _as_tuples(members):
    return [(m.name, m.data, m.skip_reason) for m in members]


@pytest.mark.parametrize("chunk", [7, 301, 4096, 1 << 20])
@pytest.mark.parametrize("variant", ["deflated", "stored", "descriptors", "zip64", "stored-descriptors"])
def test_directory_members_match_stream_unzip(pool, variant, chunk):
    members = _members()
    data = make_zip(
        members,
        compression=zipfile.ZIP_STORED if variant.startswith("stored") else zipfile.ZIP_DEFLATED,
        data_descriptors="descriptors" in variant,
        force_zip64=variant == "zip64",
    )
    entries = _entries(data)
    assert entries is not None
    got = _as_tuples(iter_zip_members(_chunks(data, chunk), Limits(), entries=entries, submit=pool.submit,
                                      archive_bytes=len(data)))
    if variant != "stored-descriptors":  # stream-unzip cannot stream these at all: the directory can
        expected = _as_tuples(iter_stream_members(_chunks(data, chunk), Limits()))
        assert got == expected
    by_name = dict(members)
    kept = [(n, d) for n, d, reason in got if reason is None]
    assert kept == [(n, by_name[n]) for n, _ in members if not n.startswith("__MACOSX") and not n.endswith("/")]
    assert {n for n, _, reason in got if reason is not None} == {"__MACOSX/series/._IM0002", "series/sub/"}


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_worker_count_does_not_change_the_members(pool, workers):
    data = make_zip(_members(20))
    entries = _entries(data)
    got = list(iter_zip_members(_chunks(data, 5000), Limits(), entries=entries, submit=pool.submit, workers=workers))
    assert [m.name for m in got] == [e.name for e in entries]


def test_directory_from_http_tail_matches_zipfile_with_prefix_and_zip64():
    for prefix, zip64 in ((b"", True), (b"#!/bin/sh\nexit 0\n", False)):
        data = prefix + make_zip(_members(), force_zip64=zip64)
        tail = data[-(65536 + 22) :]
        end = parse_eocd(tail, len(data) - len(tail))
        parsed = parse_central_directory(data[end.cd_offset : end.cd_offset + end.cd_size], end.concat)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert parsed == entries_from_zipfile(zf.infolist())
        assert end.concat == len(prefix)


def test_unusable_directories_are_refused():
    data = make_zip(_members())
    entries = _entries(data)
    assert streamable_directory([]) is None
    overlapping = [entries[0], entries[1].__class__(**{**entries[1].__dict__, "header_offset": 5})]
    assert streamable_directory(overlapping) is None
    bz = make_zip(_members(3), compression=zipfile.ZIP_BZIP2)
    with zipfile.ZipFile(io.BytesIO(bz)) as zf:
        assert streamable_directory(entries_from_zipfile(zf.infolist())) is None
    encrypted = entries[0].__class__(**{**entries[0].__dict__, "flags": 1})
    assert streamable_directory([encrypted]) is None
    inflated = entries[0].__class__(**{**entries[0].__dict__, "compressed_size": entries[0].size * 2 + 4096})
    assert streamable_directory([inflated]) is None  # would be held whole: implausible sizes go to stream-unzip
    incompressible = make_zip([("noise.bin", random.Random(1).randbytes(200_000)), ("empty", b"")])
    assert streamable_directory(_entries_raw(incompressible)) is not None


def test_corrupt_member_is_an_archive_error_naming_it(pool):
    data = bytearray(make_zip(_members()))
    entries = _entries(bytes(data))
    victim = next(e for e in entries if e.name == "series/IM0004")
    start = victim.header_offset + 30 + len(victim.name) + victim.compressed_size // 2
    data[start : start + 16] = b"\xff" * 16
    with pytest.raises(ArchiveError, match="IM0004"):
        list(iter_zip_members(_chunks(bytes(data), 4096), Limits(), entries=entries, submit=pool.submit))


def test_bad_crc_and_truncation_are_archive_errors(pool):
    data = make_zip(_members())
    entries = _entries(data)
    lying = [e.__class__(**{**e.__dict__, "crc": e.crc ^ 1}) if e.name == "series/IM0001" else e for e in entries]
    with pytest.raises(ArchiveError, match="CRC"):
        list(iter_zip_members(_chunks(data, 4096), Limits(), entries=lying, submit=pool.submit))
    last = max(entries, key=lambda e: e.header_offset)
    with pytest.raises(ArchiveError, match="truncated"):
        list(iter_zip_members(_chunks(data[: last.header_offset + 40], 4096), Limits(), entries=entries,
                              submit=pool.submit))


def test_first_member_mismatch_falls_back_to_stream_unzip(pool, caplog):
    data = make_zip(_members())
    other = make_zip([("other/" + n, d) for n, d in _members()])
    with caplog.at_level(logging.WARNING):
        got = _as_tuples(iter_zip_members(_chunks(data, 999), Limits(), entries=_entries(other), submit=pool.submit))
    assert got == _as_tuples(iter_stream_members(_chunks(data, 999), Limits()))
    assert "does not match its central directory" in caplog.text


def test_later_mismatch_says_the_archive_changed(pool):
    members = _members()
    data = make_zip(members)
    renamed = make_zip(members[:2] + [("series/XX" + members[2][0][-4:], members[2][1])] + members[3:])
    with pytest.raises(ArchiveError, match="changed while it downloaded"):
        list(iter_zip_members(_chunks(data, 999), Limits(), entries=_entries(renamed), submit=pool.submit))


def test_limits_are_checked_on_the_directory_before_inflating(pool):
    data = make_zip(_members())
    entries = _entries(data)
    calls = []

    def counting_submit(fn, *args):
        calls.append(args)
        return pool.submit(fn, *args)

    with pytest.raises(LimitExceededError):
        list(iter_zip_members(_chunks(data, 4096), Limits(max_members=3), entries=entries, submit=counting_submit))
    bomb = make_zip([("a.dcm", b"\0" * (8 << 20))])
    with pytest.raises(LimitExceededError):
        list(iter_zip_members(_chunks(bomb, 4096), Limits(), entries=_entries(bomb), submit=counting_submit,
                              archive_bytes=len(bomb)))
    assert calls == []


def test_stopping_early_leaves_no_inflate_running():
    data = make_zip(_members(30))
    entries = _entries(data)
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        jobs: list[concurrent.futures.Future] = []

        def submit(fn, *args):
            jobs.append(ex.submit(fn, *args))
            return jobs[-1]

        it = iter_zip_members(_chunks(data, 4096), Limits(), entries=entries, submit=submit, workers=3)
        first = next(it)
        assert first.name == "series/IM0000"
        it.close()
        assert jobs and all(j.done() for j in jobs)
        assert len(jobs) < 30


def test_stream_window_take_spans_chunks():
    window = StreamWindow(_chunks(bytes(range(100)), 7))
    window.fill(50, "x")
    assert bytes(window.take(5, 23)) == bytes(range(5, 23))
    window.drop_before(21)
    assert window.start == 21 and bytes(window.take(21, 30)) == bytes(range(21, 30))
    with pytest.raises(ValueError):
        window.take(3, 10)
    window.fill(99, "x")
    with pytest.raises(ArchiveError, match="truncated"):
        window.fill(101, "x")


# -- the shared inflater ---------------------------------------------------------------------------------


def test_inflate_reference_times_the_inflater():
    from webviewer.bench.inflate import inflate_reference

    timings = inflate_reference(make_zip(_members()), rounds=1)
    assert set(timings) == {"zlib"} and all(t > 0 for t in timings.values())


def test_batch_reader_checks_size_and_crc_and_falls_back_to_zipfile():
    members = _members()
    data = make_zip(members)
    by_name = dict(members)
    with zipfile.ZipFile(io.BytesIO(data)) as zf, memoryview(data) as view:
        for info in zf.infolist():
            assert read_member(zf, view, info) == by_name[info.filename]
        info = zf.getinfo("series/IM0002")
        info.CRC ^= 1
        with pytest.raises(ArchiveError, match="CRC"):
            read_member(zf, view, info)
        info.CRC ^= 1
        info.file_size -= 1
        with pytest.raises(ArchiveError, match="more"):
            read_member(zf, view, info)
    bz = make_zip(members, compression=zipfile.ZIP_BZIP2)
    got = {m.name: m.data for m in extract_all(bz, Limits()) if m.data is not None}
    assert got == {n: d for n, d in members if not n.startswith("__MACOSX") and not n.endswith("/")}


# -- hardening found in review ---------------------------------------------------------------------------


def _cd_entry_positions(data: bytes) -> list[int]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pos, out = zf.start_dir, []
        for _ in zf.infolist():
            out.append(pos)
            nl, el, cl = struct.unpack_from("<HHH", data, pos + 28)
            pos += 46 + nl + el + cl
    return out


def test_member_starting_inside_the_previous_one_is_an_archive_error(pool):
    data = bytearray(make_zip(_members(4)))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        first = zf.infolist()[0]
    struct.pack_into("<I", data, _cd_entry_positions(bytes(data))[1] + 42, first.header_offset + 30 + first.compress_size)
    entries = _entries(bytes(data))
    assert entries is not None
    for chunk in (7, 4096):
        with pytest.raises(ArchiveError, match="starts inside the member before it"):
            list(iter_zip_members(_chunks(bytes(data), chunk), Limits(), entries=entries, submit=pool.submit))


def test_gaps_and_skipped_members_are_not_held(pool, monkeypatch):
    gap = 8 << 20
    members = [("IM1", b"a" * 1000), ("__MACOSX/._IM1", random.Random(2).randbytes(6 << 20)), ("IM2", b"b" * 1000)]
    data = bytearray(make_zip(members))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        cut, start_dir = zf.infolist()[2].header_offset, zf.start_dir
    rest = bytearray(data[cut:])
    positions = [p - cut for p in _cd_entry_positions(bytes(data))]
    struct.pack_into("<I", rest, positions[2] + 42, cut + gap)
    eocd = rest.rfind(b"PK\x05\x06")
    struct.pack_into("<I", rest, eocd + 16, start_dir + gap)
    archive = bytes(data[:cut]) + bytes(gap) + bytes(rest)
    peak = 0
    fill = StreamWindow.fill

    def measuring_fill(self, upto, member):
        nonlocal peak
        fill(self, upto, member)
        peak = max(peak, self.end - self.start)

    monkeypatch.setattr(StreamWindow, "fill", measuring_fill)
    got = list(iter_zip_members(_chunks(archive, 1 << 16), Limits(), entries=_entries(archive), submit=pool.submit))
    assert [(m.name, m.data) for m in got if m.data is not None] == [("IM1", b"a" * 1000), ("IM2", b"b" * 1000)]
    assert peak < 1 << 18  # a chunk or two, not the 6 MiB skipped member nor the 8 MiB gap


def test_names_are_compared_as_stored(pool):
    members = [("IM1", b"x" * 5000), ("IM\x00", b"y" * 5000), ("IM3", b"z" * 5000)]
    data = make_zip(members)
    got = list(iter_zip_members(_chunks(data, 999), Limits(), entries=_entries(data), submit=pool.submit))
    assert [m.data for m in got] == [d for _, d in members]


def test_bytes_before_the_first_member_leave_the_directory_unused():
    data = b"#!/bin/sh\nexit 0\n" + make_zip(_members(3))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert streamable_directory(entries_from_zipfile(zf.infolist())) is None


def test_batch_reader_refuses_negative_offsets():
    data = bytearray(make_zip(_members(3)))
    eocd = data.rfind(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", data, eocd + 16)
    struct.pack_into("<I", data, eocd + 16, cd_offset + 10_000_000)
    with pytest.raises(ArchiveError, match="directory offsets are wrong"):
        extract_all(bytes(data), Limits())


def test_zip64_entry_without_its_sizes_is_refused():
    data = bytearray(make_zip(_members(2)))
    pos = _cd_entry_positions(bytes(data))[0]
    struct.pack_into("<I", data, pos + 24, 0xFFFFFFFF)  # uncompressed size "in the ZIP64 extra", which is absent
    with zipfile.ZipFile(io.BytesIO(bytes(make_zip(_members(2))))) as zf:
        start, size = zf.start_dir, len(bytes(data)) - zf.start_dir - 22
    with pytest.raises(ValueError, match="ZIP64"):
        parse_central_directory(bytes(data[start : start + size]))
