"""Coverage-guided fuzzing with atheris (``make fuzz``; not in CI, not collected by pytest).

    python tests/fuzz/harness.py TARGET [libFuzzer options] CORPUS_DIR

TARGET is one of ``fuzz_targets.TARGETS``. The corpus folder is seeded (once) with the synthetic samples and,
where present, members of the real series in ../shared/data/real (small ones, so the fuzzer stays fast).
Any exception outside ``fuzz_targets.EXPECTED`` is a finding: libFuzzer writes ``crash-<sha1>`` with the input;
turn each into a regression test in tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: fuzz_targets, dicom_helpers

with atheris.instrument_imports(include=["webviewer", "zipfile", "pydicom"]):
    import fuzz_targets

REAL = HERE.parents[2] / "shared" / "data" / "real"
MAX_SEED_BYTES = 64 * 1024


def real_seeds(target: str) -> list[bytes]:
    """Small members of the real series, raw (DICOM targets) or zipped in threes (ZIP targets)."""
    files = sorted(p for p in REAL.glob("*/*") if p.is_file() and p.name != "SOURCE.md"
                   and p.stat().st_size <= MAX_SEED_BYTES)[:30]
    if target in ("dicom_header", "hu_decoder"):
        return [p.read_bytes() for p in files]
    if target.startswith("unzip") or target == "zip_directory":
        out = []
        for i in range(0, len(files), 3):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in files[i:i + 3]:
                    zf.writestr(p.name, p.read_bytes())
            out.append(buf.getvalue())
        return out
    return []


def seed_corpus(target: str, corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    samples = fuzz_targets.seeds()[target] + real_seeds(target)
    for data in samples:
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return len(samples)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in fuzz_targets.TARGETS:
        sys.exit(f"usage: {sys.argv[0]} TARGET [libFuzzer options] CORPUS_DIR; TARGET in "
                 f"{', '.join(fuzz_targets.TARGETS)}")
    target = sys.argv.pop(1)
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None:
        print(f"fuzz {target}: {seed_corpus(target, corpus)} seeds in {corpus}", flush=True)
    run = fuzz_targets.run_target

    def one_input(data: bytes) -> None:
        run(target, data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
