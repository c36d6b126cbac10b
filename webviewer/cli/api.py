"""``webviewer-api``: serve CT studies as streamed ZIPs (the cloud viewer's "EC2 API")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from webviewer.api.app import start_api_server
from webviewer.api.catalog import Catalog
from webviewer.api.samples import SAMPLE_ALIASES, default_data_dir, ensure_samples, sample_ids
from webviewer.api.throttle import PROFILES, format_rate, parse_latency, parse_rate
from webviewer.argtypes import listen_port

log = logging.getLogger("webviewer.api")


def build_parser() -> argparse.ArgumentParser:
    profiles = ", ".join(PROFILES)
    parser = argparse.ArgumentParser(
        prog="webviewer-api",
        description=(
            "Serve CT studies as ZIPs of DICOM files: GET /api/cts, GET /api/cts/{id}, "
            "GET|HEAD /api/cts/{id}/archive[?rate=100mbit&latency=10|?profile=4g] (Range supported). "
            "Without --data-dir it serves generated sample CTs."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1); keep it unless other machines must reach the API")
    parser.add_argument("--port", type=listen_port, default=8081, help="TCP port (default 8081; 0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="serve every .zip and every folder of DICOM files under this folder (recursive); "
                             "folders are zipped once into --cache-dir")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where zipped folders and the header cache go (default: <sample dir>/cache)")
    parser.add_argument("--samples", default=None,
                        help=f"comma list of sample CTs to serve ({','.join(SAMPLE_ALIASES)}); default: all of "
                             "them when there is no --data-dir, none otherwise")
    parser.add_argument("--sample-dir", type=Path, default=None,
                        help="where samples are generated and kept (default: $WEBVIEWER_DATA_DIR or "
                             "~/.cache/webviewer)")
    parser.add_argument("--rate", default="unlimited",
                        help="default archive rate: 100mbit, 40mbit, 1gbit, 5MB (bytes/s), a profile name "
                             f"({profiles}) or unlimited (default); ?rate= overrides it per request")
    parser.add_argument("--latency", default="0",
                        help="default delay before the first byte of an archive, in ms (default 0); ?latency= overrides it")
    parser.add_argument("--generate-samples", action="store_true",
                        help="(re)generate the sample CTs (all, or those of --samples) and exit")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def build_catalog(args: argparse.Namespace) -> Catalog:
    """The catalog the options describe."""
    catalog = Catalog()
    if args.data_dir is not None:
        cache = args.cache_dir or (args.sample_dir or default_data_dir()) / "cache"
        catalog = Catalog.from_data_dir(args.data_dir, cache_dir=cache)
    if args.samples is not None or args.data_dir is None:
        catalog = catalog.merged(Catalog.from_samples(args.samples, args.sample_dir))
    return catalog


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rate = parse_rate(args.rate)
        latency = parse_latency(args.latency)
        if args.samples is not None:
            sample_ids(args.samples)
    except ValueError as exc:
        parser.error(str(exc))
    if args.generate_samples:
        paths = ensure_samples(args.samples, args.sample_dir, force=True)
        for p in paths:
            print(p)
        return 0
    try:
        catalog = build_catalog(args)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    for entry in catalog.entries():
        log.info("CT %-32s %4d slices  %7.1f MB zip", entry.id, entry.slices, entry.zip_bytes / 1e6)
    if not len(catalog):
        log.warning("the catalog is empty: no DICOM found under %s", args.data_dir)
    log.info("rate %s, latency %.0f ms", format_rate(rate), latency)
    try:
        asyncio.run(serve(catalog, args.host, args.port, rate=rate, latency_ms=latency))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # port in use, bad host
        log.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


async def serve(catalog: Catalog, host: str, port: int, **kw) -> None:
    """Run the API until SIGINT/SIGTERM; print the base URL (with the real port) on stdout."""
    runner, base = await start_api_server(catalog, host, port, access_log=log, **kw)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(f"CT API on {base}/api/cts (Ctrl+C to stop)", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await runner.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
