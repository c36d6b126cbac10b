"""Safety limits for a load, checked before anything is allocated."""

from __future__ import annotations

from dataclasses import dataclass

from webviewer.errors import LimitExceededError

GiB = 1024**3
MiB = 1024**2

RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
#: slack for headers, offset tables and padding in the expansion bound (bytes of output)
_EXPANSION_SLACK = 64 * 1024


def max_decoded_bytes(transfer_syntax: str, encoded_bytes: int, bytes_per_sample: int) -> int | None:
    """The most pixel bytes ``encoded_bytes`` of this syntax can decode to, where the format bounds it, else None.

    RLE (PackBits): a 2-byte replicate run gives at most 128 bytes, so 64x. Lossless JPEG codes every sample
    with a Huffman code of at least one bit, so 8 samples per byte (2x margin). JPEG-LS and JPEG 2000 have run
    modes without such a bound: only the volume limit applies to them.
    """
    if transfer_syntax == RLE_LOSSLESS:
        return 64 * encoded_bytes + _EXPANSION_SLACK
    if transfer_syntax in JPEG_LOSSLESS:
        return 2 * 8 * bytes_per_sample * encoded_bytes + _EXPANSION_SLACK
    return None


def check_pixels(name: str, rows: int, columns: int, *, frames: int = 1, bytes_per_sample: int = 2,
                 samples: int = 1, limit: int, encoded_bytes: int | None = None, transfer_syntax: str = "",
                 series_shape: tuple[int, int] | None = None) -> int:
    """Check a slice's (or a multi-frame object's) pixel size before any decoder, frame header or buffer is
    allocated; returns the bytes it decodes to.

    Rows x Columns x frames x samples x bytes per sample must fit ``limit`` (what is left of max_volume_bytes),
    and, for syntaxes whose expansion is bounded, follow from ``encoded_bytes`` (a 465-byte file cannot hold a
    46000x46000 slice). ``series_shape``: the shape the series' first slice set; a slice larger than it that
    would not fit next to it is refused the same way. Raises LimitExceededError.
    """
    dims = (rows, columns, frames, samples, bytes_per_sample)
    if any(not isinstance(v, int) or v < 1 for v in dims):
        raise LimitExceededError(f"{name}: pixel dimensions {dims} are not positive whole numbers.")
    need = rows * columns * frames * samples * bytes_per_sample
    if need > limit:
        shape = f"{frames} frames of {columns}x{rows}" if frames > 1 else f"a {columns}x{rows} slice"
        what = "" if series_shape in (None, (rows, columns)) else f" (the series' slices are {series_shape[1]}x{series_shape[0]})"
        raise LimitExceededError(
            f"{name}: {shape}{what} need{'s' if frames == 1 else ''} {_fmt(need)}, above the "
            f"{_fmt(max(limit, 0))} max_volume_bytes leaves for it. Raise max_volume_bytes if you trust the source "
            "and have the memory."
        )
    if encoded_bytes is not None:
        bound = max_decoded_bytes(transfer_syntax, encoded_bytes, bytes_per_sample)
        if bound is not None and need > bound:
            raise LimitExceededError(
                f"{name}: the header claims {_fmt(need)} of pixels, but {encoded_bytes} bytes of this compressed "
                f"format can hold at most {_fmt(bound)}: the file is corrupt or hostile."
            )
    return need


@dataclass
class Limits:
    """Configurable safety limits; the defaults fit a large CT study on a workstation."""

    max_archive_bytes: int = 4 * GiB
    max_member_bytes: int = 512 * MiB
    #: streaming modes hold one member whole while it unzips; a larger member makes the load fall back to batch
    max_stream_member_bytes: int = 256 * MiB
    max_total_bytes: int = 8 * GiB
    #: uncompressed / compressed; DICOM CT compresses 2-5x, a ZIP bomb 1000x
    max_compression_ratio: float = 200.0
    #: the ratio check only applies once this many uncompressed bytes were produced
    ratio_check_min_bytes: int = 16 * MiB
    max_members: int = 50_000
    max_volume_bytes: int = 4 * GiB

    def check_archive(self, nbytes: int) -> None:
        if nbytes > self.max_archive_bytes:
            raise LimitExceededError(
                f"The archive is {_fmt(nbytes)}, above the limit of {_fmt(self.max_archive_bytes)}. "
                "Raise max_archive_bytes if you trust the source."
            )

    def check_member(self, name: str, nbytes: int) -> None:
        if nbytes > self.max_member_bytes:
            raise LimitExceededError(
                f"The member {name!r} unzips to more than {_fmt(self.max_member_bytes)} "
                f"({_fmt(nbytes)} so far). Raise max_member_bytes if you trust the source."
            )

    def check_total(self, nbytes: int) -> None:
        if nbytes > self.max_total_bytes:
            raise LimitExceededError(
                f"The archive unzips to more than {_fmt(self.max_total_bytes)}. "
                "Raise max_total_bytes if you trust the source."
            )

    def check_members(self, count: int) -> None:
        if count > self.max_members:
            raise LimitExceededError(
                f"The archive holds more than {self.max_members} members. Raise max_members if you trust the source."
            )

    def check_ratio(self, uncompressed: int, compressed: int) -> None:
        """Raise on a ZIP bomb: far more output than the input can plausibly hold."""
        if uncompressed < self.ratio_check_min_bytes:
            return
        ratio = uncompressed / max(compressed, 1)
        if ratio > self.max_compression_ratio:
            raise LimitExceededError(
                f"The archive expands {ratio:.0f}x (limit {self.max_compression_ratio:.0f}x): it looks like a ZIP bomb. "
                "Raise max_compression_ratio if you trust the source."
            )

    def check_volume(self, nbytes: int) -> None:
        if nbytes > self.max_volume_bytes:
            raise LimitExceededError(
                f"The volume needs {_fmt(nbytes)}, above the limit of {_fmt(self.max_volume_bytes)}. "
                "Raise max_volume_bytes if you have the memory."
            )


def _fmt(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes} B"
