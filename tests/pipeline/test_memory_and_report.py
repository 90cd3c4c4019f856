"""What a host's memory manager is told (pipeline/memory.py) and the run report (pipeline/report.py)."""
from __future__ import annotations

import json

from pervfi_core import build_engine
from pervfi_core.engines import ESTIMATOR_MEMORY, MEMORY_PER_PIXEL, estimator_memory, load_engine
from pervfi_core.pervfi_engine import COMPACT_VB_BYTES_PER_PIXEL
from pervfi_core.pipeline import Hooks, Options, Retime
from pervfi_core.pipeline.memory import call_pixels, memory_required, new_frames_per_pair
from pervfi_core.pipeline.report import run_report, to_json
from testkit.clips import LinearBlend, SeededNoise, ZeroFlow


def test_engines_carry_their_measured_figure():
    assert build_engine("v00").memory_per_pixel == MEMORY_PER_PIXEL["pervfi-v00"]
    assert build_engine("vb").memory_per_pixel == MEMORY_PER_PIXEL["pervfi-vb"]
    assert build_engine("residual-vb").memory_per_pixel == COMPACT_VB_BYTES_PER_PIXEL  # compact widths
    assert load_engine("pervfi-own").memory_per_pixel == COMPACT_VB_BYTES_PER_PIXEL
    assert load_engine("training-free").memory_per_pixel == MEMORY_PER_PIXEL["training-free"]
    assert MEMORY_PER_PIXEL["training-free"] < COMPACT_VB_BYTES_PER_PIXEL < MEMORY_PER_PIXEL["pervfi-v00"]


def test_the_estimate_follows_the_frame_size_and_the_tile_plan():
    engine = LinearBlend()  # 64 bytes per pixel, no budget of its own
    assert memory_required(100, 200, engine=engine) == 64 * 100 * 200  # x2: one new frame per pair
    assert memory_required(100, 200, engine=engine, timesteps=4) == 64 * 3 * 100 * 200  # three per call
    assert new_frames_per_pair(Retime(fps_in=24, fps_out=60)) == 2  # 0.4, 0.8 | 1.2, 1.6 | 2.0 on the grid
    assert call_pixels(SeededNoise(), 100, 200, batch=3) == 100 * 200  # stochastic: one frame per call
    engine.max_pixels = 64 * 64  # larger frames are tiled: the estimate is one tile with its context
    assert memory_required(1000, 2000, engine=engine) == 64 * (64 + 64) ** 2
    assert memory_required(1000, 2000) == 0  # nothing runs on the device


def test_estimators_are_charged_their_quadratic_figure_capped_by_the_flow_budget():
    class Named:
        def __init__(self, name):
            self.name = name

    a, b = ESTIMATOR_MEMORY["raft"]
    assert estimator_memory(Named("raft"), 100, 200) == int(a * 2e4 + b * 4e8)
    assert estimator_memory(Named("raft"), 4000, 4000, max_pixels=10 ** 6) == int(a * 1e6 + b * 1e12)
    assert estimator_memory(Named("dis"), 1080, 1920) == 0  # runs on the CPU
    need = memory_required(100, 200, engine=LinearBlend(), estimator=Named("raft"))
    assert need == max(64 * 2e4, estimator_memory(Named("raft"), 100, 200))


def test_the_report_says_what_ran():
    hooks = Hooks()
    hooks.note("out of memory: retrying with batches of 1")
    report = run_report(engine=SeededNoise(), estimator=ZeroFlow(), options=Options(tau=0.5, seed=3),
                        timesteps=Retime(fps_in=24, fps_out=60), height=12, width=16, fps_in=24, frames_in=25,
                        frames_out=61, cuts=[4], hooks=hooks, seconds=2.0, pairs=24, loop=False)
    parsed = json.loads(to_json(report))
    assert parsed["engine"]["name"] == "seeded-noise" and parsed["engine"]["architecture"] == "linear"
    assert parsed["engine"]["stochastic"] and parsed["tau_and_seed_used"]
    assert (parsed["estimator"], parsed["device"], parsed["dtype"]) == ("zero", "cpu", "float32")
    assert (parsed["tau"], parsed["seed"], parsed["fps_in"], parsed["fps_out"]) == (0.5, 3, 24.0, 60.0)
    assert parsed["step"] == "2/5" and parsed["cuts"] == [4] and parsed["notes"] == hooks.log
    assert parsed["seconds_per_pair"] == round(2.0 / 24, 4) and parsed["plan"] == {"frames_per_call": 1, "tile": None}
    assert run_report(engine=LinearBlend(), options=Options(), timesteps=3, height=4, width=4)["multiplier"] == 3
