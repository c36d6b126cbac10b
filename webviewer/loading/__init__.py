"""The load engine: source -> unzip -> dicom -> volume, in three modes (batch, stream-files, stream-dicom).

No trame here: the app, the CLI and the benchmark all drive :func:`load`.
"""

from webviewer.loading.limits import Limits
from webviewer.loading.metrics import LoadMetrics
from webviewer.loading.modes import Fallback, LoadMode, LoadOptions, LoadResult, load
from webviewer.loading.progress import LoadObserver, LoadState, ProgressEvent
from webviewer.loading.volume import CTVolume, LoadWarning, SliceBuffer

__all__ = [
    "CTVolume",
    "Fallback",
    "Limits",
    "LoadMetrics",
    "LoadMode",
    "LoadObserver",
    "LoadOptions",
    "LoadResult",
    "LoadState",
    "LoadWarning",
    "ProgressEvent",
    "SliceBuffer",
    "load",
]
