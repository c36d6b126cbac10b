"""The report's tables, rendered as aligned text (terminal) or Markdown (README), from a bench result dict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from webviewer.bench.stats import (
    COMPONENTS,
    MODE_LABELS,
    ORIGINAL_COMPONENTS_MB,
    ORIGINAL_REPORT,
    evaluate_targets,
    improvement_pct,
    runs_of,
)
from webviewer.units import MB

COMPONENT_LABELS = {"zip": "ZIP buffer", "files": "Extracted files", "datasets": "Parsed datasets",
                    "volume": "Volume"}


@dataclass
class Table:
    """A titled table of strings; the first column is left-aligned, the others right-aligned."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Aligned plain text for the terminal."""
        widths = [max(len(row[i]) for row in [self.headers, *self.rows]) for i in range(len(self.headers))]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

        out = [self.title, line(self.headers), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in self.rows]
        out += self.notes
        return "\n".join(out)

    def markdown(self, title: bool = True) -> str:
        """A GitHub Markdown table, under a bold title unless `title` is False."""
        out = [f"**{self.title}**", ""] if title else []
        out += ["| " + " | ".join(self.headers) + " |",
               "|" + "|".join([":---"] + ["---:"] * (len(self.headers) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out += [""] + self.notes
        return "\n".join(out)


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A number with fixed decimals, or an em dash when missing."""
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def fmt_mb(nbytes: float | None) -> str:
    """Bytes as MB (10^6) with one decimal."""
    return "—" if nbytes is None else f"{nbytes / MB:.1f}"


def fmt_pct(value: float | None) -> str:
    """An improvement in % with a sign (positive = better than Batch)."""
    return "—" if value is None else f"{value:+.1f} %"


def fmt_rate(rate_bytes_per_s: float | None) -> str:
    """A rate as Mbit/s and MB/s, or "unlimited"."""
    if rate_bytes_per_s is None:
        return "unlimited"
    return f"{rate_bytes_per_s * 8 / 1e6:.1f} Mbit/s ({rate_bytes_per_s / MB:.2f} MB/s)"


def _modes(result: Mapping) -> list[str]:
    return list(result["summary"])


def _per_run_table(result: Mapping, title: str, key: str, cell, summary_keys: tuple[str, str, str]) -> Table:
    modes = _modes(result)
    n_runs = max((r["run"] for r in result["runs"]), default=0)
    rows = []
    for run in range(1, n_runs + 1):
        cells = [str(run)]
        for mode in modes:
            found = [r for r in runs_of(result["runs"], mode) if r["run"] == run]
            cells.append(cell(found[0][key]) if found else "—")
        rows.append(cells)
    mean_key, median_key, improvement_key = summary_keys
    rows.append(["Mean", *(cell(result["summary"][m][mean_key]) for m in modes)])
    rows.append(["Median", *(cell(result["summary"][m][median_key]) for m in modes)])
    rows.append(["Improvement vs Batch (mean)", *(fmt_pct(result["summary"][m][improvement_key]) for m in modes)])
    return Table(title, ["Run", *(MODE_LABELS.get(m, m) for m in modes)], rows)


def time_table(result: Mapping) -> Table:
    """Loading time per run, mean, median and improvement over Batch."""
    return _per_run_table(result, "Loading time (s)", "total_s", fmt,
                          ("mean_total_s", "median_total_s", "improvement_time_pct"))


def memory_table(result: Mapping) -> Table:
    """Peak memory above baseline per run, mean, median and improvement over Batch."""
    return _per_run_table(result, "Peak memory above baseline (MB)", "peak_above_baseline_bytes", fmt_mb,
                          ("mean_peak_above_baseline_bytes", "median_peak_above_baseline_bytes",
                           "improvement_memory_pct"))


def components_table(result: Mapping) -> Table:
    """Peak bytes held by each component, per mode (median over runs)."""
    rows = []
    for mode in _modes(result):
        s = result["summary"][mode]
        comps = s["median_components_peak_bytes"]
        rows.append([MODE_LABELS.get(mode, mode), *(fmt_mb(comps.get(c)) for c in COMPONENTS),
                     fmt_mb(s["median_peak_above_baseline_bytes"])])
    return Table("Memory by component (MB, median of each run's peak)",
                 ["Mode", *(COMPONENT_LABELS[c] for c in COMPONENTS), "Peak above baseline"], rows,
                 ["Components peak at different moments, so they need not add up to the peak."])


def first_slice_table(result: Mapping) -> Table:
    """Time to the first slice placed, against the total time."""
    rows = []
    for mode in _modes(result):
        s = result["summary"][mode]
        share = (s["median_first_slice_s"] / s["median_total_s"]
                 if s["median_first_slice_s"] is not None and s["median_total_s"] else None)
        rows.append([MODE_LABELS.get(mode, mode), fmt(s["mean_first_slice_s"]), fmt(s["median_first_slice_s"]),
                     fmt(s["median_total_s"]), fmt(share and share * 100, 0, " %")])
    return Table("Time to first slice (s)", ["Mode", "Mean", "Median", "Median total", "First slice ÷ total"], rows)


def floor_table(result: Mapping) -> Table:
    """The network floor (ZIP bytes ÷ rate) and each mode's median time divided by it."""
    rate = result["network"]["rate_bytes_per_s"]
    floor = result["network_floor_s"]
    rows = [[MODE_LABELS.get(m, m), fmt(result["summary"][m]["median_total_s"]),
             fmt(result["summary"][m]["median_total_over_floor"])] for m in _modes(result)]
    note = (f"Network floor: {fmt_mb(result['archive_bytes'])} MB ÷ {fmt_rate(rate)} = {fmt(floor)} s"
            if floor is not None else "Network floor: none (unthrottled).")
    if result["network"]["latency_ms"]:
        note += f" Latency ({fmt(result['network']['latency_ms'], 0)} ms) is not part of the floor."
    return Table("Network floor", ["Mode", "Median time (s)", "Time ÷ floor"], rows, [note])


def targets_table(results: Sequence[Mapping]) -> Table:
    """The issue's targets, each checked at its own profile, with the original report's figure."""
    rows = []
    for row in evaluate_targets(results):
        measured = ", ".join(f"{v:.2f}" + (f" ({p})" if row["profile"] == "any" and len(results) > 1 else "")
                             for p, v in row["measured"]) or "—"
        rows.append([row["metric"], row["profile"], row["target"], fmt(row["original"]), measured, row["status"]])
    return Table("Targets", ["Metric", "Profile", "Target", "Original report", "Measured", "Status"], rows)


def original_table() -> Table:
    """The original report's figures (browser JS, 107 MB ZIP, 197 MB of DICOM), for comparison."""
    batch = ORIGINAL_REPORT["batch"]
    rows = [[MODE_LABELS[m], fmt(v["total_s"], 1), fmt_pct(improvement_pct(batch["total_s"], v["total_s"])),
             fmt(v["peak_mb"], 1), fmt_pct(improvement_pct(batch["peak_mb"], v["peak_mb"]))]
            for m, v in ORIGINAL_REPORT.items()]
    comps = ", ".join(f"{COMPONENT_LABELS[c]} {v:.0f} MB" for c, v in ORIGINAL_COMPONENTS_MB.items())
    return Table("Original report (browser JS, 107 MB ZIP, 197 MB of DICOM; means of 5 runs)",
                 ["Mode", "Time (s)", "Improvement", "Peak memory (MB)", "Improvement"], rows,
                 [f"Memory components in the original report: {comps}."])


def overview_table(results: Sequence[Mapping]) -> Table:
    """Mean time and peak per mode and profile, beside the original report's figures (README headline table)."""
    batch = ORIGINAL_REPORT["batch"]
    rows = [["original report (browser JS)", MODE_LABELS[m], fmt(v["total_s"], 1),
             fmt_pct(improvement_pct(batch["total_s"], v["total_s"])), fmt(v["peak_mb"], 1),
             fmt_pct(improvement_pct(batch["peak_mb"], v["peak_mb"])), "—"]
            for m, v in ORIGINAL_REPORT.items()]
    for result in results:
        for mode, s in result["summary"].items():
            rows.append([str(result.get("profile")), MODE_LABELS.get(mode, mode), fmt(s["mean_total_s"]),
                         fmt_pct(s["improvement_time_pct"]), fmt_mb(s["mean_peak_above_baseline_bytes"]),
                         fmt_pct(s["improvement_memory_pct"]), fmt(s["median_total_over_floor"])])
    return Table("Overview: means over the runs, improvement over Batch",
                 ["Profile", "Mode", "Time (s)", "Improvement", "Peak above baseline (MB)", "Improvement",
                  "Median time ÷ floor"], rows)


def headline(result: Mapping) -> str:
    """One paragraph saying what was measured, where and how."""
    net = result["network"]
    ct = result.get("ct") or {}
    what = ct.get("id") or result.get("source")
    shape = next((r.get("dimensions") for r in result["runs"] if r.get("dimensions")), None)
    dims = f" ({'×'.join(str(d) for d in shape)})" if shape else ""
    machine = result.get("machine") or {}
    balanced = result.get("balanced")
    parts = [
        f"CT {what}{dims}: archive {fmt_mb(result['archive_bytes'])} MB, DICOM {fmt_mb(result['dicom_bytes'])} MB.",
        f"Profile {result.get('profile')}: {fmt_rate(net['rate_bytes_per_s'])}, latency {fmt(net['latency_ms'], 0)} ms.",
    ]
    if balanced:
        parts.append(f"Balanced rate from Batch's processing time {fmt(balanced['processing_s'])} s "
                     f"(median of {len(balanced['calibration_runs'])} unthrottled Batch runs).")
    runs = max((r["run"] for r in result["runs"]), default=0)
    warmup = result.get("warmup_runs")
    parts.append(f"{runs} run(s) per mode, interleaved, one fresh process per run"
                 + (f", after {warmup} unrecorded warm-up run(s)." if warmup else "."))
    if machine:
        parts.append(f"Machine: {machine.get('cpu')}, {machine.get('cpus')} CPU(s), "
                     f"{fmt(machine.get('memory_gb'), 1)} GB RAM, {machine.get('os')}, Python {machine.get('python')}.")
    if result.get("inflater"):
        parts.append(f"Every mode inflates with {result['inflater']}"
                     + (f"; loads ran with --inflate-workers {result['inflate_workers']}."
                        if result.get("inflate_workers") is not None else "."))
    alone = result.get("inflate_alone_s") or {}
    if alone:
        parts.append("Inflating every member alone, in memory (best of 3): "
                     + ", ".join(f"{name} {fmt(seconds)} s" for name, seconds in alone.items()) + ".")
    fell_back = [r for r in result["runs"] if r.get("fallback")]
    if fell_back:
        fb = fell_back[0]["fallback"]
        parts.append(f"WARNING: {len(fell_back)} run(s) fell back to a safer mode, e.g. {fb.get('from')} -> "
                     f"{fb.get('to')}: {fb.get('reason')}; their figures are that mode's.")
    if result.get("volumes_agree") is False:
        parts.append("WARNING: the modes did not produce identical volumes.")
    return " ".join(parts)


def tables(result: Mapping) -> list[Table]:
    """The per-profile tables, in the report's order."""
    return [time_table(result), memory_table(result), components_table(result), first_slice_table(result),
            floor_table(result), targets_table([result])]


def render_text(result: Mapping) -> str:
    """The terminal report for one result."""
    return "\n\n".join([headline(result), *(t.text() for t in tables(result))]) + "\n"


BEGIN_MARK, END_MARK = "<!-- bench:begin -->", "<!-- bench:end -->"


def splice_markdown(existing: str | None, generated: str) -> str:
    """``generated`` between the bench markers of ``existing`` (the notes around them are kept), or alone."""
    if existing and BEGIN_MARK in existing and END_MARK in existing.split(BEGIN_MARK, 1)[1]:
        head, rest = existing.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1]
        return f"{head}{BEGIN_MARK}\n{generated.strip()}\n{END_MARK}{tail}"
    return generated


def render_markdown(results: Sequence[Mapping]) -> str:
    """The README section: each profile's tables, the targets over all profiles, and the original report."""
    out = ["### Overview", "", overview_table(results).markdown(title=False), ""]
    for result in results:
        out += [f"### Profile `{result.get('profile')}`", "", headline(result), ""]
        out += [t.markdown() + "\n" for t in tables(result)[:-1]]
    out += ["### Targets", "", targets_table(results).markdown(title=False), ""]
    out += ["### The original report", "", original_table().markdown(), ""]
    return "\n".join(out)
