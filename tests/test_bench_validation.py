"""bench/bench_validation.py's paired comparison against RIFE, and its report rebuilt from a saved run."""
from __future__ import annotations

import json
import sys

import pytest

from testkit.clips import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import bench_validation as bv  # noqa: E402


def _rows(values, cls="near"):
    return [{"name": f"t{i}", "class": cls, "set": "s", "psnr": 30.0, "ssim": 0.9, "lpips_alex": v,
             "lpips_vgg": v, "dists": v} for i, v in enumerate(values)]


def test_paired_is_zero_against_itself_and_resolves_a_uniform_gain():
    rife = _rows([0.02, 0.05, 0.01, 0.03])
    assert bv.paired(rife, rife, "dists") == (0.0, 0.0, 0.0, 0)
    mean, lo, hi, wins = bv.paired(_rows([0.01, 0.04, 0.0, 0.02]), rife, "dists")
    assert mean == pytest.approx(-0.01) and lo == pytest.approx(-0.01) and hi == pytest.approx(-0.01)
    assert wins == 4


def test_paired_interval_spans_zero_for_a_mixed_difference():
    rife = _rows([0.02] * 6)
    mean, lo, hi, wins = bv.paired(_rows([0.03, 0.01, 0.03, 0.01, 0.025, 0.015]), rife, "lpips_alex")
    assert mean == pytest.approx(0.0, abs=1e-12) and lo < 0 < hi and wins == 3


def test_paired_refuses_rows_of_other_triplets():
    with pytest.raises(ValueError, match="same triplets"):
        bv.paired(_rows([0.1, 0.2]), list(reversed(_rows([0.1, 0.2]))), "dists")


def test_the_report_is_rebuilt_from_a_saved_run_with_the_paired_table(tmp_path):
    scores = {bv.AVERAGE: _rows([0.2, 0.3]), bv.RIFE: _rows([0.02, 0.03]), "pervfi-rife:tau=0.2": _rows([0.01, 0.02])}
    saved = {"scores": scores, "seconds": {k: [1.0, 1.0] for k in (bv.AVERAGE, bv.RIFE, "pervfi-rife")},
             "side_by_side": {k: [0.1, 0.1] for k in (bv.AVERAGE, bv.RIFE, "pervfi-rife")},
             "time_size": "448x256", "time_repeats": 7, "n": 2, "date": "2026-01-02"}
    (tmp_path / "run.json").write_text(json.dumps(saved))
    out = tmp_path / "report.md"
    bv.main(["--from-json", str(tmp_path / "run.json"), "--out", str(out), "--engines", "pervfi-rife:tau=0.2"])
    text = out.read_text()
    assert "# Validation on real footage (2026-01-02)" in text and "--time-repeats 7" in text
    assert "## Paired against RIFE 4.25/4.26, per motion class" in text
    assert "## Paired against RIFE 4.25/4.26, per set" in text
    assert "| near | pervfi-rife:tau=0.2 | 2 | -0.01000 [-0.01000, -0.01000] | 2/2 |" in text
    assert "| s | pervfi-rife:tau=0.2 | 2 | -0.01000 [-0.01000, -0.01000] | 2/2 |" in text
    assert "| all | frame averaging |" not in text  # the anchors are not compared with themselves
