"""Synthetic CT series: an anatomically plausible chest phantom written as valid CT Image Storage files.

``write_series`` is the pydicom generator used by the sample catalog and by tests of every area (options for
transfer syntax, shuffled file names, gantry tilt, explicit positions with gaps or duplicates).
``ensure_samples`` generates the named samples on first use into the data folder and reuses them after that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydicom.uid import (
    generate_uid,
)

from .dataset import series_template, slice_dataset
from .phantom import (  # re-exported: the generator's public API lives here
    COMPRESSED_SYNTAXES,
    TRANSFER_SYNTAXES,
    SeriesSpec,
    iter_slice_hu,
    phantom_hu,
    spec_with,
    stored_pixels,
)

__all__ = [
    "COMPRESSED_SYNTAXES", "SAMPLES", "TRANSFER_SYNTAXES", "SampleInfo", "SeriesSpec", "default_data_dir",
    "ensure_samples", "iter_slice_hu", "phantom_hu", "read_sample_meta", "sample_ids", "sample_paths", "spec_with",
    "stored_pixels", "write_series", "zip_folder",
]

log = logging.getLogger(__name__)

#: bump when the phantom or the file layout changes, so cached samples are regenerated
GENERATOR_VERSION = 3

def _file_names(n: int, shuffle: bool, seed: int, prefix: str) -> list[str]:
    if not shuffle:
        return [f"{prefix}{k + 1:04d}.dcm" for k in range(n)]
    # no zero padding and a permuted numbering, as in real exports: name order is not slice order
    perm = list(range(1, n + 1))
    random.Random(seed).shuffle(perm)
    return [f"{prefix}{p}" for p in perm]


def write_series(
    folder: str | os.PathLike,
    spec: SeriesSpec,
    *,
    shuffle_names: bool = True,
    progress: bool = False,
    name_prefix: str = "IM",
) -> list[Path]:
    """Write one series as DICOM files into ``folder`` (created if needed); return the paths in slice order.

    With ``shuffle_names`` the files are named ``IM<n>`` with a permuted, unpadded ``n`` (name order is not slice
    order), else ``IM0001.dcm``... Use a different ``name_prefix`` to write a second series into the same folder;
    an existing file is never overwritten (FileExistsError).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = spec.study_uid or generate_uid()
    series_uid = spec.series_uid or generate_uid()
    frame_uid = generate_uid(entropy_srcs=[series_uid, "frame"])
    template = series_template(spec, study_uid, series_uid, frame_uid)
    n = spec.n_slices
    names = _file_names(n, shuffle_names, spec.seed, name_prefix)
    paths: list[Path] = []
    indices: Iterable[int] = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"writing {folder.name}", unit="slice", leave=False)
    for k in indices:
        path = folder / names[k]
        if path.exists():
            raise FileExistsError(f"{path} exists; write another series with a different name_prefix")
        ds = slice_dataset(spec, template, k, series_uid)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def zip_folder(
    folder: str | os.PathLike,
    zip_path: str | os.PathLike,
    *,
    shuffle: bool = True,
    seed: int = 0,
    recursive: bool = True,
    files: Iterable[Path] | None = None,
    compresslevel: int = 6,
) -> Path:
    """ZIP every file under ``folder`` (or the given ``files``; relative names) with deflate into ``zip_path``.

    Member order is shuffled (not name or slice order), as in real exports. Written to a temporary file and
    renamed, so an interrupted run leaves no partial ZIP behind.
    """
    folder, zip_path = Path(folder), Path(zip_path)
    if files is None:
        found = folder.rglob("*") if recursive else folder.iterdir()
        files = [p for p in found if p.is_file()]
    files = sorted(files)
    if shuffle:
        random.Random(seed).shuffle(files)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".part", dir=zip_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED,
                                                       compresslevel=compresslevel) as zf:
            for path in files:
                zf.write(path, path.relative_to(folder).as_posix())
        os.chmod(tmp, 0o644)
        os.replace(tmp, zip_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return zip_path


# ------------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class SampleInfo:
    """A named sample CT of the embedded catalog."""

    id: str
    name: str
    description: str
    spec: SeriesSpec = field(hash=False, compare=False)
    #: written as one Enhanced CT (multi-frame) file instead of one file per slice
    enhanced: bool = False


SAMPLES: dict[str, SampleInfo] = {
    s.id: s
    for s in (
        SampleInfo(
            "sample-tiny", "Sample chest CT (tiny)", "Synthetic chest phantom, 64x64x48, for tests",
            SeriesSpec(rows=64, columns=64, slices=48, pixel_spacing=(5.5, 5.5), slice_spacing=5.0, seed=1,
                       description="Synthetic chest CT tiny", series_uid="1.2.826.0.1.3680043.8.498.1001.1",
                       study_uid="1.2.826.0.1.3680043.8.498.1001.0"),
        ),
        SampleInfo(
            "sample-medium", "Sample chest CT (medium)", "Synthetic chest phantom, 256x256x200",
            SeriesSpec(rows=256, columns=256, slices=200, pixel_spacing=(1.4, 1.4), slice_spacing=1.5, seed=2,
                       description="Synthetic chest CT medium", series_uid="1.2.826.0.1.3680043.8.498.1002.1",
                       study_uid="1.2.826.0.1.3680043.8.498.1002.0"),
        ),
        SampleInfo(
            "sample-seed", "Sample chest CT (seed size)", "Synthetic chest phantom, 512x512x380, about 200 MB",
            SeriesSpec(rows=512, columns=512, slices=380, pixel_spacing=(0.7, 0.7), slice_spacing=1.0, seed=3,
                       description="Synthetic chest CT seed size", series_uid="1.2.826.0.1.3680043.8.498.1003.1",
                       study_uid="1.2.826.0.1.3680043.8.498.1003.0"),
        ),
        SampleInfo(
            "sample-seed-enhanced", "Sample chest CT (seed size, Enhanced CT)",
            "The seed-sized phantom as one Enhanced CT file of 380 frames (multi-frame), about 200 MB",
            SeriesSpec(rows=512, columns=512, slices=380, pixel_spacing=(0.7, 0.7), slice_spacing=1.0, seed=3,
                       description="Synthetic chest CT seed size, Enhanced CT",
                       series_uid="1.2.826.0.1.3680043.8.498.1003.2", study_uid="1.2.826.0.1.3680043.8.498.1003.0"),
            enhanced=True,
        ),
    )
}

#: short names (CLI ``--samples tiny,medium,seed``) to ids
SAMPLE_ALIASES = {"tiny": "sample-tiny", "medium": "sample-medium", "seed": "sample-seed",
                  "seed-enhanced": "sample-seed-enhanced"}


def default_data_dir() -> Path:
    """``$WEBVIEWER_DATA_DIR`` or ``~/.cache/webviewer``."""
    env = os.environ.get("WEBVIEWER_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "webviewer"


def sample_ids(names: Iterable[str] | str | None = None) -> list[str]:
    """Resolve ``tiny``/``sample-tiny``/comma lists to sample ids (all samples if None)."""
    if names is None:
        return list(SAMPLES)
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    ids = []
    for raw in names:
        name = raw.strip()
        sid = SAMPLE_ALIASES.get(name, name)
        if sid not in SAMPLES:
            raise ValueError(f"unknown sample {name!r}; choose from {', '.join(SAMPLE_ALIASES)}")
        ids.append(sid)
    return ids


def sample_paths(sample_id: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(zip path, metadata json path) of a sample in the data folder."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    base = root / "samples"
    return base / f"{sample_id}.zip", base / f"{sample_id}.json"


def read_sample_meta(sample_id: str, data_dir: str | os.PathLike | None = None) -> dict | None:
    """The metadata written with a complete sample, or None if the sample is missing, partial or outdated."""
    zip_path, meta_path = sample_paths(sample_id, data_dir)
    try:
        meta = json.loads(meta_path.read_text())
        size = zip_path.stat().st_size
    except (OSError, ValueError):
        return None
    if meta.get("generator_version") != GENERATOR_VERSION or meta.get("zip_bytes") != size:
        return None
    return meta


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _generate_sample(info: SampleInfo, zip_path: Path, meta_path: Path, progress: bool) -> None:
    spec = info.spec
    with tempfile.TemporaryDirectory(prefix=f".{info.id}.", dir=zip_path.parent) as tmp:
        folder = Path(tmp) / info.id
        if info.enhanced:
            from .enhanced import write_enhanced_series

            paths = [write_enhanced_series(folder, spec, progress=progress)]
        else:
            paths = write_series(folder, spec, shuffle_names=True, progress=progress)
        dicom_bytes = sum(p.stat().st_size for p in paths)
        # deflate level 3: as small as level 6 on noisy CT (within 0.5 %), three times faster
        zip_folder(folder, zip_path, shuffle=True, seed=spec.seed, compresslevel=3)
    meta = {
        "id": info.id,
        "name": info.name,
        "description": info.description,
        "modality": "CT",
        "slices": spec.n_slices,
        "frames": spec.n_slices if info.enhanced else 0,
        "rows": spec.rows,
        "columns": spec.columns,
        "dicom_bytes": dicom_bytes,
        "zip_bytes": zip_path.stat().st_size,
        "generator_version": GENERATOR_VERSION,
        "spec": {k: v for k, v in asdict(spec).items() if k != "positions"},
    }
    tmp_meta = meta_path.with_name(meta_path.name + ".part")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, meta_path)  # the metadata file marks the sample as complete


def ensure_samples(
    names: Iterable[str] | str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Generate the named samples on first use (tqdm bar on stderr) and return their ZIP paths.

    A sample is ``<data_dir>/samples/<id>.zip`` plus ``<id>.json`` (metadata, written last). Generation goes to a
    temporary folder and is renamed into place, so an interrupted run is never reused; a file lock keeps two
    processes from generating the same sample at once. ``force`` regenerates.
    """
    out = []
    for sid in sample_ids(names):
        info = SAMPLES[sid]
        zip_path, meta_path = sample_paths(sid, data_dir)
        with _lock(zip_path.with_name(f".{sid}.lock")):
            if force or read_sample_meta(sid, data_dir) is None:
                log.info("generating %s into %s", sid, zip_path)
                with contextlib.suppress(FileNotFoundError):
                    meta_path.unlink()
                _generate_sample(info, zip_path, meta_path, progress)
            out.append(zip_path)
    return out
