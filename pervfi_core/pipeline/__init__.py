"""The pipeline: frames and flows in, frames out (paper Fig. 2 as stages), for the CLI, the nodes and tests.

* :mod:`.stages` — estimate_flow -> blend -> decode, and :func:`interpolate` fused per pair
  (:func:`generate`, the one per-pair loop);
* :mod:`.tiling` — the tile plan and the out-of-memory policy (smaller batches, then tiles);
* :mod:`.loop` — the streaming video loop (files and folders in and out);
* :mod:`.clips` — whole clips held in memory, seamless loops, clips fed in chunks (Meta Batch), and
  the exact frame-rate schedule of a run;
* :mod:`.memory` — the working memory a run needs on its device (what ComfyUI's manager is told);
* :mod:`.report` — the report of a run (engine, device, settings, cuts, notes, timing);
* :mod:`.options` — the run's options with their defaults, checked once;
* :mod:`.hooks` — how the host (CLI, ComfyUI) plugs in devices, progress, interruption;
* :mod:`.schedule` — which output frame sits where (multipliers, frame rates, explicit timesteps);
* :mod:`.scenes` — the scene-cut rule.
"""
from .hooks import Hooks, OutOfMemory, is_out_of_memory
from .options import (
    BLEND_MAX_PIXELS,
    DEFAULT_BATCH,
    DEFAULT_NOISE,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_SEED,
    DEFAULT_TAU,
    FLOW_MAX_PIXELS,
    MAX_SEED,
    NOISE_MODES,
    TAU_RANGE,
    Options,
    check_tau,
    make_options,
)
from .schedule import ExplicitTimesteps, Retime, Target, as_schedule
from .stages import (
    Blends,
    PairBlend,
    PairFlows,
    TiledBlend,
    blend,
    decode,
    estimate_flow,
    flow_pair,
    generate,
    interpolate,
    interpolate_pair,
    nearest_input,
)

__all__ = [
    "BLEND_MAX_PIXELS", "DEFAULT_BATCH", "DEFAULT_NOISE", "DEFAULT_SCENE_THRESHOLD", "DEFAULT_SEED", "DEFAULT_TAU",
    "FLOW_MAX_PIXELS", "MAX_SEED", "NOISE_MODES", "TAU_RANGE", "Blends", "ExplicitTimesteps", "Hooks", "Options",
    "OutOfMemory", "PairBlend", "PairFlows", "Retime", "Target", "TiledBlend", "as_schedule", "blend", "check_tau",
    "decode", "estimate_flow", "flow_pair", "generate", "interpolate", "interpolate_pair", "is_out_of_memory",
    "make_options", "nearest_input",
]
