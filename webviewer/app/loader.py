"""Runs loads as asyncio tasks and turns the engine's observer calls into state (the loading panel)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from webviewer.app import results
from webviewer.app.contents import ContentsLogic
from webviewer.app.i18n import fmt
from webviewer.app.load_observer import SessionObserver
from webviewer.app.load_process import LoadProcess, session_rss
from webviewer.app.load_thread import LoadThread
from webviewer.app.memory import release_memory, render_copy_bytes
from webviewer.app.pacing import LatestEvery
from webviewer.app.ports import Catalog, LoadFn, Registry
from webviewer.app.state import END_STATES, MODE_STEPS, MODES
from webviewer.app.views import ProgressiveRefresher, ViewLogic
from webviewer.errors import WebViewerError
from webviewer.units import MB

log = logging.getLogger(__name__)


def steps_for(mode: str, t: dict[str, str], current: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Stepper items for a mode and the 1-based index of the current state (0 before the first)."""
    names = MODE_STEPS.get(mode, MODE_STEPS["batch"])
    items = [{"title": t.get(f"state.{s}", s), "value": i + 1, "state": s} for i, s in enumerate(names)]
    index = names.index(current) + 1 if current in names else 0
    return items, index


class LoadLogic:
    """One load (or one compare series) at a time: a second Load while one runs is refused."""

    def __init__(self, state: Any, views: ViewLogic, catalog: Catalog, registry: Registry, load_fn: LoadFn,
                 options_factory: Callable[..., Any], load_thread: LoadThread | LoadProcess | None = None) -> None:
        self.state = state
        self.views = views
        self.catalog = catalog
        self.registry = registry
        self.load_fn = load_fn
        self.options_factory = options_factory
        self.contents = ContentsLogic(state, registry)
        #: None: the load shares the app's loop (tests with fakes); a LoadThread: the engine runs on a loop thread;
        #: a LoadProcess: in the session's worker process (its memory counts in the session's)
        self.load_thread = load_thread
        self.contents.account.measure = self.session_rss
        self.task: asyncio.Task | None = None
        self.current_volume: Any = None
        self.current_content_id: str | None = None
        self._mode = "batch"
        self._run_counter = 0
        self._last_state: str | None = None
        self._last_event: Any = None
        self._final_elapsed_s: float | None = None
        #: the loading panel shows at most one progress event per 0.25 s (a new state at once, the newest figures
        #: after the interval): every update is a state push and a re-render in the browser, whose CPU the load
        #: needs when both share the machine
        self.progress = LatestEvery(self.show_progress, interval_s=0.25)
        self._download_s: float | None = None  # seconds the download took (known once the state moved on)
        views.busy = lambda: self.running
        #: at most one progressive pane refresh per interval (~2/s)
        self.refresh_interval_s = 0.5

    @property
    def t(self) -> dict[str, str]:
        return self.state.t

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    # -- triggers -------------------------------------------------------------------------------------
    def start(self, ct_id: str | None, mode: str, network: str) -> asyncio.Task | None:
        """Start one load; returns its task, or None when refused (busy or bad arguments)."""
        return self._start(self._load_once(ct_id, mode, network, register=True))

    def start_compare(self, ct_id: str | None, network: str, runs: int | str) -> asyncio.Task | None:
        """Run every mode ``runs`` times, one after the other; each finished run adds a results row."""
        try:
            n = max(1, min(50, int(runs)))
        except (TypeError, ValueError):
            n = 5
        return self._start(self._compare(ct_id, network, n))

    def cancel(self) -> None:
        """Cancel the running load (or compare series); the engine emits `cancelled` and frees its buffers."""
        log.info("cancel requested (running=%s)", self.running)
        if self.running:
            self.task.cancel()

    def _start(self, coro: Awaitable[Any]) -> asyncio.Task | None:
        if self.running:
            coro.close()
            with self.state:
                self.state.notice = self.t["busy"]
            return None
        with self.state:
            self.state.busy = True
            self.state.notice = ""
            self.state.load_serial += 1
        self.task = asyncio.ensure_future(coro)
        self.task.add_done_callback(self._done)
        return self.task

    def _done(self, task: asyncio.Task) -> None:
        with self.state:
            self.state.busy = False
            self.state.compare_text = ""
        if not task.cancelled() and task.exception() is not None:
            log.error("load task failed", exc_info=task.exception())

    async def _compare(self, ct_id: str | None, network: str, n: int) -> None:
        total = n * len(MODES)
        i = 0
        for _ in range(n):
            for mode in MODES:
                i += 1
                with self.state:
                    self.state.compare_text = fmt(self.t, "compare_running", i=i, n=total)
                ok = await self._load_once(ct_id, mode, network, register=(i == total))
                if not ok:
                    return
        with self.state:  # say what the runs kept: only the content on screen
            self.state.notice = fmt(self.t, "compare_kept", id=self.current_content_id or "-", n=total - 1)

    # -- one load -------------------------------------------------------------------------------------
    async def _load_once(self, ct_id: str | None, mode: str, network: str, *, register: bool) -> bool:
        entry = self.catalog.get(ct_id)
        if mode not in MODES or entry is None:
            self._fail(f"Pick a CT and a load mode first (got CT {ct_id!r}, mode {mode!r}).")
            return False
        try:
            url = self.catalog.archive_url(ct_id, network)
        except (KeyError, ValueError, RuntimeError) as exc:
            self._fail(str(exc))
            return False
        kwargs = dict(self.catalog.load_options(ct_id))  # Orthanc: server-side credentials
        kwargs.update(self.contents.limits_kwargs(kwargs))  # the budget as the engine's volume limit
        options = self.options_factory(expected_slices=entry.get("slices"), name=entry.get("name"), **kwargs)
        refusal = await self.contents.admit(entry, url, mode, options, self.current_volume)
        if refusal is not None:  # before _begin: the state, the views and the contents stay as they were
            self._fail(refusal)
            return False
        held = self._clear_for_baseline()
        self._begin(mode)
        if network != "unlimited" and not self.catalog.applies_network(ct_id):
            network = "unlimited"  # recorded as what it was: no throttle
            with self.state:
                self.state.notice = self.t["network_not_applied"]
        refresher = ProgressiveRefresher(self.views, interval_s=self.refresh_interval_s)
        refresher.start()
        try:
            observer = SessionObserver(self, refresher)
            if self.load_thread is not None:
                result = await self.load_thread.run(self.load_fn, url, mode, options=options, observer=observer)
            else:
                result = await self.load_fn(url, mode, options=options, observer=observer)
            app_bytes = observer.sample_app() if isinstance(self.load_thread, LoadProcess) else 0
        except asyncio.CancelledError:
            await refresher.stop()
            self._restore_views()
            self._set_terminal("cancelled")
            raise
        except WebViewerError as exc:
            await refresher.stop()
            self._restore_views()
            self._fail(self.contents.budget_message(exc))
            return False
        except Exception as exc:  # the app stays usable whatever the engine raises
            log.exception("load failed")
            await refresher.stop()
            self._restore_views()
            self._fail(f"{type(exc).__name__}: {exc}")
            return False
        await refresher.stop()
        self._finish(result, entry, network, refresher, register=register, held_bytes=held, app_bytes=app_bytes)
        return True

    def _clear_for_baseline(self) -> int:
        """Before a load: take the shown volume off the panes (its render copies, and the volume itself when no
        content holds it) and hand the memory back, so the load's baseline holds nothing it will free. The
        emptied panes are pushed at the loop's next turn, once the load request has left: off the first image's
        path, and as small frames (the load's progressive frame size, which the refresher's stop() ends).

        Returns the bytes of the volumes still held (the registry's contents): constant during the load."""
        if self.current_volume is not None:
            self.views.set_progressive_frames(True)
            self.views.show_volume(None, push=False)
            asyncio.get_running_loop().call_soon(self.views.push)
            if not self.contents.holds(self.current_volume):
                self.current_volume = None  # a Compare modes run: nothing keeps it
            release_memory()
        return self.contents.held_bytes()

    def _begin(self, mode: str) -> None:
        self._mode = mode
        self._last_state = None
        self._last_event = None
        self._download_s = None
        self.progress.cancel()
        self._final_elapsed_s = None
        steps, _ = steps_for(mode, self.t)
        with self.state:
            self.state.steps = steps
            self.state.steps_mode = mode
            self.state.step_value = 0
            self.state.load_state = "downloading"
            self.state.load_state_label = self.t["state.downloading"]
            self.state.error_message = ""
            self.state.fallback_text = ""
            self.state.warnings_text = ""
            self.state.percent = 0
            self.state.files_text = self.state.bytes_text = self.state.rate_text = ""
            self.state.elapsed_text = self.state.slices_text = ""
            self.state.first_slice_placed_ms = 0
            self.state.first_slice_pushed_ms = 0

    def retranslate(self) -> None:
        """The language changed: format the last progress figures again."""
        if self._last_event is not None:
            self.show_progress(self._last_event)
        with self.state:
            self.state.steps, _ = steps_for(self.state.steps_mode or self.state.mode, self.t)
            self.state.load_state_label = self.t.get(f"state.{self.state.load_state}", "")
            if self._final_elapsed_s is not None:
                self.state.elapsed_text = fmt(self.t, "elapsed", x=f"{self._final_elapsed_s:.2f}")
        self.refresh_contents()

    def on_progress(self, event: Any) -> None:
        """A progress event from the engine (≤ ~10/s): shown at once if its state is new, else paced."""
        self._last_event = event
        self.progress.offer(event, urgent=getattr(event.state, "value", event.state) != self._last_state)

    def show_progress(self, event: Any) -> None:
        """Progress event → loading panel (called on the loop thread)."""
        with self.state:
            self._apply_progress(event)

    def _apply_progress(self, event: Any) -> None:
        self._last_event = event
        s = getattr(event.state, "value", event.state)
        t = self.t
        total = event.bytes_total
        files_total = event.slices_total or "?"
        files_done = max(event.files_parsed, event.slices_placed)
        if s != self._last_state:
            self._last_state = s
            self.state.load_state = s
            self.state.load_state_label = t.get(f"state.{s}", s)
            if s not in ("error", "cancelled"):
                steps, index = steps_for(self._mode, t, s)
                if not index and s in MODE_STEPS["batch"]:  # a fallback to Batch: show Batch's steps
                    self._mode = "batch"
                    steps, index = steps_for("batch", t, s)
                    self.state.steps = steps
                    self.state.steps_mode = "batch"
                if index:
                    self.state.step_value = index
        if total:
            self.state.percent = round(100.0 * event.bytes_downloaded / total, 1)
            self.state.bytes_text = fmt(t, "mb_of", x=f"{event.bytes_downloaded / MB:.1f}", y=f"{total / MB:.1f}")
        else:
            self.state.bytes_text = fmt(t, "mb_of_unknown", x=f"{event.bytes_downloaded / MB:.1f}")
        self.state.files_text = fmt(t, "files_of", x=files_done, y=files_total)
        self.state.slices_text = fmt(t, "slices_placed", x=event.slices_placed, y=files_total)
        rate = self._rate(s, event)
        self.state.rate_text = fmt(t, "mb_per_s", x=f"{rate / MB:.1f}")
        self.state.elapsed_text = fmt(t, "elapsed", x=f"{event.elapsed_s:.1f}")
        self.state.memory_mb = round(event.rss_bytes / MB, 1)
        self.state.memory_text = fmt(t, "memory", x=f"{event.rss_bytes / MB:.0f}")

    def _rate(self, s: str, event: Any) -> float:
        """While downloading, the engine's recent rate; once the bytes are in, the download's mean rate (the
        recent one then covers the parsing after the last chunk, not the network)."""
        if s == "downloading":
            self._download_s = None
            rate = event.rate_bytes_per_s
            if not rate and event.elapsed_s > 0:  # between chunks: the mean rate
                rate = event.bytes_downloaded / event.elapsed_s
            return rate
        if self._download_s is None:
            self._download_s = event.elapsed_s
        return event.bytes_downloaded / self._download_s if self._download_s > 0 else 0.0

    def _set_terminal(self, s: str, *, flush: bool = True) -> None:
        due = self.progress.take_due()
        if due is not None:  # the newest figures, with the end state
            self._apply_progress(due)
        self.state.load_state = s
        self.state.load_state_label = self.t.get(f"state.{s}", s)
        if s == "finished":
            self.state.step_value = len(self.state.steps)
        if flush:
            self.state.flush()

    def _fail(self, message: str) -> None:
        self._set_terminal("error")
        with self.state:
            self.state.error_message = message

    def _restore_views(self) -> None:
        """After a cancel or an error, show the last finished volume again (or nothing)."""
        self.views.show_volume(self.current_volume, draft_3d=True)

    def _finish(self, result: Any, entry: dict[str, Any], network: str, refresher: ProgressiveRefresher,
                *, register: bool, held_bytes: int = 0, app_bytes: int = 0) -> None:
        self.current_volume = result.volume
        self.views.show_volume(result.volume, reset=True, draft_3d=True)
        first = refresher.first_slice_s
        if first is None:  # no progressive preview (Batch, PoC1): the first slice reached the views now
            first = time.perf_counter() - refresher.t0
        if register and self.registry is not None:
            content = self.registry.add(result)
            self.current_content_id = getattr(content, "id", result.content_id)
        self._run_counter += 1
        row = results.run_row(result, run=self._run_counter, ct_name=entry.get("name", entry["id"]),
                              network=network, first_slice_s=first, held_bytes=held_bytes,
                              render_bytes=render_copy_bytes(result.volume), app_bytes=app_bytes)
        row["progressive"] = {"refreshes": refresher.refreshes, "refreshes_3d": refresher.refreshes_3d,
                              "render_s": round(refresher.render_s, 3)}
        rows = [*self.state.runs, row]
        self._final_elapsed_s = float(result.metrics.total_s)
        with self.state:  # one flush: "finished" arrives together with its row and timings
            self._set_terminal("finished", flush=False)
            self.state.elapsed_text = fmt(self.t, "elapsed", x=f"{self._final_elapsed_s:.2f}")
            self.state.runs = rows
            self.state.summary = results.summary(rows)
            fb = result.fallback
            if fb is not None:
                self.state.fallback_text = fmt(self.t, "fallback", **{
                    "from": getattr(fb.from_mode, "value", fb.from_mode),
                    "to": getattr(fb.to_mode, "value", fb.to_mode), "reason": fb.reason})
            self.state.warnings_text = " · ".join(f"{w.code}: {w.message}" for w in result.warnings)
            self.state.first_slice_placed_ms = refresher.first_placed_ms or 0
            self.state.first_slice_pushed_ms = refresher.first_pushed_ms or 0
        self.contents.after_finish(self.current_volume, registered=register and self.registry is not None)

    def close(self) -> None:
        """Session end: cancel a running load and stop the load thread."""
        if self.running:
            self.task.cancel()
        if self.load_thread is not None:
            self.load_thread.close()

    def session_rss(self) -> int:
        """The session's resident memory: this process, and its load worker if it has one."""
        return session_rss(self.load_thread if isinstance(self.load_thread, LoadProcess) else None)

    def refresh_contents(self) -> None:
        """The contents list, what the budget unloaded and the memory line."""
        self.contents.refresh(self.current_volume)

    def unload(self, content_id: str) -> None:
        """Drop a content from the registry; if the views show it, clear them so its memory is freed."""
        if self.registry is None:
            return
        content = self.registry.get(content_id)
        if content is None:
            return
        if content.volume is self.current_volume:
            self.current_volume = None
            self.views.show_volume(None)
        del content
        self.contents.unload(content_id)
        self.refresh_contents()


__all__ = ["END_STATES", "LoadLogic", "steps_for"]
