"""How closely the CT API's throttle holds its rate: ``python -m webviewer.bench.throttle [RATE ...] [--bytes N]``.

It serves a blob through the real archive endpoint on 127.0.0.1 and times the download.
"""

from __future__ import annotations

import asyncio
import time

from webviewer.api.throttle import format_rate, parse_rate


async def measure_throttle_async(rate: float | None, nbytes: int = 10_000_000) -> dict:
    """Serve ``nbytes`` through the real archive endpoint at ``rate`` and time the download on 127.0.0.1."""
    import tempfile
    from pathlib import Path

    import aiohttp

    from webviewer.api.app import start_api_server
    from webviewer.api.catalog import Catalog, CatalogEntry

    with tempfile.TemporaryDirectory(prefix="webviewer-bench-") as tmp:
        path = Path(tmp) / "blob.zip"
        with open(path, "wb") as fh:
            left = nbytes
            while left:
                n = min(left, 1 << 20)
                fh.write(b"\0" * n)
                left -= n
        entry = CatalogEntry(id="blob", name="blob", modality="OT", slices=0, rows=0, columns=0, dicom_bytes=0,
                             zip_bytes=nbytes, description="throttle benchmark", zip_path=path)
        runner, base = await start_api_server(Catalog([entry]), rate=rate)
        try:
            async with aiohttp.ClientSession() as session:
                t0 = time.perf_counter()
                first = None
                got = 0
                async with session.get(f"{base}/api/cts/blob/archive") as resp:
                    resp.raise_for_status()
                    async for chunk in resp.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                        got += len(chunk)
                total = time.perf_counter() - t0
        finally:
            await runner.cleanup()
    measured = got / total if total > 0 else float("inf")
    return {
        "rate_bytes_per_s": rate,
        "bytes": got,
        "seconds": total,
        "measured_bytes_per_s": measured,
        "error": None if rate is None else measured / rate - 1.0,
    }


def measure_throttle(rate: float | str | None, nbytes: int = 10_000_000) -> dict:
    """Blocking wrapper of :func:`measure_throttle_async`; ``rate`` may be a string like ``40mbit``."""
    return asyncio.run(measure_throttle_async(parse_rate(rate), nbytes))


def main(argv: list[str] | None = None) -> int:
    """Print the measured throttle accuracy for each rate."""
    import argparse

    parser = argparse.ArgumentParser(description="Measure the archive endpoint's throttle accuracy on 127.0.0.1.")
    parser.add_argument("rates", nargs="*", default=["100mbit", "40mbit", "30mbit"], help="rates to measure")
    parser.add_argument("--bytes", type=int, default=10_000_000, help="transfer size (default 10 MB)")
    args = parser.parse_args(argv)
    for text in args.rates:
        r = measure_throttle(text, args.bytes)
        err = "" if r["error"] is None else f"  error {r['error'] * 100:+.2f} %"
        print(f"{text:>10}: {r['bytes']} B in {r['seconds']:.3f} s = {format_rate(r['measured_bytes_per_s'])}{err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
