"""Twenty loads of a real series in one session (engine, registry, budget and the real renderer, no trame): the
RSS stays within the budget plus the idle baseline plus 10 %, and the budget's accounting agrees with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from realdata import real_series_dir

MB = 1_000_000
BUDGET_MB = 250  # the Philips phantom: 73 MB of volume + 56 MB of render copies on screen

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from webviewer.app.memory import MemoryAccount, release_memory
    from webviewer.loading import load
    from webviewer.loading.budget import BudgetExceededError, ContentBudget, load_need_bytes, volume_bytes_from_source
    from webviewer.loading.metrics import current_rss, read_hwm, reset_hwm
    from webviewer.loading.registry import ContentRegistry
    from webviewer.rendering import FourPaneRenderer
    from webviewer.runtime import configure_runtime

    configure_runtime()  # as the app's entry point does (malloc threshold, VTK's EGL window)
    zip_path, budget_mb = sys.argv[1], float(sys.argv[2])
    MODES = ("batch", "stream-files", "stream-dicom")

    def render(r):
        for pane in ("axial", "3d", "sagittal", "coronal"):
            r.render(pane)

    async def main():
        renderer = FourPaneRenderer(size=(300, 300))
        render(renderer)
        registry = ContentRegistry(ContentBudget.from_mb(budget_mb))
        account = MemoryAccount()
        account.start()  # idle: engine imported, renderer up, nothing loaded
        out = {"baseline": account.baseline_bytes, "loads": []}
        current = None
        for i in range(20):
            need = await volume_bytes_from_source(zip_path)
            registry.budget.check_volume(need, "Philips")
            gone = registry.make_room(load_need_bytes(need, MODES[i % 3]),
                                     extra_bytes=account.extra_bytes(registry, current))
            release_memory()
            reset_hwm()
            result = await load(zip_path, MODES[i % 3])
            peak = read_hwm()
            registry.add(result)
            current = result.volume
            renderer.set_volume(current)
            render(renderer)
            account.shown()
            del result
            gone += registry.enforce(extra_bytes=account.extra_bytes(registry, current))
            release_memory()
            fig = account.figures(registry, current)
            out["loads"].append({"mode": MODES[i % 3], "id": registry.on_screen, "rss": current_rss(), "peak": peak,
                                 "accounted": fig["accounted_mb"] * 1e6, "listed": [c.id for c in registry.list()],
                                 "gone": [(u.id, u.reason) for u in gone]})
        before = ([c.id for c in registry.list()], registry.on_screen, renderer.volume is current, current_rss())
        try:
            ContentBudget.from_mb(50).check_volume(await volume_bytes_from_source(zip_path), "Philips")
            out["refused"] = None
        except BudgetExceededError as exc:
            out["refused"] = exc.message
        release_memory()
        after = ([c.id for c in registry.list()], registry.on_screen, renderer.volume is current, current_rss())
        out["untouched"] = before[:3] == after[:3] and before[2]
        out["rss_after_refusal"] = [before[3], after[3]]
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_twenty_real_loads_stay_within_the_budget(tmp_path):
    from webviewer.api.samples import zip_folder

    zip_path = tmp_path / "philips.zip"
    zip_folder(real_series_dir("dcmqa-philips-headphantom-1mm"), zip_path)
    script = tmp_path / "session.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
    out = subprocess.run([sys.executable, str(script), str(zip_path), str(BUDGET_MB)], capture_output=True,
                         text=True, timeout=600, cwd=Path(__file__).resolve().parents[1], env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    base, loads = res["baseline"], res["loads"]
    limit = base + BUDGET_MB * MB * 1.10
    ever_listed = set()
    for i, step in enumerate(loads):
        assert step["rss"] <= limit, (i, step["rss"] / MB, base / MB)
        assert abs(step["accounted"] - step["rss"]) <= 0.10 * step["rss"], (i, step["accounted"] / MB, step["rss"] / MB)
        assert step["listed"][-1] == step["id"]  # the content on screen is never unloaded
        assert len(step["listed"]) <= 2
        if step["mode"] == "stream-dicom":  # PoC2 holds little besides its volume: its peak is budgeted too
            assert step["peak"] <= limit, (i, step["peak"] / MB)
        for gone_id, reason in step["gone"]:
            assert gone_id not in step["listed"] and gone_id != step["id"] and reason in ("budget", "count")
        ever_listed.update(step["listed"])
    gone = [g for step in loads for g, _ in step["gone"]]
    assert len(gone) == 18 and len(set(gone)) == 18  # all but the last two, each once
    assert {r for step in loads for _, r in step["gone"]} == {"budget"}  # 2 x 73 + 56 + 73 > 250: room first
    assert set(loads[-1]["listed"]) | set(gone) == ever_listed
    assert "budget of 50 MB" in res["refused"] and "--content-budget-mb" in res["refused"]
    assert res["untouched"] is True
    a, b = res["rss_after_refusal"]
    assert b <= a * 1.02
