"""Run rows, the per-mode summary, the chart and the CSV/JSON exports (pure functions, no trame)."""

from __future__ import annotations

import csv
import io
import json
from statistics import mean
from typing import Any

from webviewer.app.state import MODES
from webviewer.units import MB

CSV_COLUMNS = (
    "run", "mode", "requested_mode", "ct", "network", "total_s", "first_slice_s", "engine_first_slice_s",
    "peak_mb", "volume_mb", "states", "fallback", "content_id",
)


def run_row(result: Any, *, run: int, ct_name: str, network: str, first_slice_s: float | None,
            held_bytes: int = 0, render_bytes: int = 0, app_bytes: int = 0) -> dict[str, Any]:
    """One results-table row from a LoadResult; ``first_slice_s`` is the time the first slice reached the views.

    ``peak_mb`` is the load's peak RSS above the RSS at its start, measured after the panes let the previous
    volume go (so nothing freed during the load hides in the baseline); ``held_bytes`` are the other contents'
    volumes that stayed in memory throughout, ``render_bytes`` the render copies made for this volume after it.
    With a load worker process the engine's peak is the worker's (above its idle baseline) and ``app_bytes`` what
    the app process grew meanwhile (progressive render copies; the shared volume pages counted once, as the
    worker's): the figure is their sum."""
    m = result.metrics
    states = {k: round(float(v), 3) for k, v in (m.states or {}).items()}
    fallback = result.fallback
    return {
        "run": run,
        "mode": _value(result.mode),
        "requested_mode": _value(result.requested_mode),
        "ct": ct_name,
        "network": network,
        "total_s": round(float(m.total_s), 3),
        "first_slice_s": None if first_slice_s is None else round(first_slice_s, 3),
        "engine_first_slice_s": None if m.first_slice_s is None else round(float(m.first_slice_s), 3),
        "peak_mb": round((m.peak_above_baseline_bytes + app_bytes) / MB, 1),
        "volume_mb": round(m.volume_bytes / MB, 1),
        "memory": memory_details(m, held_bytes=held_bytes, render_bytes=render_bytes, app_bytes=app_bytes),
        "states": states,
        "states_text": " · ".join(f"{k} {v:.2f}" for k, v in states.items()),
        "fallback": None if fallback is None else f"{_value(fallback.from_mode)} → {_value(fallback.to_mode)}",
        "content_id": result.content_id,
    }


def memory_details(metrics: Any, *, held_bytes: int = 0, render_bytes: int = 0,
                   app_bytes: int = 0) -> dict[str, Any]:
    """The memory column's details: each component's peak (MB), what else the session held, how it was measured."""
    comps = {k: round(int(v) / MB, 1) for k, v in (getattr(metrics, "components_peak_bytes", None) or {}).items()}
    return {
        **{f"{k}_mb": v for k, v in comps.items()},
        "render_mb": round(render_bytes / MB, 1),
        "engine_mb": round(int(getattr(metrics, "peak_above_baseline_bytes", 0)) / MB, 1),
        "app_mb": round(app_bytes / MB, 1),
        "held_mb": round(held_bytes / MB, 1),
        "baseline_mb": round(int(getattr(metrics, "baseline_rss_bytes", 0)) / MB, 1),
        "method": getattr(metrics, "memory_method", "none"),
        "shared": bool(getattr(metrics, "memory_shared", False)),
    }


def _value(x: Any) -> str:
    return getattr(x, "value", x)


def _pct(base: float, value: float) -> float | None:
    return None if not base else round((base - value) / base * 100.0, 1)


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean time and memory per mode, and the improvement over Batch in percent (positive = better)."""
    out = []
    by_mode = {mode: [r for r in rows if r["requested_mode"] == mode] for mode in MODES}
    base = by_mode["batch"]
    base_time = mean(r["total_s"] for r in base) if base else None
    base_mem = mean(r["peak_mb"] for r in base) if base else None
    for mode, group in by_mode.items():
        if not group:
            continue
        t = mean(r["total_s"] for r in group)
        mem = mean(r["peak_mb"] for r in group)
        out.append({
            "mode": mode,
            "runs": len(group),
            "mean_time_s": round(t, 3),
            "mean_memory_mb": round(mem, 1),
            "time_vs_batch_pct": _pct(base_time, t) if base_time is not None else None,
            "memory_vs_batch_pct": _pct(base_mem, mem) if base_mem is not None else None,
        })
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The runs as CSV; states as ``state=seconds;…``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["states"] = ";".join(f"{k}={v}" for k, v in row.get("states", {}).items())
        writer.writerow(flat)
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    """The runs and the summary as one JSON document."""
    clean = [{k: v for k, v in r.items() if k != "states_text"} for r in rows]
    return json.dumps({"runs": clean, "summary": summary(rows)}, indent=2, ensure_ascii=False)


def chart(rows: list[dict[str, Any]], t: dict[str, str]) -> Any:
    """A plotly figure: mean time and mean peak memory by mode, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    summ = summary(rows)
    labels = [t.get(f"mode.{s['mode']}", s["mode"]) for s in summ]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(t["chart_time"], t["chart_memory"]))
    fig.add_trace(go.Bar(x=labels, y=[s["mean_time_s"] for s in summ], name=t["chart_time"],
                         marker_color="#1e88e5"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=[s["mean_memory_mb"] for s in summ], name=t["chart_memory"],
                         marker_color="#43a047"), row=1, col=2)
    fig.update_layout(showlegend=False, height=260, margin={"l": 40, "r": 10, "t": 30, "b": 40},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font={"size": 11})
    return fig
