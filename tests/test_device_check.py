"""bench/device_check.sh, the GPU check, works: its --cpu mode runs the same code small, on the CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pervfi_core.engines import MEMORY_PER_PIXEL, load_engine
from testkit.clips import ROOT

ENGINES = ["v00", "vb", "pervfi-own", "training-free"]


def test_the_device_check_runs_on_a_cpu_and_writes_its_results(tmp_path, parity_dir):
    env = {**os.environ, "PYTHON": sys.executable, "PERVFI_PARITY_DIR": str(parity_dir)}
    run = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--cpu", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["environment.json", "log.txt", "parity.json", "precision.json", "speed_memory.json", "summary.md"]
    parity = json.loads((tmp_path / "parity.json").read_text())
    assert parity["all_ok"] and {"pervfi_v00_t0.5", "pervfi_vb_t0.5"} <= set(parity)
    assert all(c["max_abs"] <= c["tol"] for f, cs in parity.items() if f != "all_ok" for c in cs.values())
    precision = json.loads((tmp_path / "precision.json").read_text())
    for name in ENGINES:
        assert precision[name]["bfloat16"]["finite"] and precision[name]["bfloat16"]["max_abs"] < 0.1
    assert precision["v00"]["bfloat16"]["max_abs"] > 0  # the half run really ran in half precision
    rows = json.loads((tmp_path / "speed_memory.json").read_text())
    rife = "pervfi-rife: skipped" not in run.stdout  # the default runs where its RIFE trunk's weights are on disk
    assert [r["engine"] for r in rows] == ENGINES + (["pervfi-rife"] if rife else [])
    told = {"v00": 3157, "vb": 3157, "pervfi-own": load_engine("pervfi-own").memory_per_pixel,
            "training-free": load_engine("training-free").memory_per_pixel,
            "pervfi-rife": MEMORY_PER_PIXEL["pervfi-rife"]}  # the figures measured for each
    for row in rows:
        assert row["core_s_per_frame"] > 0 and row["node_s_per_frame"] > 0
        assert row["bytes_per_px_told"] == told[row["engine"]]
        assert row["core_peak_mb"] is None  # peak device memory is a GPU figure
    summary = (tmp_path / "summary.md").read_text()
    assert "all within tolerance" in summary and all(f"| {name} |" in summary for name in ENGINES)
