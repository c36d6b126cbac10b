"""The Source interface the pipelines rely on instead of the source's class: has_body, read_local, iter_members."""

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
    folder = FolderSource(str(tmp_path / "series"))
    assert not folder.has_body and folder.read_local() is None
    assert list(folder.iter_members()) == files
    http = HttpSource("http://127.0.0.1:1/ct.zip")
    assert http.has_body and http.read_local() is None
    with pytest.raises(NotImplementedError, match="HttpSource has a body to unzip"):
        next(http.iter_members())


class MemorySource(Source):
    """A source of another class whose body is local: batch must read it with read_local, never chunks()."""

    kind = "memory"

    def __init__(self, location: str, body: bytes) -> None:
        super().__init__(location)
        self.body, self.size = body, len(body)
        self.local_reads = 0

    def read_local(self) -> bytes:
        self.local_reads += 1
        return self.body

    async def chunks(self) -> AsyncIterator[bytes]:
        raise AssertionError("a local body must not be downloaded")
        yield b""


async def test_batch_reads_any_local_body_through_read_local(tmp_path, monkeypatch):
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
    result = await load(url, "batch")
    reference = await load(z, "batch")
    assert [s.local_reads for s in opened] == [1]
    assert result.metrics.bytes_downloaded == z.stat().st_size
    assert result.volume.hu.shape == (5, 32, 32)
    np.testing.assert_array_equal(result.volume.hu, reference.volume.hu)
