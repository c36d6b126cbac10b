"""Compressed-pixel bombs fail before any decoder allocates (issue 13): peak memory measured in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bombs import JPEG_LS, bomb_slice, rle_frame
from dicom_helpers import ct_dataset, to_bytes
from pipeline_helpers import make_zip
from pydicom.uid import generate_uid

from webviewer.errors import LimitExceededError
from webviewer.loading.dicom import decode_hu, read_header
from webviewer.loading.limits import MiB, check_pixels, max_decoded_bytes

ROOT = Path(__file__).resolve().parents[1]
MODES = ("batch", "stream-files", "stream-dicom")

PEAK_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from webviewer.loading import Limits, LoadOptions, load
    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    path, limit = sys.argv[1], int(sys.argv[2])
    out = {}
    for mode in ("batch", "stream-files", "stream-dicom"):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = hwm()
        try:
            asyncio.run(load(path, mode, options=LoadOptions(limits=Limits(max_volume_bytes=limit))))
            err = None
        except Exception as exc:
            err = [type(exc).__name__, str(exc)]
        out[mode] = {"peak_above_start": hwm() - base, "error": err}
    print(json.dumps(out))
""")


def peaks(path: Path, limit: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path), str(limit)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "members", "limit"), [
    # the 465-byte ZIP: one RLE slice of 46000x46000 (4.2 GB claimed) under the default 4 GiB limit
    ("rle-46000", [("bomb.dcm", bomb_slice(46000, 46000))], 4 * 1024 * MiB),
    # 32000x32000 x 8 slices of one series (2 GB each)
    ("rle-32000x8", [(f"b{i}.dcm", bomb_slice(32000, 32000, z=float(i), series_uid="1.2.3.4")) for i in range(8)],
     4 * 1024 * MiB),
    # JPEG-LS has no expansion bound: the volume limit stops it before the decoder
    ("jpegls-8000", [("bomb.dcm", bomb_slice(8000, 8000, syntax=JPEG_LS, frame=b"\xff\xd8\xff\xd9"))], 64 * MiB),
])
def test_compressed_pixel_bombs_fail_with_peak_memory_under_a_few_mb(tmp_path, name, members, limit):
    path = tmp_path / f"{name}.zip"
    path.write_bytes(make_zip(members))
    for mode, r in peaks(path, limit).items():
        assert r["error"] is not None and r["error"][0] == "LimitExceededError", (mode, r)
        assert r["peak_above_start"] < 32 * MiB, (mode, r)


def test_check_pixels_before_decoding():
    with pytest.raises(LimitExceededError, match="at most"):
        check_pixels("x", 46000, 46000, limit=8 << 30, encoded_bytes=465, transfer_syntax="1.2.840.10008.1.2.5")
    with pytest.raises(LimitExceededError, match="series' slices are 512x512"):
        check_pixels("x", 8000, 8000, limit=64 * MiB, series_shape=(512, 512))
    with pytest.raises(LimitExceededError, match="not positive"):
        check_pixels("x", 0, 512, limit=64 * MiB)
    assert check_pixels("x", 512, 512, frames=3, limit=64 * MiB) == 512 * 512 * 3 * 2
    assert max_decoded_bytes("1.2.840.10008.1.2.4.90", 10, 2) is None  # JPEG 2000: no bound


def test_one_check_names_a_slice_or_the_frames_of_a_multi_frame_object():
    with pytest.raises(LimitExceededError, match=r"^x: a 8000x4000 slice needs 64.0 MB, above the 33.6 MB "
                                                 r"max_volume_bytes leaves for it\. Raise max_volume_bytes"):
        check_pixels("x", 4000, 8000, limit=32 * MiB)
    with pytest.raises(LimitExceededError, match=r"^ct\.dcm: 1000 frames of 512x256 need 524.3 MB, above the "
                                                 r"104.9 MB max_volume_bytes leaves for it"):
        check_pixels("ct.dcm", 256, 512, frames=1000, bytes_per_sample=4, limit=100 * MiB)
    assert check_pixels("ct.dcm", 256, 512, frames=100, bytes_per_sample=4, limit=100 * MiB) == 256 * 512 * 400


def test_a_real_rle_slice_passes_the_bound_and_a_forged_one_fails():
    from pydicom.pixels import compress

    ds = ct_dataset(rows=64, columns=64)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    compress(ds, "1.2.840.10008.1.2.5", encoding_plugin="pydicom")
    data = to_bytes(ds)
    header = read_header("ok.dcm", data)
    assert decode_hu(data, header).shape == (64, 64)
    forged = bomb_slice(4096, 4096, frame=rle_frame())
    with pytest.raises(LimitExceededError, match="corrupt or hostile"):
        decode_hu(forged, read_header("forged.dcm", forged))


def _broken_among_good(tmp_path: Path) -> Path:
    good = [(f"g{i}.dcm", to_bytes(ct_dataset(rows=16, columns=16, position=(0.0, 0.0, float(i)),
                                              series_uid="1.2.3"))) for i in range(3)]
    bad = ("bad.dcm", bomb_slice(16, 16, z=9.0, series_uid="1.2.3", frame=b"\0" * 70))  # undecodable RLE
    path = tmp_path / "one-broken.zip"
    path.write_bytes(make_zip([*good, bad]))
    return path


@pytest.mark.parametrize("mode", MODES)
def test_load_cli_quiet_prints_nothing_and_skips_the_broken_slice(tmp_path, mode):
    path = _broken_among_good(tmp_path)
    exe = Path(sys.executable).with_name("webviewer-load")
    quiet = subprocess.run([str(exe), str(path), "--mode", mode, "--quiet"], capture_output=True, text=True,
                           timeout=300)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    loud = subprocess.run([str(exe), str(path), "--mode", mode, "--json"], capture_output=True, text=True,
                          timeout=300)
    assert loud.returncode == 0 and "Traceback" not in loud.stderr
    result = json.loads(loud.stdout)
    assert result["slices"] == 3 and result["skipped_files"] == ["bad.dcm (unreadable)"]
    assert "bad.dcm (unreadable)" in json.dumps(result["warnings"])
