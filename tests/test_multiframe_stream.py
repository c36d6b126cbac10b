"""FrameStream and the streamed multi-frame path over input chunk sizes 1, 7 and 65536 (the stream-unzip matrix):
native frames, RLE with and without a Basic Offset Table, JPEG-LS frames split over several fragments."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.uid import JPEGLSLossless

from tests.conftest import real_series_dir
from tests.multiframe_helpers import classic_slices, enhanced_bytes, rle, to_bytes
from tests.pipeline_helpers import folder_files, make_zip
from webviewer.api.enhanced import enhanced_from_slices
from webviewer.errors import ArchiveError
from webviewer.loading import LoadOptions, load
from webviewer.loading import run as run_mod
from webviewer.loading import source as source_mod
from webviewer.loading.dicom import FrameStream, decode_hu

CHUNKS = [1, 7, 65536]


@pytest.fixture(scope="module")
def slicer_slices():
    return classic_slices(folder_files(real_series_dir("slicer-cthead-64px")))


@pytest.fixture(scope="module")
def reference(slicer_slices):
    """Stored pixels by position z, from pydicom's reading of the classic slices."""
    return {float(s.ImagePositionPatient[2]): s.pixel_array for s in slicer_slices}


def stream_in_chunks(data: bytes, chunk: int) -> tuple[list, int]:
    """Feed ``data`` ``chunk`` bytes at a time; return (header, stored pixels) per frame and the largest buffer
    the stream held between feeds."""
    frames, seen = [], []
    stream = FrameStream("e.dcm", seen.append, lambda h, buf: frames.append((h, decode_hu(buf, h).copy())))
    held = 0
    for i in range(0, len(data), chunk):
        stream.feed(data[i : i + chunk])
        if seen:
            held = max(held, len(stream._pending) + len(stream._item) + sum(map(len, stream._frame_parts)))
    fs = stream.close()
    assert seen == [fs] and len(frames) == fs.count
    return frames, held


def check(frames, reference) -> None:
    assert len(frames) == len(reference)
    for header, hu in frames:
        z = header.position[2]
        assert np.array_equal(hu, reference[z] * header.rescale_slope + header.rescale_intercept), header.name


def layouts(slicer_slices) -> dict[str, bytes]:
    native = enhanced_from_slices(slicer_slices, shuffle_seed=9)
    out = {"native": to_bytes(native), "rle": to_bytes(rle(enhanced_from_slices(slicer_slices, shuffle_seed=9)))}
    out["rle-bot-2-fragments"] = to_bytes(
        rle(enhanced_from_slices(slicer_slices, shuffle_seed=9), fragments_per_frame=2, bot=True)
    )
    ext = rle(enhanced_from_slices(slicer_slices, shuffle_seed=9))
    frames = list(pydicom.encaps.generate_frames(ext.PixelData, number_of_frames=93))
    ext.PixelData, ext.ExtendedOffsetTable, ext.ExtendedOffsetTableLengths = encapsulate_extended(frames)
    out["rle-extended-offsets"] = to_bytes(ext)
    jls = enhanced_from_slices(slicer_slices[:12], shuffle_seed=9)
    jls.compress(JPEGLSLossless, generate_instance_uid=False)
    frames = list(pydicom.encaps.generate_frames(jls.PixelData, number_of_frames=12))
    jls.PixelData = encapsulate(frames, fragments_per_frame=3, has_bot=False)  # frames end at the EOI marker
    out["jpegls-3-fragments"] = to_bytes(jls)
    return out


@pytest.mark.parametrize("chunk", CHUNKS)
def test_frame_stream_layouts_and_chunk_sizes(slicer_slices, reference, chunk):
    for layout, data in layouts(slicer_slices).items():
        frames, held = stream_in_chunks(data, chunk)
        want = {z: reference[z] for z in {h.position[2] for h, _ in frames}}
        check(frames, want)
        assert len(frames) == (12 if layout.startswith("jpegls") else 93), layout
        assert held <= 64 * 64 * 2 + 64 * 1024, (layout, held)  # one frame (plus an item), never the file


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("syntax", ["native", "rle"])
@pytest.mark.parametrize("mode", ["stream-files", "stream-dicom", "stream-dicom-prefetch", "stream-dicom-unzip"])
async def test_streamed_multiframe_chunk_sizes(tmp_path, slicer_slices, monkeypatch, mode, syntax, chunk):
    monkeypatch.setattr(run_mod, "LARGE_MEMBER_BYTES", 0)
    classic = tmp_path / "c.zip"
    classic.write_bytes(make_zip([(f"s{i}", to_bytes(s)) for i, s in enumerate(slicer_slices)]))
    ref = (await load(classic, "batch")).volume
    enhanced = tmp_path / "e.zip"
    enhanced.write_bytes(make_zip([("e.dcm", enhanced_bytes(slicer_slices, syntax=syntax))]))
    monkeypatch.setattr(source_mod, "CHUNK_BYTES", chunk)
    options = {  # the directory path (default), and stream-unzip (no directory) with its own divert
        "stream-dicom-prefetch": LoadOptions(prefetch_members=3),
        "stream-dicom-unzip": LoadOptions(probe_central_directory=False),
    }.get(mode)
    r = await load(enhanced, mode.removesuffix("-prefetch").removesuffix("-unzip"), options=options)
    assert np.array_equal(r.volume.hu, ref.hu) and r.volume.origin == ref.origin
    assert r.metrics.bytes_downloaded == enhanced.stat().st_size


@pytest.mark.parametrize("probe", [True, False])
async def test_streamed_member_with_a_bad_crc_fails(tmp_path, slicer_slices, monkeypatch, probe):
    """Frames placed while the member streams are still checked: a bad CRC-32 fails the load (both unzip paths)."""
    import zipfile

    monkeypatch.setattr(run_mod, "LARGE_MEMBER_BYTES", 0)
    data = make_zip([("e.dcm", enhanced_bytes(slicer_slices))])
    crc = zipfile.ZipFile(io.BytesIO(data)).infolist()[0].CRC
    bad = data.replace(struct.pack("<I", crc), struct.pack("<I", crc ^ 1))
    assert bad.count(struct.pack("<I", crc ^ 1)) == 2  # local header and central directory
    path = tmp_path / "bad.zip"
    path.write_bytes(bad)
    options = LoadOptions(probe_central_directory=probe, fallback=False)
    with pytest.raises(ArchiveError, match="integrity"):
        await load(path, "stream-dicom", options=options)


async def test_cancel_while_frames_stream_leaves_no_worker(aiohttp_server, slicer_slices, monkeypatch):
    """Cancelled once frames are placed, while the server holds back the rest of the one member."""
    import asyncio

    from tests.pipeline_helpers import serve, zip_handler
    from tests.test_modes_errors import CancelAt, worker_threads
    from webviewer.loading.modes import running_jobs

    monkeypatch.setattr(run_mod, "LARGE_MEMBER_BYTES", 0)
    data = make_zip([("e.dcm", enhanced_bytes(slicer_slices))])
    server = await serve(aiohttp_server, {"/a": zip_handler(data, chunk=4096, stall_after=len(data) // 2)})
    obs = CancelAt(lambda e: isinstance(e, tuple))
    task = asyncio.ensure_future(load(str(server.make_url("/a")), "stream-dicom", observer=obs))
    obs.task = task
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert obs.fired and obs.placed and obs.placed[0] < 93
    assert worker_threads() == [] and running_jobs() == 0


async def test_multiframe_member_above_the_streaming_limit_still_streams(tmp_path, slicer_slices, monkeypatch):
    """The streaming limit is for members held whole: a diverted multi-frame member is not held, so PoC2 keeps
    streaming it; a classic member that large still falls back to batch."""
    from webviewer.loading import Limits

    monkeypatch.setattr(run_mod, "LARGE_MEMBER_BYTES", 0)
    enhanced = tmp_path / "e.zip"
    enhanced.write_bytes(make_zip([("e.dcm", enhanced_bytes(slicer_slices))]))
    limits = Limits(max_stream_member_bytes=200_000)  # the member is 772 KB
    for probe in (True, False):
        r = await load(enhanced, "stream-dicom", options=LoadOptions(limits=limits, probe_central_directory=probe))
        assert r.fallback is None and r.volume.hu.shape == (93, 64, 64)
    classic = tmp_path / "c.zip"
    classic.write_bytes(make_zip([("big.dcm", to_bytes(slicer_slices[0])), ("pad.dcm", b"\x00" * 300_000)]))
    r = await load(classic, "stream-dicom", options=LoadOptions(limits=limits))
    assert r.fallback is not None and r.fallback.to_mode == "batch"
