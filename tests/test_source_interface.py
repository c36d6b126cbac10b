"""The Source interface the engine relies on instead of the source's class: has_body, read_local, local_chunks,
iter_members."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.pipeline_helpers import make_zip, synthetic_files
from webviewer.loading import load
from webviewer.loading import source as source_module
from webviewer.loading.source import FileSource, FolderSource, HttpSource, Source


def test_each_source_says_how_its_members_are_read(tmp_path):
    files = synthetic_files(tmp_path / "series", slices=3)
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(files))
    file_source = FileSource(str(z))
    assert file_source.has_body and file_source.read_local() == z.read_bytes()
    assert b"".join(file_source.local_chunks()) == z.read_bytes()
    folder = FolderSource(str(tmp_path / "series"))
    assert not folder.has_body and folder.read_local() is None and folder.local_chunks() is None
    assert list(folder.iter_members()) == files
    http = HttpSource("http://127.0.0.1:1/ct.zip")
    assert http.has_body and http.read_local() is None and http.local_chunks() is None
    with pytest.raises(NotImplementedError, match="HttpSource has a body to unzip"):
        next(http.iter_members())


class MemorySource(Source):
    """A source of another class whose body is local: batch must read it with read_local, the streaming modes with
    local_chunks, never chunks()."""

    kind = "memory"

    def __init__(self, location: str, body: bytes) -> None:
        super().__init__(location)
        self.body, self.size = body, len(body)
        self.local_reads = 0
        self.chunk_reads = 0

    def local_chunks(self):
        for start in range(0, len(self.body), 4096):
            self.chunk_reads += 1
            yield self.body[start:start + 4096]

    def read_local(self) -> bytes:
        self.local_reads += 1
        return self.body

    async def chunks(self) -> AsyncIterator[bytes]:
        raise AssertionError("a local body must not be downloaded")
        yield b""


def memory_url(tmp_path, monkeypatch) -> tuple[str, object, list]:
    """A URL that opens a MemorySource of a 5-slice ZIP; (url, the ZIP's path, the sources opened)."""
    z = tmp_path / "ct.zip"
    z.write_bytes(make_zip(synthetic_files(tmp_path / "series", slices=5)))
    url = "http://memory.invalid/ct.zip"
    opened: list[MemorySource] = []

    def opener(location, options):
        if location != url:
            return None
        opened.append(MemorySource(location, z.read_bytes()))
        return opened[-1]

    monkeypatch.setattr(source_module, "_URL_OPENERS", [opener])
    return url, z, opened


async def test_batch_reads_any_local_body_through_read_local(tmp_path, monkeypatch):
    url, z, opened = memory_url(tmp_path, monkeypatch)
    result = await load(url, "batch")
    reference = await load(z, "batch")
    assert [s.local_reads for s in opened] == [1]
    assert result.metrics.bytes_downloaded == z.stat().st_size
    assert result.volume.hu.shape == (5, 32, 32)
    np.testing.assert_array_equal(result.volume.hu, reference.volume.hu)


@pytest.mark.parametrize("mode", ["stream-files", "stream-dicom"])
async def test_streaming_reads_any_local_body_through_local_chunks(tmp_path, monkeypatch, mode):
    url, z, opened = memory_url(tmp_path, monkeypatch)
    result = await load(url, mode)
    reference = await load(z, "batch")
    size = z.stat().st_size
    assert [s.chunk_reads for s in opened] == [-(-size // 4096)] and opened[0].local_reads == 0
    assert result.metrics.bytes_downloaded == size
    np.testing.assert_array_equal(result.volume.hu, reference.volume.hu)
