"""One load attempt's shared context (loop side and worker side), and the worker pool it runs blocking work on."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from webviewer.errors import DicomError, LoadCancelledError
from webviewer.loading import dicom
from webviewer.loading.frame_steps import frame_slices
from webviewer.loading.geometry import LoadWarning
from webviewer.loading.members import Divert
from webviewer.loading.metrics import MetricsRecorder
from webviewer.loading.progress import LoadState, ProgressReporter
from webviewer.loading.result import LoadOptions
from webviewer.loading.source import Source
from webviewer.loading.unzip import (
    ChunkBridge,
    Member,
    extract_all,
    iter_stream_members,
    iter_zip_members,
)
from webviewer.loading.volume import CTVolume, assemble_volume
from webviewer.loading.zipdir import ZipEntry, streamable_directory

log = logging.getLogger(__name__)
T = TypeVar("T")
#: PoC2 on the directory path inflates a member this large as it arrives (not in one call), so that a multi-frame
#: member is placed frame by frame while it downloads
LARGE_MEMBER_BYTES = 16 << 20


def no_slices_error(skipped: list[str]) -> DicomError:
    """The error for an archive in which nothing was a loadable image slice."""
    return DicomError(
        "The archive holds no loadable DICOM image slices"
        + (f" ({len(skipped)} files skipped)" if skipped else "")
        + ". Check that it is a CT series export."
    )


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_JOBS: set[concurrent.futures.Future] = set()
#: worker threads shared by all loads: a streaming load holds two (unzip, parse+place) while it runs, and a
#: cancelled load may still be finishing while the next one starts; threads are only created when needed
WORKERS = 32
#: inflate jobs of the directory path run on their own small pool: they never wait on anything, so no number of
#: concurrent loads (each holding two WORKERS threads that wait on them) can starve them
INFLATE_WORKERS = max(2, os.cpu_count() or 2)
_INFLATE_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def submit(fn: Callable[..., T], *args: Any) -> concurrent.futures.Future:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="webviewer-load-worker")
        job = _POOL.submit(fn, *args)
        _JOBS.add(job)
    job.add_done_callback(_forget_job)
    return job


def submit_inflate(fn: Callable[..., T], *args: Any) -> concurrent.futures.Future:
    """Run one inflate job on the inflate pool (see INFLATE_WORKERS)."""
    global _INFLATE_POOL
    with _POOL_LOCK:
        if _INFLATE_POOL is None:
            _INFLATE_POOL = concurrent.futures.ThreadPoolExecutor(INFLATE_WORKERS, thread_name_prefix="webviewer-inflate")
    return _INFLATE_POOL.submit(fn, *args)


def _forget_job(job: concurrent.futures.Future) -> None:
    with _POOL_LOCK:
        _JOBS.discard(job)


def running_jobs() -> int:
    """Worker jobs not finished yet (0 once every load has returned, failed or been cancelled)."""
    with _POOL_LOCK:
        return sum(1 for j in _JOBS if not j.done())


@dataclass
class Outcome:
    volume: CTVolume
    warnings: list[LoadWarning]
    metadata: dict


class LoadRun:
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
            raise LoadCancelledError()

    def skip(self, name: str, reason: str) -> None:
        log.info("skipping %s: %s", name, reason)
        self.skipped.append(name)

    def skip_broken(self, name: str, exc: Exception) -> None:
        """Policy: a broken slice (truncated, undecodable) is skipped and listed, like a non-image member; the
        load fails only if no slice is left. Limits (LimitExceededError) still fail the whole load."""
        log.warning("skipping %s: %s", name, exc)
        self.skipped.append(f"{name} (unreadable)")

    def restart(self) -> None:
        """Forget the failed attempt (its buffers are already dropped) before the next mode starts."""
        self.skipped = []
        self.stop_event = threading.Event()
        self.bridge = None
        for name in ("zip", "files", "datasets", "volume"):
            self.metrics.components.release(name)
        self.reporter.reset_counters()
        self.metrics.first_slice_s = self.metrics.bytes_at_first_slice = None

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

        job = submit(fn, *args)
        job.add_done_callback(on_done)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            job.cancel()  # not started yet: never runs
            await self.stop_workers(done)
            raise
        return job.result()

    def abort_stream(self) -> None:
        """Make the unzip side stop (worker threads): the bridge raises LoadCancelledError, a file read checks the flag."""
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
        local = src.local_chunks()
        if local is not None:
            counter = {"n": 0}

            def file_chunks() -> Iterator[bytes]:
                for chunk in self._counted(local):
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
                if not isinstance(exc, LoadCancelledError):
                    raise exc from None
            raise

    def _consume_bridge(self, consume, bridge: ChunkBridge):
        try:
            return consume(iter(bridge), lambda: bridge.consumed)
        finally:
            bridge.cancel()  # unblocks a producer waiting for space if the worker stopped early

    # -- members: a ZIP (stream-unzip / zipfile), or a source that splits its body itself (DICOMweb) -------------
    def stream_members(
        self, chunks: Iterable[bytes], consumed: Callable[[], int], divert: Divert | None = None
    ) -> Iterator[Member]:
        """The members of the streamed body (on a worker thread): see ``unzip.iter_zip_members``; ``divert``
        streams multi-frame members to a sink (PoC2)."""
        members = self.source.stream_members(chunks, self.limits, consumed)
        if members is not None:
            return members
        if not self.options.probe_central_directory or self.options.inflate_workers < 1:
            log.info("unzipping with stream-unzip, one member after another (the directory was not asked for)")
            return iter_stream_members(chunks, self.limits, consumed=consumed, divert=divert)
        return self._directory_members(chunks, consumed, divert)

    def _directory_members(
        self, chunks: Iterable[bytes], consumed: Callable[[], int], divert: Divert | None = None
    ) -> Iterator[Member]:
        probe = asyncio.run_coroutine_threadsafe(self.source.directory(), self.loop)  # alongside the download
        try:
            it = iter(chunks)
            first = next(it, None)  # the download has answered, so its Content-Length is known
        except BaseException:
            probe.cancel()
            raise
        stream = it if first is None else itertools.chain((first,), it)
        entries = self._streamable_directory(probe)
        if entries is None:
            log.info("unzipping with stream-unzip, one member after another (no usable central directory)")
        else:
            log.info("unzipping by the central directory: %d members, %d inflated at once",
                     len(entries), self.options.inflate_workers)
        yield from iter_zip_members(
            stream, self.limits, consumed=consumed, entries=entries, submit=submit_inflate,
            workers=self.options.inflate_workers, archive_bytes=self.source.size, divert=divert,
            stream_min=LARGE_MEMBER_BYTES,
        )

    def _streamable_directory(self, job: concurrent.futures.Future) -> list[ZipEntry] | None:
        """The directory ``job`` (``source.directory()`` on the loop) gives, if members can be cut by it."""
        try:
            while True:
                try:
                    entries = job.result(timeout=0.05)
                    break
                except concurrent.futures.TimeoutError:
                    self.check_stop()
        except LoadCancelledError:
            job.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - no directory: stream-unzip does the work
            log.debug("no central directory: %r", exc)
            return None
        probed = self.source.probed_size
        if entries is None or (probed is not None and self.source.size is not None and probed != self.source.size):
            return None
        return streamable_directory(entries)

    def extract_members(self, buffer: bytes, on_member: Callable[[Member], None]) -> list[Member]:
        stop = self.stop_event.is_set
        members = self.source.extract_members(buffer, self.limits, on_member=on_member, should_stop=stop)
        if members is not None:
            return members
        return extract_all(buffer, self.limits, on_member=on_member, should_stop=stop)

    async def announce_count(self) -> int | None:
        """Sources that know their instance count up front (Orthanc) give progress a total in every mode."""
        if self.options.expected_slices is not None:
            self.reporter.slices_total = self.options.expected_slices
        elif self.source.knows_instance_count:
            self.reporter.slices_total = await self.source.member_count()
        if self.reporter.slices_total is not None:
            self.reporter.emit(force=True)  # the UI learns the total at once
        return self.reporter.slices_total

    # -- shared steps --------------------------------------------------------------------------------------
    def read_slice_header(self, m: Member) -> dicom.SliceHeader | None:
        """The member's slice header, or None (and the member is recorded as skipped) if it is not an image slice."""
        try:
            header = dicom.read_header(m.name, m.data)
        except dicom.MultiFrameImage:
            raise  # the caller reads its frames (frame_steps)
        except dicom.NotAnImageSlice as exc:
            self.skip(m.name, exc.reason)
            return None
        except DicomError as exc:  # truncated or broken among good ones: skip and warn (see skip_broken)
            self.skip_broken(m.name, exc)
            return None
        self.metrics.bytes_dicom += len(m.data)
        return header

    def parse_all(self, members: list[Member]) -> list[tuple[Any, np.ndarray]]:
        """read_header + decode_hu of every member (batch and stream-files): the "datasets" component."""
        slices: list[tuple[Any, np.ndarray]] = []
        decoded = 0
        candidates = sum(1 for m in members if m.data is not None)
        for m in members:
            self.check_stop()
            if m.data is None:
                continue
            try:
                header = self.read_slice_header(m)
            except dicom.MultiFrameImage:
                slices.extend(frame_slices(self, m))
                continue
            if header is None:
                continue
            if not slices:
                self.limits.check_volume(header.slice_nbytes * candidates)
            try:
                arr = dicom.decode_hu(m.data, header, max_bytes=self.limits.max_volume_bytes - decoded)
            except DicomError as exc:
                self.skip_broken(m.name, exc)
                continue
            decoded += arr.nbytes
            slices.append((header, arr))
            self.metrics.components.add("datasets", arr.nbytes)
            self.reporter.files_parsed += 1
            self.reporter.tick()
        if not slices:
            raise no_slices_error(self.skipped)
        return slices

    def assemble(self, slices: list[tuple[Any, np.ndarray]]) -> Outcome:
        volume, warnings, metadata = assemble_volume(
            slices, max_volume_bytes=self.limits.max_volume_bytes, skipped=list(self.skipped)
        )
        self.metrics.components.set("volume", volume.nbytes)
        self.metrics.first_slice()
        self.reporter.slices_placed = self.reporter.slices_total = int(volume.hu.shape[0])
        return Outcome(volume, warnings, metadata)

    def folder_members(self) -> Iterator[Member]:
        """Members of a local folder source, counted as downloaded; junk names come back as skipped members."""
        for name, data in self.source.iter_members():
            self.check_stop()
            self.add_downloaded(len(data))
            reason = dicom.skip_reason_for_name(name)
            yield Member(name, None if reason else data, reason)

    def note_member(self, member: Member) -> None:
        if member.data is None:
            self.skip(member.name, member.skip_reason or "skipped")
            return
        self.reporter.files_extracted += 1
        self.reporter.tick()
