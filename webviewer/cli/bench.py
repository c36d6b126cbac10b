"""`webviewer-bench`: the original report's tables for any CT and network profile, one fresh process per run.

By default it generates the sample (if needed), starts the CT API in its own process on a free port, and loads
`/api/cts/<ct>/archive?rate=..&latency=..` with `python -m webviewer.cli.load URL --mode M --json --quiet`, modes
interleaved run by run. `--from-json` re-renders saved results (several profiles into one Markdown section).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import urllib.request
import zipfile
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from webviewer.argtypes import inflate_workers, non_negative_float, non_negative_int, positive_int
from webviewer.bench import report, stats
from webviewer.bench.inflate import inflate_reference
from webviewer.bench.runner import (
    ApiServer,
    BenchError,
    content_length,
    fetch_json,
    is_api_archive_url,
    machine_info,
    run_load,
    run_record,
    volumes_agree,
    with_query,
)
from webviewer.loading.inflate import INFLATER_NAME

log = logging.getLogger("webviewer.bench")

DEFAULT_CT = "sample-medium"
BALANCED = "balanced"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="webviewer-bench", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--ct", default=None, help=f"catalog id to load from the API started here (default {DEFAULT_CT})")
    where.add_argument("--source", help="benchmark this source instead: a ZIP URL, a local .zip, an Orthanc archive "
                                        "or DICOMweb series URL; throttling needs an API archive URL "
                                        "(.../api/cts/ID/archive)")
    where.add_argument("--from-json", nargs="+", type=Path, metavar="FILE",
                       help="do not run: print (and --markdown) the tables of saved --json results")
    parser.add_argument("--modes", default=",".join(stats.MODES), help="comma-separated load modes")
    parser.add_argument("--runs", type=positive_int, default=5, help="runs per mode (default 5)")
    parser.add_argument("--rate", default="unlimited",
                        help="network profile (unlimited, 1gbit, 100mbit, 40mbit, 4g, balanced) or a rate like 50mbit; "
                             "a comma list runs each in turn (--json then writes a list)")
    parser.add_argument("--latency", type=non_negative_float, default=None, help="latency in ms (default: the profile's)")
    parser.add_argument("--calibration-runs", type=positive_int, default=5,
                        help="unthrottled Batch runs that measure the processing time for --rate balanced")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="unrecorded unthrottled runs before the first profile, to warm file caches (default 1)")
    parser.add_argument("--json", dest="json_file", help="write the result object to FILE ('-' for stdout)")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown to FILE")
    parser.add_argument("--samples", help="samples the API serves (default: the one --ct names), e.g. tiny,medium")
    parser.add_argument("--data-dir", type=Path,
                        help="the API also serves every .zip / DICOM folder under DIR (then --ct picks one of them)")
    parser.add_argument("--sample-dir", type=Path,
                        help="where samples are generated and kept (default $WEBVIEWER_DATA_DIR or ~/.cache/webviewer)")
    parser.add_argument("--inflate-workers", type=inflate_workers, default=None, metavar="N",
                        help="passed to every load: members inflated at once in the streaming modes (0 = stream-unzip)")
    parser.add_argument("--no-inflate-reference", dest="inflate_reference", action="store_false",
                        help="do not time inflating the archive's members alone")
    parser.add_argument("--verify", action="store_true",
                        help="also hash each run's volume (via webviewer-load --output) to check the modes agree")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is started")
    auth = parser.add_argument_group("credentials for --source (e.g. Orthanc); handed to each load through the "
                                     "environment, never on a command line")
    auth.add_argument("--user", help="user name (or set WEBVIEWER_USER)")
    auth.add_argument("--password", help="password (or set WEBVIEWER_PASSWORD)")
    auth.add_argument("--token", help="bearer token (or set WEBVIEWER_TOKEN)")
    args = parser.parse_args(argv)
    try:
        args.mode_list = parse_modes(args.modes)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def parse_modes(text: str) -> list[str]:
    """'batch,stream-dicom' -> ['batch', 'stream-dicom'], checked against the known modes."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in stats.MODES]
    if unknown or not modes:
        raise ValueError(f"unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(stats.MODES)}")
    return modes


def resolve_profile(rate: str, latency: float | None) -> tuple[str, float | None, float]:
    """(profile name, rate in bytes/s or None, latency ms). `balanced` has no rate until it is measured."""
    from webviewer.api.throttle import PROFILES, parse_rate

    name = rate.strip().lower()
    if name == BALANCED:
        return BALANCED, None, latency if latency is not None else 0.0
    if name in PROFILES:
        profile = PROFILES[name]
        return name, profile.rate_bytes_per_s, latency if latency is not None else profile.latency_ms
    return name, parse_rate(name), latency if latency is not None else 0.0


def throttled(url: str, rate_bytes_per_s: float | None, latency_ms: float) -> str:
    """An API archive URL with an explicit throttle query (bytes/s, ms), overriding the server's defaults.

    Other sources are returned unchanged (they cannot be throttled; `open_source` refuses a throttle for them).
    """
    if not is_api_archive_url(url):
        return url
    return with_query(url, rate="unlimited" if rate_bytes_per_s is None else f"{rate_bytes_per_s:.0f}",
                      latency=f"{latency_ms:g}")


def sample_name(ct_id: str) -> str:
    """'sample-medium' -> 'medium' (the API's --samples names)."""
    return ct_id.removeprefix("sample-")


def archive_info(source: str, ct: dict | None) -> tuple[int | None, int | None]:
    """(archive bytes, DICOM bytes) from the catalog, else a HEAD request or the file size."""
    if ct:
        return ct.get("zip_bytes"), ct.get("dicom_bytes")
    if urlsplit(source).scheme in ("http", "https"):
        return content_length(source), None
    path = Path(source)
    return (path.stat().st_size if path.is_file() else None), None


def calibrate(url: str, runs: int, progress, load_args: Sequence[str] = ()) -> dict:
    """Batch's processing time from memory (median over unthrottled runs), for the balanced profile."""
    times = []
    for _ in range(runs):
        progress.set_postfix_str("balanced: calibrating with unthrottled batch")
        load = run_load(url, "batch", extra_args=load_args)
        times.append(stats.batch_processing_s(run_record("batch", 0, load)))
        progress.update()
    return {"processing_s": statistics.median(times), "calibration_runs": times}


def open_source(args: argparse.Namespace, stack: ExitStack, throttling: bool) -> tuple[str, dict | None]:
    """(archive URL or path, catalog entry or None); starts the API (on `stack`) unless --source is given."""
    if args.source:
        if is_api_archive_url(args.source):
            ct_id = urlsplit(args.source).path.split("/")[3]
            base = args.source.split("/api/cts/")[0]
            return args.source, fetch_json(f"{base}/api/cts/{ct_id}")
        if throttling:
            raise BenchError("--rate/--latency throttle only the CT API's archive URLs (.../api/cts/ID/archive)")
        return args.source, None
    from webviewer.api.samples import SAMPLES, ensure_samples

    ct_id = args.ct or DEFAULT_CT
    wanted = args.samples or (ct_id if ct_id in SAMPLES else "")
    samples = [sample_name(s.strip()) for s in wanted.split(",") if s.strip()]
    if samples:
        ensure_samples(samples, args.sample_dir, progress=not args.quiet)
    server = stack.enter_context(ApiServer(samples, data_dir=args.data_dir, sample_dir=args.sample_dir))
    try:
        ct = fetch_json(f"{server.base_url}/api/cts/{ct_id}")
    except OSError as exc:
        raise BenchError(f"the API has no CT {ct_id!r} (serving samples {','.join(samples) or 'none'})") from exc
    return f"{server.base_url}/api/cts/{ct_id}/archive", ct


def run_profile(args: argparse.Namespace, source: str, ct: dict | None, profile_text: str, progress) -> dict:
    """All runs of one network profile (after calibration, for balanced); returns the result object."""
    profile, rate, latency = resolve_profile(profile_text, args.latency)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    archive_bytes, dicom_bytes = archive_info(source, ct)
    load_args = ["--expected-slices", str(ct["slices"])] if ct and ct.get("slices") else []
    if args.inflate_workers is not None:
        load_args += ["--inflate-workers", str(args.inflate_workers)]
    balanced = None
    if profile == BALANCED:
        if archive_bytes is None:
            raise BenchError("the archive size is unknown, so no balanced rate can be set")
        balanced = calibrate(throttled(source, None, 0.0), args.calibration_runs, progress, load_args)
        rate = stats.balanced_rate(archive_bytes, balanced["processing_s"])
        balanced["rate_bytes_per_s"] = rate
        log.info("balanced rate: %s", report.fmt_rate(rate))
    url = throttled(source, rate, latency)
    if args.inflate_reference and "inflate_alone_s" not in args.__dict__:
        progress.set_postfix_str(f"timing inflate alone ({INFLATER_NAME})")
        args.inflate_alone_s = inflate_alone(throttled(source, None, 0.0))
    records = []
    for mode, run in stats.schedule(args.mode_list, args.runs):
        progress.set_postfix_str(f"{profile}: {mode} run {run}")
        records.append(run_record(mode, run, run_load(url, mode, verify=args.verify, extra_args=load_args)))
        progress.update()
    return stats.build_result(
        profile=profile, rate_bytes_per_s=rate, latency_ms=latency,
        archive_bytes=archive_bytes if archive_bytes is not None else records[0]["bytes_downloaded"],
        dicom_bytes=dicom_bytes if dicom_bytes is not None else records[0]["bytes_dicom"],
        runs=records, modes=args.mode_list,
        ct=ct, source=source if args.source else None, balanced=balanced, volumes_agree=volumes_agree(records),
        inflater=INFLATER_NAME, inflate_workers=args.inflate_workers,
        inflate_alone_s=getattr(args, "inflate_alone_s", None),
        warmup_runs=args.warmup, machine=machine_info(), started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - t0, 1),
    )


def inflate_alone(source: str) -> dict[str, float] | None:
    """Seconds to inflate every member of the archive alone (the engine's 2x-of-zlib target).

    The archive is read once here, in the bench process, so no load run is affected; None when the source is
    not a ZIP this process can read (DICOMweb, an error page).
    """
    try:
        if urlsplit(source).scheme in ("http", "https"):
            with urllib.request.urlopen(source, timeout=60) as resp:  # noqa: S310 - the bench's own source
                data = resp.read()
        else:
            data = Path(source).read_bytes()
        return inflate_reference(data)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        log.warning("inflate reference not measured: %s", exc)
        return None


def run_bench(args: argparse.Namespace) -> list[dict]:
    """Start what is needed and run every profile of --rate (comma list) in turn; one result per profile."""
    from tqdm import tqdm

    profiles = [p.strip() for p in args.rate.split(",") if p.strip()]
    for text in profiles:
        resolve_profile(text, args.latency)  # bad names fail before anything starts
    throttling = any(p.lower() != "unlimited" for p in profiles) or bool(args.latency)
    total = len(profiles) * args.runs * len(args.mode_list)
    total += args.calibration_runs * sum(p.lower() == BALANCED for p in profiles) + args.warmup
    with ExitStack() as stack:
        source, ct = open_source(args, stack, throttling)
        progress = stack.enter_context(tqdm(total=total, unit="run", file=sys.stderr,
                                            disable=True if args.quiet else None, desc="webviewer-bench"))
        for _ in range(args.warmup):
            progress.set_postfix_str("warm-up (not recorded)")
            run_load(throttled(source, None, 0.0), args.mode_list[0])
            progress.update()
        return [run_profile(args, source, ct, text, progress) for text in profiles]


def write_outputs(results: list[dict], args: argparse.Namespace) -> None:
    """Print the tables (stdout, or stderr when the JSON goes to stdout) and write --json / --markdown."""
    text_out = sys.stderr if args.json_file == "-" else sys.stdout
    for result in results:
        print(report.render_text(result), file=text_out)
    if len(results) > 1:
        print(report.overview_table(results).text() + "\n", file=text_out)
        combined = report.targets_table(results)
        combined.title = "Targets, each at its own profile"
        print(combined.text() + "\n", file=text_out)
    if args.json_file == "-":
        json.dump(results[0] if len(results) == 1 else results, sys.stdout, indent=2)
        print()
    elif args.json_file:
        Path(args.json_file).write_text(json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n")
    if args.markdown:
        existing = args.markdown.read_text() if args.markdown.exists() else None
        args.markdown.write_text(report.splice_markdown(existing, report.render_markdown(results)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `webviewer-bench`."""
    args = parse_args(argv)
    for variable, value in (("WEBVIEWER_USER", args.user), ("WEBVIEWER_PASSWORD", args.password),
                            ("WEBVIEWER_TOKEN", args.token)):
        if value:
            os.environ[variable] = value  # inherited by every `webviewer-load` process
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        if args.from_json:
            results = []
            for path in args.from_json:
                loaded = json.loads(path.read_text())
                results += loaded if isinstance(loaded, list) else [loaded]
        else:
            results = run_bench(args)
    except (BenchError, ValueError, OSError) as exc:
        print(f"webviewer-bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("webviewer-bench: interrupted", file=sys.stderr)
        return 130
    write_outputs(results, args)
    if any(r.get("volumes_agree") is False for r in results):
        print("webviewer-bench: the modes produced different volumes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
