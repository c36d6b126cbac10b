"""The three pipelines: batch, stream-files (PoC1) and stream-dicom (PoC2), each over one LoadRun.

- ``batch``: download the whole ZIP into memory, unzip every member with zipfile, parse and decode every slice
  into a list, assemble the volume. Holds ZIP + files + datasets + volume at its peak (the seed's old path).
- ``stream-files`` (PoC1): stream-unzip members while the download streams and keep their bytes, then parse
  them all and assemble. The ZIP is never held whole.
- ``stream-dicom`` (PoC2): stream-unzip, parse and place each member into the preallocated SliceBuffer the
  moment its last byte arrives; the download waits (bounded ChunkBridge) when parsing is behind. A multi-frame
  member (Enhanced CT) is placed frame by frame while it unzips (``frame_steps``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator

from webviewer.errors import DicomError
from webviewer.loading.dicom import MultiFrameImage
from webviewer.loading.frame_steps import divert_for, place_frames
from webviewer.loading.progress import LoadState
from webviewer.loading.result import LoadMode
from webviewer.loading.run import LoadRun, Outcome, no_slices_error, submit
from webviewer.loading.unzip import Member, Prefetch
from webviewer.loading.volume import SliceBuffer

log = logging.getLogger(__name__)


async def _batch(run: LoadRun) -> Outcome:
    src, comp = run.source, run.metrics.components
    run.set_state(LoadState.DOWNLOADING)
    await run.announce_count()
    if not src.has_body:
        members = await run.in_worker(_read_folder, run)
        run.set_state(LoadState.READY)
        run.set_state(LoadState.DECOMPRESSING)
    else:
        buffer = await _download_all(run)
        run.set_state(LoadState.READY)
        run.set_state(LoadState.DECOMPRESSING)

        def extract() -> list[Member]:
            def on_member(m: Member) -> None:
                run.note_member(m)
                if m.data is not None:
                    comp.add("files", len(m.data))

            return run.extract_members(buffer, on_member)

        members = await run.in_worker(extract)
    run.set_state(LoadState.DICOM_LOADING)
    slices = await run.in_worker(run.parse_all, members)
    outcome = await run.in_worker(run.assemble, slices)
    # the old path held everything until the volume existed; release now
    buffer = members = slices = None  # noqa: F841
    return outcome


async def _download_all(run: LoadRun) -> bytes:
    src = run.source

    def read_local() -> bytes | None:
        local = src.read_local()
        if local is not None:
            run.add_downloaded(len(local))
        return local

    data = await run.in_worker(read_local)
    if data is not None:  # a local file: read whole in a worker
        run.metrics.components.set("zip", len(data))
        return data
    parts: list[bytes] = []
    held = 0
    async with contextlib.aclosing(src.chunks()) as chunks:
        async for chunk in chunks:
            parts.append(chunk)
            held += len(chunk)
            run.add_downloaded(len(chunk))
            run.metrics.components.set("zip", held)
    # one join (the chunks are freed right after): zipfile needs one seekable buffer
    data = b"".join(parts)
    parts.clear()
    return data


def _read_folder(run: LoadRun) -> list[Member]:
    members = []
    for m in run.folder_members():
        run.note_member(m)
        if m.data is not None:
            run.metrics.components.add("files", len(m.data))
        members.append(m)
    return members


async def _stream_files(run: LoadRun) -> Outcome:
    comp = run.metrics.components
    run.set_state(LoadState.DOWNLOADING)
    await run.announce_count()
    collected: list[Member] = []

    def keep(m: Member) -> None:
        run.note_member(m)
        if m.data is not None:
            collected.append(m)
            comp.add("files", len(m.data))

    if not run.source.has_body:
        await run.in_worker(lambda: [keep(m) for m in run.folder_members()])
        run.set_state(LoadState.READY)
    else:

        def consume(chunks: Iterable[bytes], consumed: Callable[[], int]) -> None:
            for m in run.stream_members(chunks, consumed):
                run.check_stop()
                keep(m)

        await run.stream(consume)
    run.set_state(LoadState.DICOM_LOADING)
    slices = await run.in_worker(run.parse_all, collected)
    outcome = await run.in_worker(run.assemble, slices)
    collected.clear()
    return outcome


async def _stream_dicom(run: LoadRun) -> Outcome:
    opts = run.options
    run.set_state(LoadState.DOWNLOADING)
    buffer = SliceBuffer(await _poc2_capacity(run), run.limits.max_volume_bytes)
    try:
        if not run.source.has_body:
            await run.in_worker(_place_all, run, buffer, _held(run, run.folder_members()))
            run.set_state(LoadState.READY)
        else:

            def unzip_and_place(chunks: Iterable[bytes], consumed: Callable[[], int]) -> None:
                # inflate on one thread, parse + place on this one: zlib and numpy release the GIL
                divert = divert_for(run, buffer, submit)
                members: Iterable[Member] = _held(run, run.stream_members(chunks, consumed, divert))
                if opts.prefetch_members > 0:
                    members = Prefetch(members, opts.prefetch_members, submit, run.abort_stream)
                _place_all(run, buffer, members)

            await run.stream(unzip_and_place)
        run.reporter.slices_placed_changed(buffer, buffer.placed, force=True)
        run.set_state(LoadState.DICOM_LOADING)
        if buffer.placed == 0:
            raise no_slices_error(run.skipped)
        return await run.in_worker(_finish, run, buffer)
    except BaseException:
        buffer.close()  # cancel, error or fallback: drop the partial volume now
        raise


async def _poc2_capacity(run: LoadRun) -> int | None:
    """Slots for PoC2's buffer: the announced count, else the central directory's member count, else None."""
    reporter = run.reporter
    capacity = await run.announce_count()
    if capacity is None and run.options.probe_central_directory:
        capacity = await run.source.member_count()
        log.debug("the source counts %s members", capacity)
        if capacity is not None:
            reporter.slices_total = capacity
            reporter.emit(force=True)
    reporter.slices_total = capacity
    return capacity


def _held(run: LoadRun, members: Iterable[Member]) -> Iterator[Member]:
    """Count member bytes as "files" from the moment they are unzipped until they are placed."""
    comp = run.metrics.components
    for m in members:
        if m.data is not None:
            comp.add("files", len(m.data))
        yield m


def _place_all(run: LoadRun, buffer: SliceBuffer, members: Iterable[Member]) -> None:
    """Parse each member and place it (or its frames) in ``buffer`` the moment it arrives (a worker thread)."""
    comp, reporter = run.metrics.components, run.reporter
    for m in members:
        run.check_stop()
        if m.streamed:  # a multi-frame member: its frames were placed while it unzipped
            continue
        run.note_member(m)
        if m.data is None:
            continue
        try:
            try:
                header = run.read_slice_header(m)
            except MultiFrameImage:
                place_frames(run, buffer, m)
                continue
            if header is None:
                continue
            try:
                buffer.place(m.name, header, m.data)
            except DicomError as exc:  # a broken slice among good ones: skipped and listed
                run.skip_broken(m.name, exc)
                continue
        finally:
            comp.add("files", -len(m.data))
        run.metrics.first_slice()
        reporter.files_parsed += 1
        comp.set("volume", buffer.nbytes)
        reporter.slices_placed_changed(buffer, buffer.placed)


def _finish(run: LoadRun, buffer: SliceBuffer) -> Outcome:
    """Sort the placed slices in place and build the volume, its warnings and metadata."""
    volume, warnings, metadata = buffer.finish(skipped=list(run.skipped))
    run.metrics.components.set("volume", volume.nbytes)
    run.reporter.slices_placed = run.reporter.slices_total = int(volume.hu.shape[0])
    return Outcome(volume, warnings, metadata)


PIPELINES = {LoadMode.BATCH: _batch, LoadMode.STREAM_FILES: _stream_files, LoadMode.STREAM_DICOM: _stream_dicom}
