"""The composition root: ``WebViewerApp`` wires state, engine, renderer and UI; ``main`` is the `webviewer` CLI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from trame.app import TrameApp, get_server
from trame.decorators import change, controller, life_cycle, trigger

from webviewer.app import i18n, image_delivery, results
from webviewer.app.catalog import CatalogSource, ct_item
from webviewer.app.guard import guard_rpcs
from webviewer.app.load_process import LoadProcess
from webviewer.app.load_thread import LoadThread
from webviewer.app.loader import LoadLogic, steps_for
from webviewer.app.memory import freeze_startup_objects
from webviewer.app.ports import Catalog, LoadFn, Registry, Renderer
from webviewer.app.state import (
    NETWORKS,
    SLICE_PANES,
    ControlsState,
    ProgressState,
    ResultsState,
    ViewState,
    init_state,
)
from webviewer.app.validate import MAX_COMPARE_RUNS, Invalid, StateValidator, as_int
from webviewer.app.views import ViewLogic
from webviewer.argtypes import non_negative_float
from webviewer.errors import WebViewerError
from webviewer.runtime import configure_runtime
from webviewer.units import MB

log = logging.getLogger(__name__)


def _default_renderer() -> Any:
    from webviewer.rendering import FourPaneRenderer

    return FourPaneRenderer(show_labels=False)  # the page draws the orientation letters (translatable, testable)


def _default_registry(content_budget_mb: float | None = None) -> Any:
    from webviewer.loading.budget import DEFAULT_CONTENT_BUDGET_MB, ContentBudget
    from webviewer.loading.registry import ContentRegistry

    return ContentRegistry(ContentBudget.from_mb(content_budget_mb or DEFAULT_CONTENT_BUDGET_MB))


def _budget_mb(text: str) -> float:
    """--content-budget-mb: a positive number of MB."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        import argparse

        raise argparse.ArgumentTypeError(f"give the content budget as a positive number of MB, not {text!r}")
    return value


def _default_load(*args: Any, **kwargs: Any) -> Any:
    from webviewer.loading import load

    return load(*args, **kwargs)


def _default_options(**kwargs: Any) -> Any:
    from webviewer.loading import LoadOptions

    return LoadOptions(**kwargs)


#: where the engine's loads run: "process" (a worker process per session, the volume in shared memory), "thread"
#: (a loop thread of the app process), "loop" (the app's own loop: tests with fakes)
LOAD_IN = ("process", "thread", "loop")
DEFAULT_LOAD_IN = "process"


def _load_runner(load_in: str | None, threaded_load: bool | None, *, injected: bool) -> Any:
    """The load runner for ``--load-in``; an injected ``load_fn`` (tests) runs in-process, on a thread if asked."""
    if load_in is None:
        load_in = ("thread" if threaded_load else "loop") if injected or threaded_load is not None else DEFAULT_LOAD_IN
    if load_in not in LOAD_IN:
        raise ValueError(f"--load-in must be one of {', '.join(LOAD_IN)}, not {load_in!r}")
    if load_in == "process":
        return LoadProcess()  # started when the server is ready (warm before the first Load), else by the first load
    return LoadThread() if load_in == "thread" else None


class WebViewerApp(TrameApp):
    """The PoC tab as a trame app. Every collaborator can be injected (tests pass fakes)."""

    def __init__(self, server: Any = None, *, catalog_source: Catalog, api_catalog: Any = None,
                 renderer: Renderer | None = None, registry: Registry | None = None, load_fn: LoadFn | None = None,
                 options_factory: Callable[..., Any] | None = None,
                 memory_poll_s: float = 1.0, progressive_interval_s: float | None = None,
                 threaded_load: bool | None = None, load_in: str | None = None) -> None:
        super().__init__(server, client_type="vue3")
        self.catalog = catalog_source
        self.api_catalog = api_catalog
        self.memory_poll_s = memory_poll_s
        self.renderer = renderer if renderer is not None else _default_renderer()
        init_state(self.state, ControlsState(), ProgressState(), ViewState(), ResultsState())
        self.views = ViewLogic(self.state, self.renderer)
        self.state.t = i18n.messages("en")
        self.loader = LoadLogic(self.state, self.views, self.catalog,
                                registry if registry is not None else _default_registry(),
                                load_fn or _default_load, options_factory or _default_options,
                                load_thread=_load_runner(load_in, threaded_load, injected=load_fn is not None))
        if progressive_interval_s is not None:  # 0: no progressive display, the panes fill when the load ends
            self.loader.refresh_interval_s = progressive_interval_s
        self._apply_language("en")
        self.state.lang_items = i18n.languages()
        self._memory_task: asyncio.Task | None = None
        self.ui, self.views.views, self.chart = self._build_ui()
        self.state.trame__template_error = self._session_ended_template()
        self.validator = StateValidator(self.state, lambda ct_id: self.catalog.get(ct_id) is not None)
        self.ctrl.on_server_bind.add(self._guard)
        if api_catalog is not None:
            self.ctrl.on_server_bind.add(self._mount_api)
        self.ctrl.on_server_ready.add_task(self._on_ready)

    def _build_ui(self) -> tuple[Any, dict[str, Any], Any]:
        from webviewer.app.ui import build_layout

        return build_layout(self.server, self.ctrl, self.renderer.render_windows)

    @staticmethod
    def _session_ended_template() -> str:
        from webviewer.app.ui import SESSION_ENDED_TEMPLATE

        return SESSION_ENDED_TEMPLATE

    # -- server life cycle ----------------------------------------------------------------------------
    def _guard(self, wslink_server: Any) -> None:
        """The page may not stop the server, and every state value it sends is validated."""
        from webviewer.app.validate import guard_state_updates

        guard_rpcs(wslink_server)
        guard_state_updates(wslink_server, self.validator)

    def _mount_api(self, wslink_server: Any) -> None:
        """Mount the CT API routes on trame's own aiohttp app (same host and port)."""
        from webviewer.api.app import add_api_routes

        add_api_routes(wslink_server.app, self.api_catalog)
        log.info("CT API mounted at /api/cts")

    async def _on_ready(self, **_: Any) -> None:
        image_delivery.tune(getattr(self.server, "protocol", None))
        if self.api_catalog is not None and not self.catalog.base_url:
            host = self.server.cli.parse_known_args()[0].host if self.server.cli else "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "localhost", "", None) else host
            self.catalog.set_base_url(f"http://{host}:{self.server.port}")
        await self.refresh_catalog()
        if isinstance(self.loader.load_thread, LoadProcess):
            self.loader.load_thread.start()  # warm: the worker imports the engine while the page connects
        self.loader.contents.account.start()  # the idle baseline the budget's accounting starts from
        self.loader.refresh_contents()
        if self.memory_poll_s > 0:
            self._memory_task = asyncio.ensure_future(self._poll_memory())

    async def refresh_catalog(self) -> None:
        """Read the catalog and fill the CT picker; the first CT is selected by default."""
        try:
            await self.catalog.refresh()
        except Exception as exc:  # keep the app usable: show why the list is empty
            expected = isinstance(exc, (WebViewerError, aiohttp.ClientError, OSError))
            log.log(logging.WARNING if expected else logging.ERROR, "could not read the CT catalog: %s", exc,
                    exc_info=not expected)
            with self.state:
                self.state.error_message = f"Could not read the CT catalog: {exc}"
            return
        with self.state:
            self.state.ct_items = [ct_item(e, self.state.t) for e in self.catalog.entries()]
            if self.state.ct_id is None and self.state.ct_items:
                self.state.ct_id = self.state.ct_items[0]["value"]

    async def _poll_memory(self) -> None:
        while True:
            await asyncio.sleep(self.memory_poll_s)
            if self.loader.running:
                continue  # the load's progress events carry the memory meanwhile
            rss = self.loader.session_rss()
            if abs(rss / MB - self.state.memory_mb) >= 0.5:
                with self.state:
                    self.state.memory_mb = round(rss / MB, 1)
                    self.state.memory_text = i18n.fmt(self.state.t, "memory", x=f"{rss / MB:.0f}")
                self.loader.refresh_contents()  # the budget line beside it

    @life_cycle.server_exited
    def _server_exited(self, **_: Any) -> None:
        """Session end: cancel a running load and stop its thread."""
        self.loader.close()

    @life_cycle.client_connected
    def _client_connected(self, **_: Any) -> None:
        with self.state:
            self.state.app_ready = True
        self.views.push()

    # -- triggers (arguments passed explicitly by the page, so a stale state sync cannot race them) ---
    # Triggers return None: a returned awaitable would make trame hold the RPC (and the client's next
    # messages, such as Cancel) until the whole load finished. The task is ``self.loader.task``.
    # Extra arguments a page may add are ignored (a TypeError would be raised inside wslink's handler).
    @controller.set("load")
    def load(self, ct_id: str | None = None, mode: str | None = None, network: str | None = None,
             *_: Any, **__: Any) -> None:
        self.loader.start(ct_id, mode or self.state.mode, network or self.state.network)

    @controller.set("cancel")
    def cancel(self, *_: Any, **__: Any) -> None:
        self.loader.cancel()

    @controller.set("compare")
    def compare(self, ct_id: str | None = None, network: str | None = None, runs: Any = 5,
                *_: Any, **__: Any) -> None:
        try:
            n = as_int(runs, 1, MAX_COMPARE_RUNS)
        except Invalid as exc:
            log.warning("compare refused: runs=%.40r %s", runs, exc)
            with self.state:
                self.state.notice = i18n.fmt(self.state.t, "bad_runs", n=MAX_COMPARE_RUNS)
            return
        self.loader.start_compare(ct_id, network or self.state.network, n)

    @controller.set("unload")
    def unload(self, content_id: Any = None, *_: Any, **__: Any) -> None:
        if isinstance(content_id, str):
            self.loader.unload(content_id)

    @controller.set("clear_results")
    def clear_results(self, *_: Any, **__: Any) -> None:
        with self.state:
            self.state.runs = []
            self.state.summary = []

    @trigger("export_csv")
    def export_csv(self, *_: Any, **__: Any) -> str:
        return results.to_csv(self.state.runs)

    @trigger("export_json")
    def export_json(self, *_: Any, **__: Any) -> str:
        return results.to_json(self.state.runs)

    # -- state changes --------------------------------------------------------------------------------
    @change("lang")
    def _on_lang(self, lang: str, **_: Any) -> None:
        self._apply_language(lang)

    def _apply_language(self, lang: str) -> None:
        t = i18n.messages(lang)
        self.state.t = t
        self.state.network_items = [{"title": t[f"network.{n}"], "value": n} for n in NETWORKS]
        self.state.ct_items = [ct_item(e, t) for e in self.catalog.entries()]
        if hasattr(self, "loader"):
            self.loader.retranslate()
            rss = self.state.memory_mb
            self.state.memory_text = i18n.fmt(t, "memory", x=f"{rss:.0f}") if rss else ""
        if hasattr(self, "chart"):
            self._update_chart()

    @change("mode")
    def _on_mode(self, mode: str, **_: Any) -> None:
        if not self.loader.running:
            self.state.steps, _ = steps_for(mode, self.state.t)
            self.state.steps_mode = mode
            self.state.step_value = 0

    @change("runs")
    def _on_runs(self, **_: Any) -> None:
        self._update_chart()

    def _update_chart(self) -> None:
        if self.state.runs:
            self.chart.update(results.chart(self.state.runs, self.state.t))

    @change("wl_preset")
    def _on_wl(self, wl_preset: str, **_: Any) -> None:
        if self.state.has_volume:
            self.views.set_window_preset(wl_preset)

    @change("vr_preset")
    def _on_vr(self, vr_preset: str, **_: Any) -> None:
        if self.state.has_volume:
            self.views.set_vr_preset(vr_preset)

    @change(*(f"slice_{p}" for p in SLICE_PANES))
    def _on_slice(self, **kwargs: Any) -> None:
        if not self.state.has_volume:
            return
        for pane in SLICE_PANES:
            index, _ = self.renderer.slice_info(pane)
            wanted = int(kwargs.get(f"slice_{pane}", index))
            if wanted != index:
                self.views.set_slice(pane, wanted)


# ---------------------------------------------------------------------------------------------------
def _build_catalog(args: Any) -> tuple[CatalogSource, Any]:
    """(catalog source, catalog to mount in process or None when --api points elsewhere)."""
    if args.api:
        return CatalogSource(api_url=args.api), None
    from webviewer.api.catalog import Catalog

    names = [s.strip() for s in (args.samples or "").split(",") if s.strip()] or None
    if args.data_dir and not args.samples:
        catalog = Catalog.from_data_dir(Path(args.data_dir))
    else:
        catalog = Catalog.from_samples(names=names)
        if args.data_dir:
            catalog = catalog.merged(Catalog.from_data_dir(Path(args.data_dir)))
    return CatalogSource(catalog=catalog), catalog


def add_arguments(cli: Any) -> None:
    """The app's options on trame's parser; the host defaults to 127.0.0.1 and the idle timeout is off."""
    cli.add_argument("--api", default=None, help="use another CT API at this base URL")
    cli.add_argument("--data-dir", default=None, help="serve the CTs (ZIPs / DICOM folders) in DIR")
    cli.add_argument("--samples", default=None,
                     help="comma-separated samples to generate and serve: tiny,medium,seed (default all)")
    from webviewer.orthanc.catalog import add_orthanc_arguments

    add_orthanc_arguments(cli)
    cli.add_argument("--content-budget-mb", type=_budget_mb, default=None,
                     help="memory for one session's loaded contents (volumes, render copies), in MB; "
                          "the oldest contents not on screen are unloaded to stay within it "
                          "(default: webviewer.loading.budget.DEFAULT_CONTENT_BUDGET_MB)")
    cli.add_argument("--load-in", choices=LOAD_IN, default=DEFAULT_LOAD_IN,
                     help="where loads run: a worker process per session (default; the volume is shared memory), "
                          "a thread of the app process, or the app's own event loop")
    cli.add_argument("--progressive-interval-s", type=non_negative_float, default=None,
                     help="seconds between two progressive pane refreshes while PoC2 loads (0: no progressive display)")
    # trame's own --host and --timeout keep their help texts; the defaults here are 127.0.0.1 (this machine
    # only) and no idle exit: wslink exits after 300 s without a browser (taking the CT API with it), a
    # deployment that reaps idle session processes passes --timeout N. Both are logged at start-up.
    cli.set_defaults(host="127.0.0.1", timeout=0)


def check_server_numbers(cli: Any, args: Any) -> None:
    """trame's own --port and --timeout (wslink declares them type=int): exit 2 on a port outside 0-65535 or a
    negative timeout, as argparse does for the app's options."""
    if not 0 <= args.port <= 65535:
        cli.error(f"argument --port: a TCP port is 0 to 65535, got '{args.port}'")
    if args.timeout < 0:
        cli.error(f"argument --timeout: must be 0 or above, got '{args.timeout}'")


def describe_timeout(timeout: Any) -> str:
    """The start-up line about idle exit."""
    if not timeout:
        return "idle timeout off: the server runs until stopped (Ctrl+C); --timeout N exits after N s idle"
    return f"idle timeout {timeout} s: the server exits after {timeout} s without a connected browser"


def main(server: Any = None, **kwargs: Any) -> None:
    """`webviewer`: the app with the CT API mounted in the same server (port 8080, 127.0.0.1 by default)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("webviewer").setLevel(logging.INFO)
    configure_runtime()  # malloc tuning, VTK's EGL offscreen window: before any render window exists
    server = get_server(server, client_type="vue3")
    add_arguments(server.cli)
    from webviewer.orthanc.catalog import orthanc_catalog_from_args
    from webviewer.orthanc.sources import register_with_engine

    register_with_engine()  # the engine opens Orthanc archive and DICOMweb URLs with the Orthanc sources
    args, _ = server.cli.parse_known_args()
    check_server_numbers(server.cli, args)
    if args.orthanc and args.orthanc_only:  # Orthanc's series only: no demo CTs, no API
        source, api_catalog = orthanc_catalog_from_args(args, networks=NETWORKS), None
    else:  # --orthanc: Orthanc's series beside the demo CTs
        source, api_catalog = _build_catalog(args)
        source = orthanc_catalog_from_args(args, source, networks=NETWORKS)
    app = WebViewerApp(server, catalog_source=source, api_catalog=api_catalog,
                       registry=_default_registry(args.content_budget_mb),
                       progressive_interval_s=args.progressive_interval_s, load_in=args.load_in)
    log.info(describe_timeout(kwargs.get("timeout", getattr(args, "timeout", 0))))
    freeze_startup_objects()  # the collections before each load's baseline then skip the start-up heap
    app.server.start(**kwargs)

if __name__ == "__main__":
    main()
