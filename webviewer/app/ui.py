"""The page (Vuetify 3): controls and loading panel on the left, four panes, results and contents below.

Every control carries a ``data-testid`` through ``raw_attrs`` (trame drops unknown keyword arguments).
Labels come from ``t``, the current language's message table.
"""

from __future__ import annotations

from typing import Any

from trame.ui.vuetify3 import VAppLayout
from trame.widgets import client, html, plotly
from trame.widgets import vtk as vtk_widgets
from trame.widgets import vuetify3 as v3

from webviewer.app.image_delivery import INTERACTIVE_QUALITY, STILL_QUALITY, VIEW_REF
from webviewer.app.state import MODES, VR_PRESETS, WL_PRESETS

#: No CSS transitions or animations. During a load the progress bar, the sliders and the buttons change ~10
#: times a second, and their transitions kept the browser repainting: with the browser on the same 2 CPUs,
#: PoC2 took 1.19 s without them against 1.31-1.46 s with them (seed CT, 16 alternating loads, medians).
NO_MOTION = """
*, *::before, *::after { transition: none !important; animation: none !important; }
"""

CSS = """
.wv-panes { display: grid; grid-template-columns: 1fr 1fr; grid-template-rows: 1fr 1fr; gap: 4px;
            height: calc(100vh - 96px); min-height: 520px; }
.wv-pane { position: relative; background: #000; border-radius: 4px; overflow: hidden; display: flex;
           flex-direction: column; }
.wv-pane .wv-view { position: relative; flex: 1 1 auto; min-height: 0; }
.wv-title { position: absolute; top: 4px; left: 8px; z-index: 2; color: #ffd54f; font-size: 13px;
            font-weight: 600; pointer-events: none; }
.wv-orient { position: absolute; z-index: 2; color: #81d4fa; font-weight: 700; font-size: 14px;
             pointer-events: none; }
.wv-orient.top { top: 4px; left: 50%; } .wv-orient.bottom { bottom: 4px; left: 50%; }
.wv-orient.left { left: 6px; top: 50%; } .wv-orient.right { right: 6px; top: 50%; }
.wv-footer { display: flex; align-items: center; gap: 8px; padding: 0 8px; background: #111; color: #ddd;
             font-size: 12px; height: 36px; flex: 0 0 36px; }
.wv-empty { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
            color: #777; z-index: 1; pointer-events: none; }
.wv-mode-btn { height: auto !important; min-height: 52px; justify-content: flex-start; text-transform: none;
               white-space: normal; text-align: left; }
.wv-mode-btn .v-btn__content { white-space: normal; width: 100%; justify-content: flex-start; text-align: left; }
.wv-steps { display: flex; gap: 4px; justify-content: space-between; }
.wv-step { display: flex; flex-direction: column; align-items: center; flex: 1 1 0; color: #9e9e9e;
           font-size: 11px; text-align: center; }
.wv-step.done { color: #1976d2; } .wv-step.current { color: #1976d2; font-weight: 700; }
.wv-step.failed { color: #d32f2f; }
.wv-side { width: 360px; flex: 0 0 360px; height: calc(100vh - 64px); overflow-y: auto; }
""" + NO_MOTION



#: shown by trame's client in place of the page when its WebSocket closes (``trame__template_error``): the
#: session process stopped (idle timeout, crash, demo stopped). Reload goes back to the demo's launcher page.
SESSION_ENDED_TEMPLATE = """
<div data-testid="session-ended" role="alert" style="display: flex; flex-direction: column; align-items: center;
     justify-content: center; min-height: 100vh; gap: 16px; padding: 24px; text-align: center;
     font-family: Roboto, sans-serif; background: #263238; color: #eceff1;">
  <h2 style="margin: 0">{{ t.session_ended_title }}</h2>
  <p style="max-width: 560px; margin: 0">{{ t.session_ended }}</p>
  <a href="./" data-testid="session-reload" style="background: #1976d2; color: #fff; padding: 10px 24px;
     border-radius: 4px; text-decoration: none">{{ t.session_reload }}</a>
</div>
"""


def _tid(name: str) -> list[str]:
    return [f'data-testid="{name}"']


def build_layout(server: Any, ctrl: Any, render_windows: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
    """Build the page; returns (layout, {pane: VtkRemoteView}, chart widget)."""
    views: dict[str, Any] = {}
    with VAppLayout(server, full_height=True) as layout:
        client.Style(CSS)
        _toolbar()
        with v3.VMain(), html.Div(classes="d-flex", style="height: calc(100vh - 64px)"):
            with html.Div(classes="wv-side pa-3 border-e"):
                _controls(ctrl)
                _loading_panel()
            with html.Div(classes="flex-grow-1 pa-2", style="overflow-y: auto; min-width: 0",
                          raw_attrs=_tid("main-scroll")):
                with html.Div(classes="wv-panes"):
                    for pane in ("axial", "3d", "sagittal", "coronal"):
                        views[pane] = _pane(pane, render_windows[pane])
                chart = _results(ctrl)
                _contents(ctrl)
    return layout, views, chart


def _toolbar() -> None:
    with v3.VAppBar(density="compact", color="blue-grey-darken-4"):
        v3.VToolbarTitle("{{ t.app_title }}", raw_attrs=_tid("app-title"))
        html.Span("{{ t.connected }}", v_if="app_ready", classes="text-caption text-green-lighten-2 mr-4",
                  raw_attrs=_tid("app-ready"))
        v3.VSelect(v_model=("lang",), items=("lang_items",), label=("t.language",), density="compact",
                   hide_details=True, variant="outlined", style="max-width: 160px", classes="mr-2",
                   raw_attrs=_tid("lang-select"))


def _controls(ctrl: Any) -> None:
    v3.VSelect(v_model=("ct_id",), items=("ct_items",), label=("t.ct",), density="compact", hide_details=True,
               variant="outlined", classes="mb-3", raw_attrs=_tid("ct-select"))
    html.Div("{{ t.mode }}", classes="text-caption text-medium-emphasis mb-1")
    with v3.VBtnToggle(v_model=("mode",), mandatory=True, color="primary", variant="outlined", divided=True,
                       classes="d-flex flex-column mb-3", style="height: auto; width: 100%",
                       raw_attrs=_tid("mode-toggle")):
        for mode in MODES:
            with v3.VBtn(value=mode, classes="wv-mode-btn py-2", block=True, raw_attrs=_tid(f"mode-{mode}")), \
                    html.Div():
                html.Div(f"{{{{ t['mode.{mode}'] }}}}", classes="font-weight-bold")
                html.Div(f"{{{{ t['mode_desc.{mode}'] }}}}", classes="text-caption",
                         raw_attrs=_tid(f"mode-desc-{mode}"))
    v3.VSelect(v_model=("network",), items=("network_items",), label=("t.network",), density="compact",
               hide_details=True, variant="outlined", classes="mb-3", raw_attrs=_tid("network-select"))
    with html.Div(classes="d-flex ga-2 mb-3"):
        v3.VBtn("{{ t.load }}", color="primary", disabled=("busy || !ct_id",), prepend_icon="mdi-download",
                click=(ctrl.load, "[ct_id, mode, network]"), raw_attrs=_tid("load-button"))
        v3.VBtn("{{ t.cancel }}", color="error", variant="tonal", disabled=("!busy",), prepend_icon="mdi-close",
                click=ctrl.cancel, raw_attrs=_tid("cancel-button"))
    with html.Div(classes="d-flex ga-2 align-center mb-2"):
        v3.VBtn("{{ t.compare }}", variant="tonal", disabled=("busy || !ct_id",), prepend_icon="mdi-chart-bar",
                click=(ctrl.compare, "[ct_id, network, compare_runs]"), raw_attrs=_tid("compare-button"))
        v3.VTextField(v_model_number=("compare_runs",), type="number", min=1, max=50, label=("t.compare_runs",),
                      density="compact", hide_details=True, variant="outlined", style="max-width: 150px",
                      raw_attrs=_tid("compare-runs"))
    html.Div("{{ notice }}", v_if="notice", classes="text-caption text-warning mb-2", raw_attrs=_tid("notice"))


def _loading_panel() -> None:
    with v3.VCard(variant="outlined", classes="mb-3", raw_attrs=_tid("loading-panel")):
        with v3.VCardTitle(classes="d-flex align-center text-subtitle-1"):
            html.Span("{{ t.state }}:", classes="mr-2")
            html.Span("{{ load_state }}", classes="font-weight-bold", raw_attrs=_tid("load-state"))
            html.Span("{{ load_serial }}", style="display: none", raw_attrs=_tid("load-serial"))
            # epoch ms of the engine's first placed slice and of its push to the views (for measurements)
            html.Span("{{ first_slice_placed_ms }}", style="display: none", raw_attrs=_tid("first-slice-placed-ms"))
            html.Span("{{ first_slice_pushed_ms }}", style="display: none", raw_attrs=_tid("first-slice-pushed-ms"))
            html.Span("({{ load_state_label }})", v_if="lang !== 'en' && load_state_label",
                      classes="ml-2 text-caption", raw_attrs=_tid("load-state-label"))
        step_attrs = [':data-testid="\'step-\' + item.state"',
                      ":class=\"{done: step_value > item.value, current: step_value === item.value,"
                      " failed: step_value === item.value && load_state === 'error'}\""]
        step_icon = ("step_value > item.value || (step_value === item.value && load_state === 'finished')"
                     " ? 'mdi-check-circle' : (step_value === item.value ? (busy ? 'mdi-progress-clock'"
                     " : 'mdi-circle-slice-8') : 'mdi-circle-outline')")
        with html.Div(classes="wv-steps px-3", raw_attrs=_tid("load-stepper")), \
                html.Div(v_for="item in steps", key="item.value", classes="wv-step", raw_attrs=step_attrs):
            v3.VIcon(icon=(step_icon,), size="small")
            html.Span("{{ item.title }}", classes="wv-step-title")
        with v3.VCardText():
            v3.VProgressLinear(model_value=("percent",), height=8, rounded=True, color="primary",
                               indeterminate=("busy && !percent",), raw_attrs=_tid("progress-bar"))
            with html.Div(classes="d-flex flex-wrap ga-3 mt-2 text-caption"):
                html.Span("{{ files_text }}", raw_attrs=_tid("progress-files"))
                html.Span("{{ bytes_text }}", raw_attrs=_tid("progress-bytes"))
                html.Span("{{ rate_text }}", raw_attrs=_tid("progress-rate"))
                html.Span("{{ elapsed_text }}", raw_attrs=_tid("progress-elapsed"))
            html.Div("{{ memory_text }}", classes="text-caption mt-1", raw_attrs=_tid("server-memory"))
            html.Div("{{ budget_text }}", v_if="budget_text", classes="text-caption", raw_attrs=_tid("memory-budget"))
            html.Div("{{ compare_text }}", v_if="compare_text", classes="text-caption mt-1",
                     raw_attrs=_tid("compare-progress"))
    v3.VAlert(text=("error_message",), v_if="error_message", type="error", density="compact", variant="tonal",
              title=("t.error",), classes="mb-2", raw_attrs=_tid("error-message"))
    v3.VAlert(text=("fallback_text",), v_if="fallback_text", type="warning", density="compact", variant="tonal",
              classes="mb-2", raw_attrs=_tid("fallback-notice"))
    v3.VAlert(text=("warnings_text",), v_if="warnings_text", type="info", density="compact", variant="tonal",
              title=("t.warnings",), classes="mb-2", raw_attrs=_tid("load-warnings"))
    html.Div("{{ t.window_level }} <span data-testid='wl-value'>{{ wl_text }}</span>",
             classes="text-caption text-medium-emphasis mb-1")
    with v3.VBtnToggle(v_model=("wl_preset",), mandatory=True, density="compact", divided=True,
                       variant="outlined", color="primary", classes="mb-3 flex-wrap", style="height: auto",
                       raw_attrs=_tid("wl-presets")):
        for name in WL_PRESETS:
            v3.VBtn(f"{{{{ t['wl.{name}'] }}}}", value=name, size="small", raw_attrs=_tid(f"wl-{name}"))


def _pane(pane: str, render_window: Any) -> Any:
    with html.Div(classes="wv-pane", raw_attrs=_tid(f"pane-{pane}")):
        with html.Div(classes="wv-view"):
            html.Div(f"{{{{ t['pane.{pane}'] }}}}", classes="wv-title", raw_attrs=_tid(f"title-{pane}"))
            for side in ("top", "bottom", "left", "right"):
                html.Div(f"{{{{ (labels['{pane}'] || {{}}).{side} }}}}", classes=f"wv-orient {side}",
                         raw_attrs=_tid(f"orient-{pane}-{side}"))
            html.Div("{{ t.no_volume }}", v_if="!has_volume", classes="wv-empty")
            # while the mouse rotates the 3D pane: half-size frames at JPEG quality 50 (4x fewer rays on the CPU
            # ray caster; trame-slicer also drops to quality 50 while interacting); the still frame is full size
            # (the 2D panes' quality while a slider or wheel scrolls them is switched by the app: FramePacer)
            view = vtk_widgets.VtkRemoteView(render_window, ref=VIEW_REF.format(pane=pane),
                                             interactive_ratio=0.5 if pane == "3d" else 1,
                                             interactive_quality=INTERACTIVE_QUALITY if pane == "3d" else 70,
                                             still_quality=STILL_QUALITY)
        with html.Div(classes="wv-footer"):
            if pane == "3d":
                v3.VSelect(v_model=("vr_preset",), items=(list(VR_PRESETS),), density="compact",
                           hide_details=True, variant="plain", label=("t.vr_preset",),
                           style="max-width: 220px; font-size: 12px", raw_attrs=_tid("vr-preset"))
            else:
                v3.VSlider(v_model_number=(f"slice_{pane}",), min=0, max=(f"count_{pane} - 1",), step=1,
                           hide_details=True, density="compact", color="amber", disabled=("!has_volume",),
                           raw_attrs=_tid(f"slider-{pane}"))
                html.Span(f"{{{{ t.slice }}}} {{{{ slice_{pane} + 1 }}}} / {{{{ count_{pane} }}}}",
                          style="white-space: nowrap", raw_attrs=_tid(f"slice-{pane}"))
    return view


#: the memory cell's tooltip: each component's peak, what else the session held, how the peak was taken
_MEMORY_TITLE = (
    "row.memory ? ['zip', 'files', 'datasets', 'volume', 'engine', 'app', 'render', 'held'].map("
    "(k) => t['mem.' + k] + ' ' + (row.memory[k + '_mb'] || 0).toFixed(1) + ' MB').join(' · ')"
    " + ' (' + row.memory.method + (row.memory.shared ? ', shared' : '') + ')' : ''"
)
#: columns whose meaning a tooltip explains
_HELP = ("mode", "total", "first_slice", "peak_memory", "states")


def _header(key: str) -> None:
    """A column header; where the value needs a definition, it is the header's tooltip (and an info icon)."""
    if key not in _HELP:
        html.Th(f"{{{{ t['col.{key}'] }}}}")
        return
    with html.Th(raw_attrs=[f':title="t[\'help.{key}\']"', f'data-testid="col-help-{key}"']):
        html.Span(f"{{{{ t['col.{key}'] }}}}")
        v3.VIcon("mdi-information-outline", size="x-small", classes="ml-1")


def _results(ctrl: Any) -> Any:
    with v3.VCard(variant="outlined", classes="mt-3", raw_attrs=_tid("results")):
        with v3.VCardTitle(classes="d-flex align-center text-subtitle-1"):
            html.Span("{{ t.results }}")
            v3.VSpacer()
            v3.VBtn("{{ t.export_csv }}", size="small", variant="text", prepend_icon="mdi-file-delimited",
                    disabled=("!runs.length",),
                    click="utils.download('webviewer-results.csv', trigger('export_csv'), 'text/csv')",
                    raw_attrs=_tid("export-csv"))
            v3.VBtn("{{ t.export_json }}", size="small", variant="text", prepend_icon="mdi-code-json",
                    disabled=("!runs.length",),
                    click="utils.download('webviewer-results.json', trigger('export_json'), 'application/json')",
                    raw_attrs=_tid("export-json"))
            v3.VBtn("{{ t.clear_results }}", size="small", variant="text", disabled=("!runs.length || busy",),
                    click=ctrl.clear_results, raw_attrs=_tid("clear-results"))
        with v3.VCardText():
            with v3.VTable(density="compact", raw_attrs=_tid("results-table")):
                with html.Thead(), html.Tr():
                    for key in ("mode", "ct", "network", "total", "first_slice", "peak_memory", "states"):
                        _header(key)
                with html.Tbody():
                    with html.Tr(v_for="row in runs", key="row.run", raw_attrs=_tid("results-row")):
                        html.Td("{{ t['mode.' + row.mode] }}<span v-if='row.fallback'> ({{ row.fallback }})</span>")
                        html.Td("{{ row.ct }}")
                        html.Td("{{ t['network.' + row.network] }}")
                        html.Td("{{ row.total_s.toFixed(2) }}")
                        html.Td("{{ row.first_slice_s === null ? '–' : row.first_slice_s.toFixed(3) }}")
                        html.Td("{{ row.peak_mb.toFixed(1) }}", raw_attrs=[
                            _tid("results-memory")[0], ':title="' + _MEMORY_TITLE + '"'])
                        html.Td("{{ row.states_text }}", classes="text-caption")
                    with html.Tr(v_if="!runs.length"):
                        html.Td("{{ t.no_runs }}", colspan=7, classes="text-medium-emphasis")
            html.Div("{{ t.summary }}", classes="text-subtitle-2 mt-3")
            with v3.VTable(density="compact", raw_attrs=_tid("results-summary")):
                with html.Thead(), html.Tr():
                    for key in ("mode", "runs", "mean_time", "mean_memory", "improvement_time",
                                "improvement_memory"):
                        html.Th(f"{{{{ t['col.{key}'] }}}}")
                with html.Tbody(), html.Tr(v_for="s in summary", key="s.mode", raw_attrs=_tid("summary-row")):
                    html.Td("{{ t['mode.' + s.mode] }}")
                    html.Td("{{ s.runs }}")
                    html.Td("{{ s.mean_time_s.toFixed(2) }}")
                    html.Td("{{ s.mean_memory_mb.toFixed(1) }}")
                    html.Td("{{ s.time_vs_batch_pct === null ? '–' : s.time_vs_batch_pct.toFixed(1) + ' %' }}")
                    html.Td("{{ s.memory_vs_batch_pct === null ? '–' : s.memory_vs_batch_pct.toFixed(1) + ' %' }}")
            with html.Div(v_show="runs.length", raw_attrs=_tid("results-chart"), style="height: 260px"):
                chart = plotly.Figure(state_variable_name="results_chart", display_mode_bar=False,
                                      display_logo=False, responsive=True)
    return chart


def _contents(ctrl: Any) -> None:
    with v3.VCard(variant="outlined", classes="mt-3 mb-4", raw_attrs=_tid("contents")):
        v3.VCardTitle("{{ t.contents }}", classes="text-subtitle-1")
        with v3.VCardText(), v3.VTable(density="compact", raw_attrs=_tid("contents-table")):
            with html.Thead(), html.Tr():
                for key in ("id", "name", "slices", "memory"):
                    html.Th(f"{{{{ t['col.{key}'] }}}}")
                html.Th("")
            with html.Tbody():
                with html.Tr(v_for="c in contents", key="c.id", raw_attrs=_tid("contents-row")):
                    html.Td("{{ c.id }}", classes="text-caption")
                    html.Td("{{ c.name }}")
                    html.Td("{{ c.slices }}")
                    html.Td("{{ c.memory_mb.toFixed(1) }}")
                    with html.Td():
                        v3.VBtn("{{ t.unload }}", size="x-small", variant="tonal", color="error",
                                disabled=("busy",), click=(ctrl.unload, "[c.id]"),
                                raw_attrs=[':data-testid="\'unload-\' + c.id"'])
                with html.Tr(v_if="!contents.length"):
                    html.Td("{{ t.no_contents }}", colspan=5, classes="text-medium-emphasis")
        with v3.VCardText(v_if="contents_unloaded.length", classes="pt-0", raw_attrs=_tid("contents-unloaded")):
            html.Div("{{ t.unloaded_title }}", classes="text-caption font-weight-bold")
            html.Div("{{ u.text }}", v_for="u in contents_unloaded", key="u.id", classes="text-caption",
                     raw_attrs=[':data-testid="\'unloaded-\' + u.id"', ':data-reason="u.reason"'])
