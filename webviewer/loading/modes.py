"""The three load modes wired from source, unzip, dicom and volume; fallback, cancel, progress and metrics.

- ``batch``: download the whole ZIP into memory, unzip every member with zipfile, parse and decode every slice
  into a list, assemble the volume. Holds ZIP + files + datasets + volume at its peak (the seed's old path).
- ``stream-files`` (PoC1): stream-unzip members while the download streams and keep their bytes, then parse
  them all and assemble. The ZIP is never held whole.
- ``stream-dicom`` (PoC2): stream-unzip, parse and place each member into the preallocated SliceBuffer the
  moment its last byte arrives; the download waits (bounded ChunkBridge) when parsing is behind.

Threading: the download runs on the event loop; all blocking work (unzip, parse, decode, assemble) runs in one
worker thread per stage; observer calls are marshalled back to the loop by :class:`ProgressReporter`.

Fallback (stream-dicom -> stream-files -> batch): when a streaming mode cannot stream the archive it raises
NotStreamableError; the load restarts in the next safer mode **from the first byte** (a new HTTP request, or
the file re-read), because the streaming modes keep no copy of what they consumed. The restart is recorded as
``Fallback(from, to, reason)`` and the bytes of both attempts count in ``bytes_downloaded``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from webviewer.errors import BadInputError, DicomError, NotStreamableError, WebViewerError
from webviewer.loading import dicom
from webviewer.loading.geometry import LoadWarning
from webviewer.loading.limits import Limits
from webviewer.loading.metrics import LoadMetrics, MetricsRecorder, trim_heap, tune_malloc
from webviewer.loading.progress import LoadObserver, LoadState, ProgressReporter
from webviewer.loading.source import FileSource, FolderSource, Source, SourceOptions, open_source
from webviewer.loading.unzip import Cancelled, ChunkBridge, Member, Prefetch, extract_all, iter_stream_members
from webviewer.loading.volume import CTVolume, SliceBuffer, assemble_volume

log = logging.getLogger(__name__)
T = TypeVar("T")


class LoadMode(StrEnum):
    BATCH = "batch"
    STREAM_FILES = "stream-files"
    STREAM_DICOM = "stream-dicom"

    def __str__(self) -> str:
        return self.value


#: the next safer mode of each streaming mode
FALLBACK_CHAIN = {LoadMode.STREAM_DICOM: LoadMode.STREAM_FILES, LoadMode.STREAM_FILES: LoadMode.BATCH}
_ID_PREFIX = {
    LoadMode.STREAM_DICOM: "PoC_CT_STREAMDICOM",
    LoadMode.STREAM_FILES: "PoC_CT_STREAMFILE",
    LoadMode.BATCH: "CT_BATCH",
}


@dataclass
class LoadOptions:
    limits: Limits = field(default_factory=Limits)
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 30.0
    expected_slices: int | None = None
    fallback: bool = True
    name: str | None = None
    #: compressed bytes the download may run ahead of the unzip/parse worker (backpressure bound)
    queue_bytes: int = 4 << 20
    #: ask the server for the ZIP central directory (Range) to learn the slice count for preallocation
    probe_central_directory: bool = True
    #: HTTP basic credentials (user, password) and extra request headers (e.g. Authorization: Bearer <token>)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: dict[str, str] | None = field(default=None, repr=False)
    #: PoC2: members inflated ahead of a separate parse/place thread; 0 (default) = one thread, which measured
    #: faster on 2 shared cores (GIL hand-offs cost more than the overlap gains)
    prefetch_members: int = 0


@dataclass
class Fallback:
    from_mode: str
    to_mode: str
    reason: str

    def to_json(self) -> dict:
        return {"from": self.from_mode, "to": self.to_mode, "reason": self.reason}


@dataclass
class LoadResult:
    content_id: str
    mode: LoadMode
    requested_mode: LoadMode
    name: str
    volume: CTVolume
    metadata: dict
    warnings: list[LoadWarning]
    skipped_files: list[str]
    fallback: Fallback | None
    metrics: LoadMetrics
    source: str = ""

    def to_json(self) -> dict:
        """The ``webviewer-load --json`` object (issue 3)."""
        v, m = self.volume, self.metrics
        return {
            "mode": self.mode.value,
            "content_id": self.content_id,
            "slices": int(v.hu.shape[0]),
            "dimensions": [int(d) for d in v.dimensions],
            "spacing": [float(s) for s in v.spacing],
            "origin": [float(o) for o in v.origin],
            "direction": [float(d) for d in np.asarray(v.direction, dtype=float).reshape(9)],
            "dtype": str(v.hu.dtype),
            "timings": {"total_s": m.total_s, "first_slice_s": m.first_slice_s, "states": dict(m.states)},
            "bytes": {"downloaded": m.bytes_downloaded, "dicom": m.bytes_dicom},
            "memory": {
                "baseline_rss_bytes": m.baseline_rss_bytes,
                "peak_rss_bytes": m.peak_rss_bytes,
                "peak_above_baseline_bytes": m.peak_above_baseline_bytes,
                "volume_bytes": m.volume_bytes,
                "components_peak_bytes": dict(m.components_peak_bytes),
            },
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
            "skipped_files": list(self.skipped_files),
            "fallback": self.fallback.to_json() if self.fallback else None,
        }


def make_content_id(mode: LoadMode | str) -> str:
    """Content id per mode; uses the registry's function when the DICOM helper provides it."""
    try:
        from webviewer.loading.registry import make_content_id as registry_make_id
    except ImportError:
        return f"{_ID_PREFIX[LoadMode(mode)]}_{int(time.time() * 1000)}"
    return registry_make_id(LoadMode(mode).value)


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_JOBS: set[concurrent.futures.Future] = set()
#: worker threads shared by all loads: a PoC2 load uses two (unzip, parse+place); a cancelled load may still
#: be finishing while the next one starts
WORKERS = 8


def _submit(fn: Callable[..., T], *args: Any) -> concurrent.futures.Future:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="webviewer-load-worker")
        job = _POOL.submit(fn, *args)
        _JOBS.add(job)
    job.add_done_callback(_forget_job)
    return job


def _forget_job(job: concurrent.futures.Future) -> None:
    with _POOL_LOCK:
        _JOBS.discard(job)


def running_jobs() -> int:
    """Worker jobs not finished yet (0 once every load has returned, failed or been cancelled)."""
    with _POOL_LOCK:
        return sum(1 for j in _JOBS if not j.done())


@dataclass
class _Outcome:
    volume: CTVolume
    warnings: list[LoadWarning]
    metadata: dict


class _Run:
    """Everything one load attempt shares between the loop and its worker thread."""

    def __init__(
        self, source: Source, options: LoadOptions, reporter: ProgressReporter, metrics: MetricsRecorder
    ) -> None:
        self.source = source
        self.options = options
        self.limits = options.limits
        self.reporter = reporter
        self.metrics = metrics
        self.loop = asyncio.get_running_loop()
        self.stop_event = threading.Event()
        self.skipped: list[str] = []
        self.bridge: ChunkBridge | None = None

    # -- state, counters ---------------------------------------------------------------------------------
    def set_state(self, state: LoadState) -> None:
        self.metrics.enter_state(state.value)
        self.reporter.set_state(state)

    def add_downloaded(self, n: int) -> None:
        self.metrics.bytes_downloaded += n
        if self.reporter.bytes_total is None and self.source.size is not None:
            self.reporter.bytes_total = self.source.size  # Content-Length arrived with the headers
        self.reporter.add_bytes(n)

    def check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Cancelled()

    def skip(self, name: str, reason: str) -> None:
        log.info("skipping %s: %s", name, reason)
        self.skipped.append(name)

    def restart(self) -> None:
        """Forget the failed attempt (its buffers are already dropped) before the next mode starts."""
        self.skipped = []
        self.stop_event = threading.Event()
        self.bridge = None
        for name in ("zip", "files", "datasets", "volume"):
            self.metrics.components.release(name)
        self.reporter.reset_counters()
        self.metrics.first_slice_s = None

    # -- worker threads ------------------------------------------------------------------------------------
    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on a load worker thread; on cancel, stop it cooperatively and wait for it before re-raising.

        The workers are a small shared pool of long-lived threads: fresh threads per load would each get their
        own malloc arena, and the freed member buffers left in those arenas would read as a growing RSS.
        """
        done: asyncio.Future = self.loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def on_done(_: concurrent.futures.Future) -> None:  # on the worker thread (or here, if cancelled)
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                self.loop.call_soon_threadsafe(resolve)

        job = _submit(fn, *args)
        job.add_done_callback(on_done)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            job.cancel()  # not started yet: never runs
            await self.stop_workers(done)
            raise
        return job.result()

    def abort_stream(self) -> None:
        """Make the unzip side stop (worker threads): the bridge raises Cancelled, a file read checks the flag."""
        self.stop_event.set()
        if self.bridge is not None:
            self.bridge.cancel()

    async def stop_workers(self, done: asyncio.Future | None = None) -> None:
        self.stop_event.set()
        if self.bridge is not None:
            self.bridge.cancel()
        if done is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(done)

    # -- streaming -------------------------------------------------------------------------------------------
    def _counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.check_stop()
            self.add_downloaded(len(chunk))
            yield chunk

    async def stream(self, consume: Callable[[Iterable[bytes], Callable[[], int]], T]) -> T:
        """Feed the source's chunks to ``consume(chunks, consumed)`` in a worker; the download waits when full.

        READY is set when the last byte was downloaded (the worker may still be finishing its last members).
        """
        src = self.source
        if isinstance(src, FileSource):
            counter = {"n": 0}

            def file_chunks() -> Iterator[bytes]:
                for chunk in self._counted(src.iter_sync()):
                    counter["n"] += len(chunk)
                    yield chunk
                self.loop.call_soon_threadsafe(self.set_state, LoadState.READY)

            return await self.in_worker(consume, file_chunks(), lambda: counter["n"])

        bridge = self.bridge = ChunkBridge(self.loop, self.options.queue_bytes)
        worker = asyncio.ensure_future(self.in_worker(self._consume_bridge, consume, bridge))
        try:
            async with contextlib.aclosing(src.chunks()) as chunks:
                async for chunk in chunks:
                    self.add_downloaded(len(chunk))
                    await bridge.put(chunk)
                    if worker.done():  # the worker failed: stop downloading, report its error below
                        break
            bridge.close()
            if not worker.done():
                self.set_state(LoadState.READY)
            self.metrics.components.set("zip", bridge.peak_bytes)
            return await worker
        except BaseException:
            bridge.cancel()
            if not worker.done():
                worker.cancel()
            with contextlib.suppress(BaseException):
                await worker
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                exc = worker.exception()
                if not isinstance(exc, Cancelled):
                    raise exc from None
            raise

    def _consume_bridge(self, consume, bridge: ChunkBridge):
        try:
            return consume(iter(bridge), lambda: bridge.consumed)
        finally:
            bridge.cancel()  # unblocks a producer waiting for space if the worker stopped early

    # -- members: a ZIP (stream-unzip / zipfile), or a source that splits its body itself (DICOMweb) -------------
    def stream_members(self, chunks: Iterable[bytes], consumed: Callable[[], int]) -> Iterator[Member]:
        hook = getattr(self.source, "stream_members", None)
        if hook is not None:
            return hook(chunks, self.limits, consumed)
        return iter_stream_members(chunks, self.limits, consumed=consumed)

    def extract_members(self, buffer: bytes, on_member: Callable[[Member], None]) -> list[Member]:
        hook = getattr(self.source, "extract_members", None) or extract_all
        return hook(buffer, self.limits, on_member=on_member, should_stop=self.stop_event.is_set)

    async def announce_count(self) -> int | None:
        """Sources that know their instance count up front (Orthanc) give progress a total in every mode."""
        if self.options.expected_slices is not None:
            self.reporter.slices_total = self.options.expected_slices
        elif getattr(self.source, "knows_instance_count", False):
            self.reporter.slices_total = await self.source.member_count()
        if self.reporter.slices_total is not None:
            self.reporter.emit(force=True)  # the UI learns the total at once
        return self.reporter.slices_total

    # -- shared steps --------------------------------------------------------------------------------------
    def parse_all(self, members: list[Member]) -> list[tuple[Any, np.ndarray]]:
        """read_header + decode_hu of every member (batch and stream-files): the "datasets" component."""
        slices: list[tuple[Any, np.ndarray]] = []
        candidates = sum(1 for m in members if m.data is not None)
        for m in members:
            self.check_stop()
            if m.data is None:
                continue
            try:
                header = dicom.read_header(m.name, m.data)
            except dicom.NotAnImageSlice as exc:
                self.skip(m.name, exc.reason)
                continue
            self.metrics.bytes_dicom += len(m.data)
            if not slices:
                self.limits.check_volume(header.slice_nbytes * candidates)
            arr = dicom.decode_hu(m.data, header)
            slices.append((header, arr))
            self.metrics.components.add("datasets", arr.nbytes)
            self.reporter.files_parsed += 1
            self.reporter.tick()
        if not slices:
            raise DicomError(
                "The archive holds no loadable DICOM image slices"
                + (f" ({len(self.skipped)} files skipped)" if self.skipped else "")
                + ". Check that it is a CT series export."
            )
        return slices

    def assemble(self, slices: list[tuple[Any, np.ndarray]]) -> _Outcome:
        volume, warnings, metadata = assemble_volume(
            slices, max_volume_bytes=self.limits.max_volume_bytes, skipped=list(self.skipped)
        )
        self.metrics.components.set("volume", volume.nbytes)
        self.metrics.first_slice()
        self.reporter.slices_placed = self.reporter.slices_total = int(volume.hu.shape[0])
        return _Outcome(volume, warnings, metadata)

    def note_member(self, member: Member) -> None:
        if member.data is None:
            self.skip(member.name, member.skip_reason or "skipped")
            return
        self.reporter.files_extracted += 1
        self.reporter.tick()


# ---------------------------------------------------------------------------------------------------------
# the three pipelines


async def _batch(run: _Run) -> _Outcome:
    src, comp = run.source, run.metrics.components
    run.set_state(LoadState.DOWNLOADING)
    await run.announce_count()
    if isinstance(src, FolderSource):
        members = await run.in_worker(_read_folder, run, src)
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


async def _download_all(run: _Run) -> bytes:
    src = run.source
    if isinstance(src, FileSource):

        def read() -> bytes:
            data = src.read_all()
            run.add_downloaded(len(data))
            return data

        data = await run.in_worker(read)
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


def _read_folder(run: _Run, src: FolderSource) -> list[Member]:
    members = []
    for name, data in src.iter_members():
        run.check_stop()
        run.add_downloaded(len(data))
        reason = dicom.skip_reason_for_name(name)
        m = Member(name, None if reason else data, reason)
        run.note_member(m)
        if m.data is not None:
            run.metrics.components.add("files", len(data))
        members.append(m)
    return members


async def _stream_files(run: _Run) -> _Outcome:
    comp = run.metrics.components
    run.set_state(LoadState.DOWNLOADING)
    await run.announce_count()
    collected: list[Member] = []

    def keep(m: Member) -> None:
        run.note_member(m)
        if m.data is not None:
            collected.append(m)
            comp.add("files", len(m.data))

    if isinstance(run.source, FolderSource):
        await run.in_worker(lambda: [keep(m) for m in _iter_folder(run)])
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


def _iter_folder(run: _Run) -> Iterator[Member]:
    src = run.source
    assert isinstance(src, FolderSource)
    for name, data in src.iter_members():
        run.check_stop()
        run.add_downloaded(len(data))
        reason = dicom.skip_reason_for_name(name)
        yield Member(name, None if reason else data, reason)


async def _stream_dicom(run: _Run) -> _Outcome:
    opts, comp, reporter = run.options, run.metrics.components, run.reporter
    run.set_state(LoadState.DOWNLOADING)
    capacity = await run.announce_count()
    if capacity is None and opts.probe_central_directory:
        capacity = await run.source.member_count()
        log.debug("the source counts %s members", capacity)
        if capacity is not None:
            reporter.slices_total = capacity
            reporter.emit(force=True)
    reporter.slices_total = capacity
    buffer = SliceBuffer(capacity, run.limits.max_volume_bytes)

    def held(members: Iterable[Member]) -> Iterator[Member]:
        """Count member bytes as "files" from the moment they are unzipped until they are placed."""
        for m in members:
            if m.data is not None:
                comp.add("files", len(m.data))
            yield m

    def place_all(members: Iterable[Member]) -> None:
        for m in members:
            run.check_stop()
            run.note_member(m)
            if m.data is None:
                continue
            try:
                try:
                    header = dicom.read_header(m.name, m.data)
                except dicom.NotAnImageSlice as exc:
                    run.skip(m.name, exc.reason)
                    continue
                run.metrics.bytes_dicom += len(m.data)
                buffer.place(m.name, header, m.data)
            finally:
                comp.add("files", -len(m.data))
            run.metrics.first_slice()
            reporter.files_parsed += 1
            comp.set("volume", buffer.nbytes)
            reporter.slices_placed_changed(buffer, buffer.placed)

    def finish() -> _Outcome:
        volume, warnings, metadata = buffer.finish(skipped=list(run.skipped))
        comp.set("volume", volume.nbytes)
        reporter.slices_placed = reporter.slices_total = int(volume.hu.shape[0])
        return _Outcome(volume, warnings, metadata)

    try:
        if isinstance(run.source, FolderSource):
            await run.in_worker(place_all, held(_iter_folder(run)))
            run.set_state(LoadState.READY)
        else:

            def unzip_and_place(chunks: Iterable[bytes], consumed: Callable[[], int]) -> None:
                # inflate on one thread, parse + place on this one: zlib and numpy release the GIL
                members: Iterable[Member] = held(run.stream_members(chunks, consumed))
                if opts.prefetch_members > 0:
                    members = Prefetch(members, opts.prefetch_members, _submit, run.abort_stream)
                place_all(members)

            await run.stream(unzip_and_place)
        reporter.slices_placed_changed(buffer, buffer.placed, force=True)
        run.set_state(LoadState.DICOM_LOADING)
        if buffer.placed == 0:
            raise DicomError(
                "The archive holds no loadable DICOM image slices"
                + (f" ({len(run.skipped)} files skipped)" if run.skipped else "")
                + ". Check that it is a CT series export."
            )
        return await run.in_worker(finish)
    except BaseException:
        buffer.close()  # cancel, error or fallback: drop the partial volume now
        raise


_PIPELINES = {LoadMode.BATCH: _batch, LoadMode.STREAM_FILES: _stream_files, LoadMode.STREAM_DICOM: _stream_dicom}


# ---------------------------------------------------------------------------------------------------------


async def load(
    source: str | os.PathLike,
    mode: LoadMode | str,
    *,
    options: LoadOptions | None = None,
    observer: LoadObserver | None = None,
) -> LoadResult:
    """Load a CT from ``source`` (http(s) URL, .zip file or folder) in ``mode``; see the module docstring.

    Raises a WebViewerError subclass (after an ``error`` event) or re-raises CancelledError (after a
    ``cancelled`` event, with the worker joined and every buffer dropped).
    """
    options = options or LoadOptions()
    tune_malloc()
    gc.collect()  # garbage of earlier loads (a dropped volume) must not fall inside this load's RSS window
    loop = asyncio.get_running_loop()
    reporter = ProgressReporter(observer, loop)
    metrics = MetricsRecorder()
    metrics.start()
    reporter.t0 = metrics.t0
    requested: LoadMode | None = None
    src: Source | None = None
    run: _Run | None = None
    outcome: _Outcome | None = None
    try:
        try:
            requested = LoadMode(mode)
        except ValueError:
            raise BadInputError(
                f"Unknown load mode {mode!r}: use one of {', '.join(m.value for m in LoadMode)}."
            ) from None
        src = open_source(
            source,
            SourceOptions(
                connect_timeout_s=options.connect_timeout_s,
                stall_timeout_s=options.stall_timeout_s,
                limits=options.limits,
                auth=options.auth,
                headers=options.headers,
            ),
        )
        run = _Run(src, options, reporter, metrics)
        current, fallback = requested, None
        while True:
            try:
                outcome = await _PIPELINES[current](run)
                break
            except NotStreamableError as exc:
                nxt = getattr(exc, "to_mode", None) or FALLBACK_CHAIN.get(current)
                if not options.fallback or current == LoadMode.BATCH or nxt is None:
                    raise
                nxt = LoadMode(nxt)
                log.warning("%s cannot stream this archive (%s); restarting in %s", current.value, exc, nxt.value)
                fallback = Fallback(requested.value, nxt.value, str(exc))
                run.restart()
                current = nxt
        reporter.slices_placed = int(outcome.volume.hu.shape[0])
        run.set_state(LoadState.FINISHED)
        result_metrics = metrics.finish(outcome.volume.nbytes)
        trim_heap()  # the freed ZIP/member buffers of worker arenas go back to the OS
        name = options.name or _ct_name(outcome.metadata, src)
        result = LoadResult(
            content_id=make_content_id(current),
            mode=current,
            requested_mode=requested,
            name=f"{name} - CT 4-pane ({outcome.volume.hu.shape[0]} slices)",
            volume=outcome.volume,
            metadata=outcome.metadata,
            warnings=list(outcome.warnings),
            skipped_files=list(run.skipped),
            fallback=fallback,
            metrics=result_metrics,
            source=os.fspath(source),
        )
        await asyncio.sleep(0)  # deliver the queued observer calls before the caller resumes
        return result
    except BaseException as exc:
        cancelled = isinstance(exc, (asyncio.CancelledError, Cancelled))
        if run is not None:
            await run.stop_workers()
            run.skipped = []
        state = LoadState.CANCELLED if cancelled else LoadState.ERROR
        metrics.abort()
        metrics.enter_state(state.value)
        reporter.set_state(state)
        # the exception (kept by the caller or by a cancelled Task) must not pin the load's buffers through the
        # locals of the frames it passed through
        _drop_frame_locals(exc)
        run = outcome = None  # noqa: F841
        trim_heap()
        if isinstance(exc, Cancelled):
            raise asyncio.CancelledError() from None
        if cancelled or isinstance(exc, WebViewerError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, MemoryError):
            raise WebViewerError(
                "Out of memory while loading. Unload other contents or raise the memory limit, then retry."
            ) from None
        log.error("unexpected failure while loading %s", source, exc_info=exc)
        raise WebViewerError(f"The load failed unexpectedly: {exc!r}. See the log for details.") from None
    finally:
        if src is not None:
            await src.close()


def _drop_frame_locals(exc: BaseException) -> None:
    """Clear the locals of the finished frames in ``exc``'s traceback and in its cause/context chain."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        todo += [e.__cause__, e.__context__]


def _ct_name(metadata: dict, src: Source) -> str:
    return str(metadata.get("series_description") or src.name or "CT")
