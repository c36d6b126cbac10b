"""Safety limits for a load, checked before anything is allocated."""

from __future__ import annotations

from dataclasses import dataclass

from webviewer.errors import LimitExceededError

GiB = 1024**3
MiB = 1024**2


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
