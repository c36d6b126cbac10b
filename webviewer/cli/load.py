"""``webviewer-load SOURCE``: load a CT (URL, .zip or folder) in one mode; progress bar, summary, JSON, .npz.

Exit status: 0 ok, 2 bad input (archive, DICOM, HTTP 4xx, limits), 1 any other failure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from webviewer.argtypes import inflate_workers, positive_float, positive_int
from webviewer.errors import BadInputError, WebViewerError
from webviewer.loading import LoadMode, LoadObserver, LoadOptions, LoadResult, ProgressEvent, load
from webviewer.orthanc.sources import register_with_engine
from webviewer.runtime import configure_runtime

log = logging.getLogger("webviewer.cli.load")


class TqdmObserver(LoadObserver):
    """A tqdm bar over the downloaded bytes, its description showing the live state."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc="starting", file=sys.stderr,
                        dynamic_ncols=True, leave=False)

    def on_progress(self, event: ProgressEvent) -> None:
        bar = self.bar
        if event.bytes_total and bar.total != event.bytes_total:
            bar.total = event.bytes_total
        bar.n = event.bytes_downloaded
        bar.set_description(event.state.value, refresh=False)
        slices = f"{event.slices_placed}/{event.slices_total}" if event.slices_total else str(event.slices_placed)
        bar.set_postfix(files=event.files_extracted, parsed=event.files_parsed, slices=slices,
                        rss=f"{event.rss_bytes / 1e6:.0f}MB", refresh=False)
        bar.refresh()

    def close(self) -> None:
        self.bar.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="webviewer-load",
        description="Load a CT from an http(s) URL serving a ZIP of DICOM files, a local .zip, or a folder.",
    )
    p.add_argument("source", help="http(s) URL of a ZIP (the CT API, Orthanc's /studies|series/{id}/archive), a "
                   "DICOMweb series URL (.../studies/{uid}/series/{uid}), a .zip file or a folder of DICOM files")
    p.add_argument("--mode", default=LoadMode.STREAM_DICOM.value, choices=[m.value for m in LoadMode],
                   help="load mode (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result and its metrics")
    p.add_argument("--output", type=Path, metavar="FILE.npz",
                   help="write hu (z,y,x), spacing (x,y,z), origin, direction (3x3) to a .npz file")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--connect-timeout", type=positive_float, default=10.0, metavar="S", help="seconds (default: %(default)s)")
    p.add_argument("--stall-timeout", type=positive_float, default=30.0, metavar="S",
                   help="fail when no bytes arrive for this many seconds (default: %(default)s)")
    p.add_argument("--name", help="CT name used in the content name")
    p.add_argument("--expected-slices", type=positive_int, metavar="N", help="slice count, if known (PoC2 preallocation)")
    p.add_argument("--no-fallback", action="store_true", help="fail instead of falling back to a safer mode")
    p.add_argument("--inflate-workers", type=inflate_workers, default=2, metavar="N",
                   help="streaming modes: members inflated at once when the ZIP's central directory is known "
                        "(default %(default)s; 0 = stream-unzip, one member after another)")
    auth = p.add_argument_group("credentials (e.g. Orthanc); never printed")
    auth.add_argument("--user", default=os.environ.get("WEBVIEWER_USER"),
                      help="HTTP basic auth user (default: $WEBVIEWER_USER)")
    auth.add_argument("--password", default=None,
                      help="HTTP basic auth password (default: $WEBVIEWER_PASSWORD; prefer the variable)")
    auth.add_argument("--token", default=os.environ.get("WEBVIEWER_TOKEN"),
                      help="bearer token sent as 'Authorization: Bearer ...' (default: $WEBVIEWER_TOKEN)")
    return p


def credentials(args: argparse.Namespace) -> tuple[tuple[str, str] | None, dict[str, str] | None]:
    """(auth, headers) for LoadOptions from --user/--password/--token and the WEBVIEWER_* variables."""
    if args.user and args.token:
        raise WebViewerError("Give either --user/--password or --token, not both.")
    if args.user:
        password = args.password if args.password is not None else os.environ.get("WEBVIEWER_PASSWORD", "")
        return (args.user, password), None
    if args.token:
        return None, {"Authorization": f"Bearer {args.token}"}
    return None, None


def write_npz(path: Path, result: LoadResult) -> None:
    v = result.volume
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "wb")  # noqa: SIM115 - a file object: np.savez would otherwise append .npz to other suffixes
    except OSError as exc:
        raise BadInputError(f"Cannot write {path}: {exc.strerror}. Choose a writable --output path.") from None
    with f:
        np.savez(
            f,
            hu=v.hu,
            spacing=np.asarray(v.spacing, dtype=np.float64),
            origin=np.asarray(v.origin, dtype=np.float64),
            direction=np.asarray(v.direction, dtype=np.float64).reshape(3, 3),
        )


def summary(result: LoadResult) -> str:
    j = result.to_json()
    t, m = j["timings"], j["memory"]
    x, y, z = j["dimensions"]
    lines = [
        f"{result.name}",
        f"  content   {j['content_id']}  mode {j['mode']}"
        + (f" (requested {result.requested_mode.value})" if result.fallback else ""),
        f"  volume    {x}x{y}x{z} {j['dtype']}, spacing "
        + " x ".join(f"{s:.3g}" for s in j["spacing"]) + " mm",
        f"  time      {t['total_s']:.2f} s total"
        + (f", first slice {t['first_slice_s']:.2f} s" if t["first_slice_s"] is not None else "")
        + "  (" + ", ".join(f"{k} {v:.2f} s" for k, v in t["states"].items()) + ")",
        f"  bytes     {j['bytes']['downloaded'] / 1e6:.1f} MB downloaded, {j['bytes']['dicom'] / 1e6:.1f} MB DICOM",
        f"  memory    peak {m['peak_above_baseline_bytes'] / 1e6:.0f} MB above baseline, volume "
        f"{m['volume_bytes'] / 1e6:.0f} MB; components "
        + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in m["components_peak_bytes"].items()),
    ]
    if result.fallback:
        fb = result.fallback
        lines.append(f"  fallback  {fb.from_mode} -> {fb.to_mode}: {fb.reason}")
    lines += [f"  warning   [{w.code}] {w.message}" for w in result.warnings]
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> LoadResult:
    auth, headers = credentials(args)
    options = LoadOptions(
        auth=auth,
        headers=headers,
        connect_timeout_s=args.connect_timeout,
        stall_timeout_s=args.stall_timeout,
        expected_slices=args.expected_slices,
        fallback=not args.no_fallback,
        name=args.name,
        inflate_workers=max(0, args.inflate_workers),
    )
    observer = None if (args.quiet or args.json) else TqdmObserver()
    try:
        return await load(args.source, args.mode, options=options, observer=observer)
    finally:
        if observer is not None:
            await asyncio.sleep(0)
            observer.close()


class _NoTraceback(logging.Filter):
    """pydicom logs each failed decoder plugin with its traceback; our own error line says what failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] == "pydicom":
            record.exc_info = record.exc_text = None
        return True


def quiet_pydicom(quiet: bool) -> None:
    """--quiet: nothing from pydicom (logs or Python warnings); otherwise its messages on one line each."""
    logger = logging.getLogger("pydicom")
    if quiet:
        logger.setLevel(logging.CRITICAL + 1)
        warnings.filterwarnings("ignore", module="pydicom")
    else:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_NoTraceback())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_runtime(rendering=False)
    register_with_engine()  # Orthanc archive and DICOMweb URLs
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, stream=sys.stderr,
                        format="webviewer-load: %(levelname)s: %(message)s")
    quiet_pydicom(args.quiet)
    try:
        result = asyncio.run(_run(args))
        if args.output is not None:
            write_npz(args.output, result)
    except WebViewerError as exc:
        print(f"webviewer-load: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("webviewer-load: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"webviewer-load: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        print(f"webviewer-load: error: unexpected {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json()))
    elif not args.quiet:
        print(summary(result))
        if args.output is not None:
            print(f"  wrote     {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
