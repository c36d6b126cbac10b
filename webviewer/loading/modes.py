"""The load entry point: pick the source, run a pipeline, fall back, and report cancel and errors.

The three pipelines are in :mod:`webviewer.loading.pipelines`.

Threading: the download runs on the event loop; all blocking work (unzip, parse, decode, assemble) runs on a small
shared pool of worker threads (:mod:`webviewer.loading.run`); observer calls are marshalled back to the loop by
:class:`~webviewer.loading.progress.ProgressReporter`.

Fallback (stream-dicom -> stream-files -> batch): when a streaming mode cannot stream the archive it raises
NotStreamableError; the load restarts in the next safer mode **from the first byte** (a new HTTP request, or
the file re-read), because the streaming modes keep no copy of what they consumed. The restart is recorded as
``Fallback(from, to, reason)`` and the bytes of both attempts count in ``bytes_downloaded``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback

from webviewer.errors import BadInputError, LoadCancelledError, NotStreamableError, WebViewerError
from webviewer.loading.metrics import MetricsRecorder, trim_heap
from webviewer.loading.pipelines import PIPELINES
from webviewer.loading.progress import LoadObserver, LoadState, ProgressReporter
from webviewer.loading.registry import make_content_id
from webviewer.loading.result import FALLBACK_CHAIN, Fallback, LoadMode, LoadOptions, LoadResult
from webviewer.loading.run import LoadRun, Outcome, running_jobs
from webviewer.loading.source import Source, SourceOptions, open_source

__all__ = ["Fallback", "LoadMode", "LoadOptions", "LoadResult", "load", "running_jobs"]

log = logging.getLogger(__name__)


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
    reporter = ProgressReporter(observer, asyncio.get_running_loop())
    metrics = MetricsRecorder()
    metrics.start()
    reporter.t0 = metrics.t0
    src: Source | None = None
    run: LoadRun | None = None
    try:
        requested = _parse_mode(mode)
        src = open_source(source, _source_options(options))
        run = LoadRun(src, options, reporter, metrics)
        current, outcome, fallback = await _run_with_fallback(run, requested, options)
        reporter.slices_placed = int(outcome.volume.hu.shape[0])
        run.set_state(LoadState.FINISHED)
        result_metrics = metrics.finish(outcome.volume.nbytes)
        trim_heap()  # the freed ZIP/member buffers of worker arenas go back to the OS
        name = options.name or _ct_name(outcome.metadata, src)
        result = LoadResult(
            content_id=make_content_id(current.value),
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
        await _end_failed_load(exc, run, reporter, metrics)
        run = outcome = None  # noqa: F841 - the failed load's buffers must not stay referenced from here
        translated = _translate_error(exc, source)
        if translated is exc:
            raise
        raise translated from None
    finally:
        if src is not None:
            await src.close()


def _parse_mode(mode: LoadMode | str) -> LoadMode:
    try:
        return LoadMode(mode)
    except ValueError:
        raise BadInputError(f"Unknown load mode {mode!r}: use one of {', '.join(m.value for m in LoadMode)}.") from None


def _source_options(options: LoadOptions) -> SourceOptions:
    return SourceOptions(
        connect_timeout_s=options.connect_timeout_s,
        stall_timeout_s=options.stall_timeout_s,
        limits=options.limits,
        auth=options.auth,
        headers=options.headers,
    )


async def _run_with_fallback(
    run: LoadRun, requested: LoadMode, options: LoadOptions
) -> tuple[LoadMode, Outcome, Fallback | None]:
    """Run the pipeline of ``requested``; when it cannot stream, restart from the first byte in a safer mode."""
    current, fallback = requested, None
    while True:
        try:
            return current, await PIPELINES[current](run), fallback
        except NotStreamableError as exc:
            nxt = exc.to_mode or FALLBACK_CHAIN.get(current)
            if not options.fallback or current == LoadMode.BATCH or nxt is None:
                raise
            nxt = LoadMode(nxt)
            log.warning("%s cannot stream this archive (%s); restarting in %s", current.value, exc, nxt.value)
            fallback = Fallback(requested.value, nxt.value, str(exc))
            run.restart()
            current = nxt


async def _end_failed_load(
    exc: BaseException, run: LoadRun | None, reporter: ProgressReporter, metrics: MetricsRecorder
) -> None:
    """Join the workers, report ``cancelled`` or ``error``, and drop every buffer the failed load held."""
    if run is not None:
        await run.stop_workers()
        run.skipped = []
    state = LoadState.CANCELLED if _is_cancel(exc) else LoadState.ERROR
    metrics.abort()
    metrics.enter_state(state.value)
    reporter.set_state(state)
    # the exception (kept by the caller or by a cancelled Task) must not pin the load's buffers through the
    # locals of the frames it passed through
    _drop_frame_locals(exc)
    trim_heap()


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.CancelledError, LoadCancelledError))


def _translate_error(exc: BaseException, source: str | os.PathLike) -> BaseException:
    """What ``load()`` raises for ``exc``: CancelledError for a cancel, WebViewerError for everything else."""
    if isinstance(exc, LoadCancelledError):
        return asyncio.CancelledError()
    if _is_cancel(exc) or isinstance(exc, WebViewerError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, MemoryError):
        return WebViewerError(
            "Out of memory while loading. Unload other contents or raise the memory limit, then retry."
        )
    log.error("unexpected failure while loading %s", source, exc_info=exc)
    return WebViewerError(f"The load failed unexpectedly: {exc!r}. See the log for details.")


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
