"""Archive members as the unzip layer yields them, and the divert hook that streams one member to a sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Member:
    """One archive member: its bytes, or why it was skipped (bytes then None), or ``streamed`` to a sink."""

    name: str
    data: bytes | None
    skip_reason: str | None = None
    #: the member's bytes went to a divert sink as they were unzipped (see iter_stream_members)
    streamed: bool = False


class MemberSink(Protocol):
    """Takes one member's bytes in order while it unzips (a multi-frame file placed frame by frame)."""

    def feed(self, part: bytes) -> None: ...

    def close(self) -> None: ...


#: ``divert(name, head)``: a sink for this member, or None to keep it whole
Divert = Callable[[str, bytes], "MemberSink | None"]
#: bytes of a member unzipped before ``divert`` is asked (enough for a multi-frame file's NumberOfFrames)
DIVERT_PROBE_BYTES = 1 << 16


def divert_member(divert: Divert, name: str, parts: list[bytes]) -> MemberSink | None:
    """Ask ``divert`` with the bytes held so far; a sink gets them at once and ``parts`` is emptied."""
    head = parts[0] if len(parts) == 1 else b"".join(parts)
    sink = divert(name, head)
    if sink is not None:
        parts.clear()
        sink.feed(head)
    return sink
