"""Where the real CT series live, and how missing prerequisites are handled (skip locally, fail in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA_DIR = Path(os.environ.get("WEBVIEWER_REAL_DATA", Path(__file__).resolve().parents[2] / "shared/data/real"))

REAL_SERIES = {
    # name: expected number of image slices
    "slicer-cthead-64px": 93,
    "dcmqa-philips-headphantom-1mm": 140,
    "dcmqa-ge-head-gantrytilt": 28,
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip locally when something is missing; fail in CI, where a skip would hide it."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing prerequisites are failures)")
    pytest.skip(reason)


def real_series_dir(name: str) -> Path:
    """Path of one real CT series in ../shared/data/real, read in place (never copied)."""
    path = REAL_DATA_DIR / name
    require(path.is_dir(), f"real CT series {name!r} not found at {path}")
    return path
