"""The app's state, as dataclasses: each field is one trame state key of the same name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from webviewer.api.throttle import PROFILES
from webviewer.loading.result import LoadMode
from webviewer.rendering.orientation import SLICE_PANES  # noqa: F401 - the app's 2D panes, re-exported

MODES = tuple(m.value for m in LoadMode)
NETWORKS = tuple(PROFILES)  # the CT API's network profiles, in their order
WL_PRESETS = ("soft-tissue", "lung", "bone", "brain", "auto")
VR_PRESETS = ("CT-Bone", "CT-Soft-Tissue", "CT-MIP")
PANES = ("axial", "3d", "sagittal", "coronal")

#: the states each mode passes through, in order (issue 3); error/cancelled can end any of them
MODE_STEPS: dict[str, list[str]] = {
    "batch": ["downloading", "ready", "decompressing", "dicom loading", "finished"],
    "stream-files": ["downloading", "ready", "dicom loading", "finished"],
    "stream-dicom": ["downloading", "ready", "dicom loading", "finished"],
}
END_STATES = ("finished", "error", "cancelled")


@dataclass
class ControlsState:
    """What the user picks: CT, mode, network, compare runs, language."""

    ct_id: str | None = None
    ct_items: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "stream-dicom"
    network: str = "unlimited"
    network_items: list[dict[str, str]] = field(default_factory=list)
    compare_runs: int = 5
    lang: str = "en"
    lang_items: list[dict[str, str]] = field(default_factory=list)
    t: dict[str, str] = field(default_factory=dict)
    busy: bool = False
    app_ready: bool = False


@dataclass
class ProgressState:
    """The loading panel."""

    load_state: str = "idle"
    #: incremented whenever a load or compare starts (lets tests tell a new "finished" from the last one)
    load_serial: int = 0
    load_state_label: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    steps_mode: str = ""
    step_value: int = 0
    percent: float = 0.0
    files_text: str = ""
    bytes_text: str = ""
    rate_text: str = ""
    elapsed_text: str = ""
    memory_text: str = ""
    memory_mb: float = 0.0
    slices_text: str = ""
    compare_text: str = ""
    error_message: str = ""
    fallback_text: str = ""
    warnings_text: str = ""
    notice: str = ""
    #: epoch ms of the first slice placed by the engine / pushed to the views (for latency measurements)
    first_slice_placed_ms: float = 0.0
    first_slice_pushed_ms: float = 0.0


@dataclass
class ViewState:
    """Window/level, VR preset, one slice slider per 2D pane, orientation letters."""

    has_volume: bool = False
    wl_preset: str = "auto"
    wl_text: str = ""
    vr_preset: str = "CT-Bone"
    slice_axial: int = 0
    slice_sagittal: int = 0
    slice_coronal: int = 0
    count_axial: int = 1
    count_sagittal: int = 1
    count_coronal: int = 1
    labels: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class ResultsState:
    """Runs, summary, chart and the registry's contents."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    contents: list[dict[str, Any]] = field(default_factory=list)
    #: what the memory budget unloaded, newest first: {id, reason, text}
    contents_unloaded: list[dict[str, Any]] = field(default_factory=list)
    #: the budget's accounting against the measured RSS (one line under the server memory)
    budget_text: str = ""
    memory_accounted_mb: float = 0.0


def init_state(state: Any, *parts: Any) -> None:
    """Write every field of the given dataclass instances into the trame state."""
    for part in parts:
        for key, value in asdict(part).items():
            state[key] = value
