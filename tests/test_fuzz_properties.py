"""Property tests (issue 13): any bytes reaching a parser either load or raise one of the project's errors,
within the memory limit. Inputs are mutated valid samples and raw bytes; the profile in conftest is derandomized.
"""

from __future__ import annotations

import pytest
from fuzz_targets import LIMITS, MEMORY_SLACK, TARGETS, peak_above, run_target, seeds
from hypothesis import given
from hypothesis import strategies as st

SEEDS = seeds()


@st.composite
def mutated(draw, samples: list[bytes]) -> bytes:
    """A valid sample with a few byte flips, cuts, insertions and 16/32-bit field overwrites."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(("flip", "cut", "insert", "u16", "u32")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op in ("u16", "u32"):
            width = 2 if op == "u16" else 4
            value = draw(st.sampled_from((0, 1, 0x7F, 0xFF, 0xFFFF, 0xFFFFFFFF, 46000)))
            data[pos:pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    return bytes(data)


def inputs(name: str):
    return st.one_of(mutated(SEEDS[name]), st.binary(max_size=300))


def check(name: str, data: bytes) -> None:
    with peak_above() as peak:
        run_target(name, data)
    assert peak[0] < LIMITS.max_volume_bytes + MEMORY_SLACK, f"{name}: peak {peak[0]} B for {len(data)} B"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_load(name):
    for data in SEEDS[name]:
        TARGETS[name](data)  # valid inputs raise nothing


@given(data=inputs("zip_directory"))
def test_zip_directory_reader(data):
    check("zip_directory", data)


@given(data=inputs("unzip_stream"))
def test_stream_unzip(data):
    check("unzip_stream", data)


@given(data=inputs("unzip_directory"))
def test_directory_unzip(data):
    check("unzip_directory", data)


@given(data=inputs("unzip_batch"))
def test_batch_unzip(data):
    check("unzip_batch", data)


@given(data=inputs("dicom_header"))
def test_dicom_header_scanner(data):
    check("dicom_header", data)


@given(data=inputs("hu_decoder"))
def test_hu_decoder(data):
    check("hu_decoder", data)


@given(data=inputs("multipart"))
def test_multipart_parser(data):
    check("multipart", data)


@given(text=st.one_of(st.text(max_size=60), st.from_regex(r"\Abytes\s?=\s?\d{0,30}\s?-\s?\d{0,30}\Z")))
def test_range_parser(text):
    check("range", text.encode("utf-8", "surrogatepass"))
