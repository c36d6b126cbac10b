"""Shared fixtures. Plain helpers live in realdata.py, so test modules import them from there."""

from __future__ import annotations

from pathlib import Path

import pytest
from realdata import REAL_SERIES, real_series_dir

from webviewer.orthanc.sources import register_with_engine
from webviewer.runtime import configure_runtime

configure_runtime()  # as the entry points do: malloc tuning, VTK's EGL window
register_with_engine()  # as the entry points do: Orthanc URLs open with the Orthanc sources


@pytest.fixture(params=sorted(REAL_SERIES))
def real_series(request) -> tuple[str, Path, int]:
    """Each real series: (name, folder, expected slice count)."""
    name = request.param
    return name, real_series_dir(name), REAL_SERIES[name]


# hypothesis: deterministic everywhere (fixed seed from each test's name, no example database on disk)
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("webviewer", derandomize=True, database=None, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("webviewer")

#: the atheris harness is run by `make fuzz`, never collected by pytest
collect_ignore = ["fuzz"]
