"""`webviewer-demo`: the viewer for a room of visitors, one session process each (wslink launcher + Apache)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from webviewer.argtypes import positive_int, tcp_port
from webviewer.deploy.sizing import default_sessions
from webviewer.deploy.supervisor import Demo, DemoOptions

log = logging.getLogger("webviewer.demo")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="webviewer-demo", description=__doc__)
    p.add_argument("--port", type=tcp_port, default=8080, help="the front door's port (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to bind (default 127.0.0.1; 0.0.0.0 serves everyone who can reach it)")
    p.add_argument("--sessions", type=positive_int, default=None,
                   help="at most this many visitors at once (default: free memory ÷ one session's budget)")
    p.add_argument("--idle-timeout", type=positive_int, default=120, metavar="SECONDS",
                   help="stop a session this long after its visitor has gone (default 120)")
    p.add_argument("--data-dir", default=None, help="serve the CTs (ZIPs / DICOM folders) in DIR")
    p.add_argument("--samples", default=None, help="samples to serve: tiny,medium,seed (default all)")
    p.add_argument("--api", default=None, metavar="URL", help="use this CT API instead of starting one")
    p.add_argument("--orthanc", default=None, metavar="URL",
                   help="also offer this Orthanc's series (credentials: WEBVIEWER_ORTHANC_USER/_PASSWORD/_TOKEN, "
                        "which every session inherits)")
    p.add_argument("--orthanc-only", action="store_true", help="only Orthanc's series; no CT API")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    """Check the arguments and say how many sessions, and why."""
    if args.orthanc_only and not args.orthanc:
        raise ValueError("--orthanc-only needs at least one --orthanc URL")
    if args.sessions is None:
        sizing = default_sessions()
        log.info("sessions: %s", sizing.explain())
        sessions = sizing.sessions
    else:
        sessions = args.sessions
        log.info("sessions: %d (--sessions)", sessions)
    session_args: list[str] = []
    if args.orthanc:
        session_args += ["--orthanc", args.orthanc]
    if args.orthanc_only:
        session_args.append("--orthanc-only")
    return DemoOptions(host=args.host, port=args.port, sessions=sessions, idle_timeout_s=args.idle_timeout,
                       api_url=args.api, data_dir=args.data_dir, samples=args.samples, session_args=session_args)


def run(demo: Demo, stop: threading.Event, started: threading.Event) -> int:
    """Start, serve until ``stop`` is set or a component dies, then stop everything."""
    try:
        demo.start()
        started.set()
        log.info("webviewer-demo ready at %s (%d sessions, idle timeout %d s); Ctrl+C stops it", demo.url,
                 demo.options.sessions, demo.options.idle_timeout_s)
        while not stop.wait(1.0):
            failed = demo.failed_component()
            if failed:
                log.error("%s stopped unexpectedly; stopping the demo (logs were in %s)", failed, demo.run_dir)
                return 1
        return 0
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.info("interrupted while starting")
        return 130
    finally:
        started.set()  # a signal during the cleanup must not interrupt it
        demo.stop()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: anyone who can reach this address can use the demo; it has no user "
                    "authentication", args.host)
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        if not started.is_set():  # still starting (e.g. generating samples): abort the start
            raise KeyboardInterrupt

    started = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return run(Demo(options), stop, started)


if __name__ == "__main__":
    raise SystemExit(main())
