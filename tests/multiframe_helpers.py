"""Enhanced CT files for the tests, written with pydicom from classic slices (webviewer.api.enhanced)."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from webviewer.api.enhanced import enhanced_from_slices


def classic_slices(members: list[tuple[str, bytes]]) -> list[Dataset]:
    """The image slices among (name, bytes) members, read by pydicom (non-images left out)."""
    out = []
    for _name, data in members:
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - DICOMDIR, text: not slices
            continue
        if "PixelData" in ds:
            out.append(ds)
    return out


def folder_slices(folder: Path) -> list[Dataset]:
    return classic_slices([(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()])


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def rle(ds: Dataset, *, fragments_per_frame: int = 1, bot: bool = False) -> Dataset:
    """``ds`` compressed to RLE Lossless (one fragment per frame), or re-encapsulated as asked."""
    ds.compress(RLELossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    if fragments_per_frame != 1 or bot:
        frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
        ds.PixelData = encapsulate(frames, fragments_per_frame=fragments_per_frame, has_bot=bot)
    return ds


def enhanced_bytes(slices: list[Dataset], *, seed: int = 5, syntax: str = "native", **kw) -> bytes:
    """One Enhanced CT file of ``slices`` (frames shuffled by ``seed``), native or RLE."""
    ds = enhanced_from_slices(slices, shuffle_seed=seed, **kw)
    if syntax == "rle":
        ds = rle(ds)
    return to_bytes(ds)
