"""The report of a run: what ran, where, with which settings, what it found and how long it took.

One dictionary (JSON-ready) for the nodes' ``report`` output and any script: the engine (its name
and :class:`~pervfi_core.engine.EngineInfo`), the motion estimator, device and dtype, τ and seed
(and whether the engine uses them), the schedule (multiplier, explicit timesteps or frame rates),
frame counts, scene cuts, the tile plan, the notes the pipeline made (``Hooks.log``: capped budgets,
out-of-memory retries) and the timing.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from fractions import Fraction

from .hooks import Hooks
from .memory import new_frames_per_pair
from .options import Options
from .schedule import ExplicitTimesteps, Retime, as_schedule
from .tiling import plan


def _rate(value) -> float | None:
    return None if value is None else round(float(value), 6)


def describe_schedule(timesteps, fps_in=None) -> dict:
    """``{"multiplier"| "timesteps"| "fps_in"/"fps_out"...}`` for a multiplier, Retime or explicit list."""
    schedule = as_schedule(timesteps)
    out: dict = {}
    if isinstance(schedule, ExplicitTimesteps):
        out["timesteps"] = [float(t) for t in schedule.ts]
    elif isinstance(schedule, Retime):
        if schedule.multiplier is not None:
            out["multiplier"] = schedule.multiplier
        else:
            out["step"] = str(schedule.step)  # input frames per output frame, exact
    if fps_in is not None:
        out["fps_in"] = _rate(fps_in)
        if isinstance(schedule, Retime):
            fps_out = schedule.output_fps(fps_in)
            out["fps_out"] = _rate(fps_out)
            out["fps_out_exact"] = str(Fraction(fps_out))
        else:  # explicit timesteps: len(ts) + 1 output frames per input frame
            out["fps_out"] = _rate(Fraction(str(fps_in)) * (len(schedule.ts) + 1))
    return out


def describe_engine(engine) -> dict:
    """Name, kind and descriptor (:class:`~pervfi_core.engine.EngineInfo`) of an engine (JSON-ready)."""
    return {"name": engine.name, "stochastic": bool(engine.stochastic), **asdict(engine.info)}


def run_report(*, engine, options: Options, timesteps, height: int, width: int, estimator=None, fps_in=None,
               frames_in: int | None = None, frames_out: int | None = None, cuts=(), hooks: Hooks | None = None,
               seconds: float | None = None, pairs: int | None = None, **extra) -> dict:
    """The report of one run (module docstring); ``extra`` entries (loop, chunk) are added as given."""
    batch = min(options.batch_size, new_frames_per_pair(timesteps))
    work = plan(engine, height, width, batch, options.blend_max_pixels, Hooks())
    report = {
        "engine": describe_engine(engine),
        "estimator": estimator.name if estimator is not None else None,  # estimators name themselves
        "device": str(engine.device),
        "dtype": str(engine.dtype).replace("torch.", ""),
        "tau": float(options.tau),
        "seed": int(options.seed),
        "noise": options.noise,
        "tau_and_seed_used": bool(engine.stochastic),
        **describe_schedule(timesteps, fps_in),
        "size": [int(width), int(height)],
        "frames_in": frames_in,
        "frames_out": frames_out,
        "scene_threshold": float(options.scene_threshold),
        "cuts": [int(i) for i in cuts],
        "plan": {"frames_per_call": work.batch, "tile": work.tile},
        "notes": list(hooks.log) if hooks is not None else [],
        "seconds": None if seconds is None else round(seconds, 4),
        "seconds_per_pair": round(seconds / pairs, 4) if seconds is not None and pairs else None,
    }
    report.update(extra)
    return report


def to_json(report: dict) -> str:
    """The report as indented JSON (paths, tuples and other values as JSON can hold them)."""
    return json.dumps(report, indent=2, default=str)
