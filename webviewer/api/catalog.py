"""The CT catalog: which studies the API serves, each as one ZIP on disk.

Sources are ZIP files and folders of DICOM files under a data folder (nested, any file names), or the generated
samples. A folder is zipped once (deflate, shuffled member order) into a cache. Slices are counted from DICOM
headers; the counts are cached in a JSON file keyed by size/mtime, so a restart is instant.
Ids are slugs looked up in a dict; they are never joined onto a path.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import struct
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pydicom

from .samples import SAMPLES, default_data_dir, ensure_samples, read_sample_meta, sample_ids, zip_folder

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: multi-frame files count their frames
PROBE_BYTES = 64 * 1024
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00", b"\x7f\xe0\x00\x10")


@dataclass
class CatalogEntry:
    """One CT the API serves. ``zip_path`` stays on the server (not in :meth:`to_json`)."""

    id: str
    name: str
    modality: str
    slices: int
    rows: int
    columns: int
    dicom_bytes: int
    zip_bytes: int
    description: str
    zip_path: Path
    source: str = ""  # "sample", "zip" or "folder"
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """JSON object of the API (every field but ``zip_path``)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("zip_path", "extra")}
        data.update(self.extra)
        return data


@dataclass
class SliceProbe:
    """What the catalog needs from one image slice's header."""

    rows: int
    columns: int
    modality: str
    series_uid: str
    description: str
    #: frames of a multi-frame file (Enhanced CT), 1 for a classic slice
    frames: int = 1


def probe_dicom(read: Callable[[int], bytes], size: int) -> SliceProbe | None:
    """Probe one file: an image slice (header with Rows and pixel data) or None (DICOMDIR, text, broken...).

    ``read(n)`` returns the first ``n`` bytes (n < 0: all). Only the header prefix is parsed; the whole file is
    read only when its header is longer than ``PROBE_BYTES``.

    This is not the engine's header reader (``webviewer.loading.dicom``): the API may not import engine code (the
    layer contract), and the catalog needs only what pydicom's own ``stop_before_pixels`` read gives (Rows,
    Columns, series, frames) from a prefix of each file, once per data folder, where the engine needs the pixel
    offset, the geometry and the rescale of every slice of every load, with a scanner tuned for that.
    """
    for limit in (PROBE_BYTES, 1 << 20, 16 << 20, -1):  # a multi-frame header can run past 64 KiB
        data = read(limit)
        if data[128:132] != b"DICM":  # no preamble and DICM prefix: not a DICOM file
            return None
        partial = limit > 0 and size > len(data)
        fp = io.BytesIO(data)
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - a corrupt header is "not an image", never a catalog crash
            if partial:
                continue  # the header may just be longer than the prefix
            log.debug("unreadable DICOM header", exc_info=True)
            return None
        meta = getattr(ds, "file_meta", None)
        if meta is not None and meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP_CLASS:
            return None
        pos = fp.tell()
        has_pixels = data[pos : pos + 4] in _PIXEL_TAGS
        if not has_pixels:
            if partial:
                continue
            return None
        if "Rows" not in ds or "Columns" not in ds:
            return None
        description = str(ds.get("SeriesDescription") or ds.get("StudyDescription") or "")
        return SliceProbe(int(ds.Rows), int(ds.Columns), str(ds.get("Modality", "") or "OT"),
                          str(ds.get("SeriesInstanceUID", "")), description.strip(),
                          max(1, int(ds.get("NumberOfFrames") or 1)))
    return None


def _probe_path(path: Path) -> SliceProbe | None:
    try:
        size = path.stat().st_size

        def read(n: int) -> bytes:
            with open(path, "rb") as fh:
                return fh.read(n)

        return probe_dicom(read, size)
    except OSError:
        return None


def _probe_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> SliceProbe | None:
    def read(n: int) -> bytes:
        with zf.open(info) as fh:
            return fh.read(n)

    try:
        return probe_dicom(read, info.file_size)
    except Exception as exc:  # noqa: BLE001 - bad CRC, corrupt deflate (zlib.error), encryption: not a slice
        log.debug("unreadable member %s: %r", info.filename, exc)
        return None


def summarize(probes: Iterable[tuple[SliceProbe, int]]) -> dict | None:
    """Catalog fields from (probe, file size) of every image slice; None if there are none.

    ``slices`` counts the largest series (what a loader shows; a multi-frame file counts its frames, and
    ``frames`` says how many of them came in multi-frame files); ``images`` counts every image slice or frame.
    """
    probes = list(probes)
    if not probes:
        return None
    by_series: Counter[str] = Counter()
    for p, _ in probes:
        by_series[p.series_uid] += p.frames
    main_uid, count = by_series.most_common(1)[0]
    main = [p for p, _ in probes if p.series_uid == main_uid]
    rows, columns = Counter((p.rows, p.columns) for p in main).most_common(1)[0][0]
    return {
        "modality": Counter(p.modality for p in main).most_common(1)[0][0],
        "slices": count,
        "rows": rows,
        "columns": columns,
        "dicom_bytes": sum(size for _, size in probes),
        "series_description": next((p.description for p in main if p.description), ""),
        "series": len(by_series),
        "images": sum(by_series.values()),
        "frames": sum(p.frames for p in main if p.frames > 1),
    }


def slugify(text: str) -> str:
    """Lowercase ``a-z0-9-`` slug of a relative path."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "ct"


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


class Catalog:
    """CT entries by id. ``get`` is a dict lookup: ids never touch the file system."""

    def __init__(self, entries: Iterable[CatalogEntry] = ()) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: CatalogEntry) -> CatalogEntry:
        """Add an entry; a clashing id gets a ``-2``, ``-3``... suffix."""
        base, n = entry.id, 2
        while entry.id in self._entries:
            entry.id = f"{base}-{n}"
            n += 1
        self._entries[entry.id] = entry
        return entry

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries.values())

    def get(self, ct_id: str) -> CatalogEntry | None:
        return self._entries.get(ct_id) if isinstance(ct_id, str) else None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries())

    def __contains__(self, ct_id: object) -> bool:
        return isinstance(ct_id, str) and ct_id in self._entries

    def merged(self, other: Catalog) -> Catalog:
        """A catalog with this one's entries then ``other``'s."""
        return Catalog([*self.entries(), *other.entries()])

    # -------------------------------------------------------------------------------------------- builders
    @classmethod
    def from_samples(
        cls, names: Iterable[str] | str | None = None, data_dir: str | os.PathLike | None = None,
        *, progress: bool = True,
    ) -> Catalog:
        """The generated samples (generated on first use into ``data_dir``)."""
        ids = sample_ids(names)
        paths = ensure_samples(ids, data_dir, progress=progress)
        entries = []
        for sid, zip_path in zip(ids, paths, strict=True):
            meta = read_sample_meta(sid, data_dir) or {}
            info = SAMPLES[sid]
            entries.append(CatalogEntry(
                id=sid, name=info.name, modality="CT", slices=meta.get("slices", info.spec.n_slices),
                rows=info.spec.rows, columns=info.spec.columns, dicom_bytes=meta.get("dicom_bytes", 0),
                zip_bytes=zip_path.stat().st_size, description=info.description, zip_path=zip_path,
                source="sample", extra={"frames": meta.get("frames", 0)},
            ))
        return cls(entries)

    @classmethod
    def from_data_dir(
        cls, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, *, compresslevel: int = 3,
    ) -> Catalog:
        """Every ``.zip`` and every folder directly holding DICOM image files under ``path`` (recursive).

        Folders are zipped once into ``cache_dir`` (default ``<data dir>/cache``); header probes are cached in
        ``cache_dir/catalog.json``. Unreadable ZIPs and folders without image slices are skipped with a log line.
        Deflate level 3 compresses CT as well as level 6 (within 0.5 %) in a third of the time.
        """
        root = Path(path).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist")
        cache = Path(cache_dir).resolve() if cache_dir is not None else default_data_dir().resolve() / "cache"
        builder = _Builder(root, cache, compresslevel)
        return cls(builder.build())


class _Builder:
    """Walks a data folder; keeps the JSON probe cache."""

    def __init__(self, root: Path, cache: Path, compresslevel: int = 3) -> None:
        self.compresslevel = compresslevel
        self.root = root
        self.cache = cache
        self.cache_file = cache / "catalog.json"
        self.old = self._load_cache()
        self.new: dict[str, dict] = {}

    def _load_cache(self) -> dict:
        try:
            data = json.loads(self.cache_file.read_text())
            if data.get("version") == CACHE_VERSION:
                return data.get("items", {})
        except (OSError, ValueError):
            pass
        return {}

    def _save_cache(self) -> None:
        items = {**self.old, **self.new}
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_name(f".catalog.{os.getpid()}.json")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "items": items}, indent=1))
            os.replace(tmp, self.cache_file)
        except OSError as exc:
            log.warning("could not write the catalog cache %s: %s", self.cache_file, exc)

    def _cached(self, key: str, signature: str) -> dict | None:
        item = self.old.get(key)
        if item and item.get("signature") == signature:
            return item
        return None

    def build(self) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d) and (here / d).resolve() != self.cache)
            files = sorted(here / f for f in filenames if not _is_hidden(f))
            folder_files = []
            for f in files:
                if f.suffix.lower() == ".zip":
                    entry = self._zip_entry(f)
                    if entry:
                        entries.append(entry)
                elif f.is_file():
                    folder_files.append(f)
            if folder_files:
                entry = self._folder_entry(here, folder_files)
                if entry:
                    entries.append(entry)
        self._save_cache()
        return entries

    def _rel(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return self.root.name if rel == "." else rel

    def _zip_entry(self, path: Path) -> CatalogEntry | None:
        st = path.stat()
        key, signature = str(path), f"zip:{st.st_size}:{st.st_mtime_ns}"
        item = self._cached(key, signature)
        if item is None:
            try:
                with zipfile.ZipFile(path) as zf:
                    probes = []
                    for info in zf.infolist():
                        if info.filename.endswith("/") or not info.filename or any(_is_hidden(p) for p in info.filename.split("/")):
                            continue
                        probe = _probe_member(zf, info)
                        if probe:
                            probes.append((probe, info.file_size))
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, struct.error, EOFError) as exc:
                log.warning("skipping %s: not a readable ZIP (%s)", path, exc)
                return None
            item = {"signature": signature, "summary": summarize(probes)}
        self.new[key] = item
        summary = item["summary"]
        if not summary:
            log.info("skipping %s: no DICOM image slices", path)
            return None
        rel = self._rel(path)
        return self._entry(slugify(rel[:-4]), path.stem, rel, summary, path, st.st_size, "zip")

    def _folder_entry(self, folder: Path, files: list[Path]) -> CatalogEntry | None:
        stats = [(f.name, f.stat()) for f in files]
        digest = hashlib.sha1(
            "\n".join(f"{n}:{s.st_size}:{s.st_mtime_ns}" for n, s in stats).encode()
        ).hexdigest()
        key, signature = str(folder), f"folder:{digest}"
        item = self._cached(key, signature)
        if item is None:
            probes = []
            for f, (_, st) in zip(files, stats, strict=True):
                probe = _probe_path(f)
                if probe:
                    probes.append((probe, st.st_size))
            item = {"signature": signature, "summary": summarize(probes), "zip": None}
        summary = item["summary"]
        if not summary:
            self.new[key] = item
            return None
        rel = self._rel(folder)
        slug = slugify(rel)
        zip_path = self.cache / "zips" / f"{slug}-{digest[:12]}.zip"
        if item.get("zip") != str(zip_path) or not zip_path.is_file() or zip_path.stat().st_size != item.get(
            "zip_bytes"
        ):
            log.info("zipping %s (%d files) into %s", folder, len(files), zip_path)
            for stale in zip_path.parent.glob(f"{slug}-*.zip"):
                if stale != zip_path:
                    stale.unlink(missing_ok=True)
            zip_folder(folder, zip_path, shuffle=True, seed=int(digest[:8], 16), files=files,
                       compresslevel=self.compresslevel)
            item = {**item, "zip": str(zip_path), "zip_bytes": zip_path.stat().st_size}
        self.new[key] = item
        return self._entry(slug, folder.name, rel, summary, zip_path, item["zip_bytes"], "folder")

    @staticmethod
    def _entry(slug: str, name: str, rel: str, summary: dict, zip_path: Path, zip_bytes: int,
               source: str) -> CatalogEntry:
        desc = summary.get("series_description") or ""
        description = f"{desc} ({rel})" if desc else rel
        return CatalogEntry(
            id=slug, name=name, modality=summary["modality"], slices=summary["slices"], rows=summary["rows"],
            columns=summary["columns"], dicom_bytes=summary["dicom_bytes"], zip_bytes=zip_bytes,
            description=description, zip_path=zip_path, source=source,
            extra={"series": summary["series"], "images": summary["images"], "frames": summary.get("frames", 0)},
        )
