"""What a run needs on its device beyond the weights: the figure a host's memory manager is told.

ComfyUI's ``load_models_gpu(models, memory_required=...)`` frees that much (unloading other models)
before it loads ours. The estimate is the largest single call of the run: the engine's
``memory_per_pixel`` (measured, :data:`pervfi_core.engines.MEMORY_PER_PIXEL`) times the pixels of
its largest blend + decode call under the tile plan (:func:`.tiling.plan`), or the motion
estimator's footprint on the frames it sees (:func:`pervfi_core.engines.estimator_memory`), whichever
is larger: they run one after the other, and what one pair keeps between them (flows, a Blend) is
small beside either. An engine that finds its own motion runs no estimator: none is counted.
"""
from __future__ import annotations

from ..engines import estimator_memory
from .hooks import Hooks
from .options import Options, make_options
from .schedule import as_schedule
from .tiling import SELF_MOTION_CONTEXT, TILE_CONTEXT, plan

PAIRS_SCANNED = 8  # a frame-rate schedule's new frames per pair vary; the first pairs show the most


def new_frames_per_pair(timesteps) -> int:
    """The most new frames one pair gets under ``timesteps`` (a multiplier, Retime or explicit list)."""
    schedule = as_schedule(timesteps)
    return max(sum(not tg.is_input for tg in schedule.targets_in_pair(i)) for i in range(PAIRS_SCANNED))


def call_pixels(engine, height: int, width: int, *, batch: int, options: Options | None = None) -> int:
    """Pixels (frames x H x W) of the largest engine call on H x W frames with ``batch`` new frames per pair.

    Whole frames in the plan's batches, or one tile with the engine's context around it (the motion
    part of a tile's margin is known only once the flows are; the out-of-memory policy covers it).
    """
    opts = make_options(options)
    work = plan(engine, height, width, max(1, min(opts.batch_size, batch)), opts.blend_max_pixels, Hooks())
    if work.tile is None:
        return work.batch * height * width
    side = work.tile + 2 * (TILE_CONTEXT if engine.needs_motion else SELF_MOTION_CONTEXT)
    return min(side, height) * min(side, width)


def memory_required(height: int, width: int, *, engine=None, estimator=None, timesteps=2,
                    options: Options | None = None) -> int:
    """Bytes of working memory a run on H x W frames needs on the device (module docstring).

    ``engine`` and/or ``estimator``: what the run uses (the flow node runs only an estimator, the
    decode node only an engine). 0 when neither runs on the device.
    """
    opts = make_options(options)
    need = 0
    if engine is not None:
        pixels = call_pixels(engine, height, width, batch=new_frames_per_pair(timesteps), options=opts)
        need = int(engine.memory_per_pixel) * pixels
    if estimator is not None and (engine is None or engine.needs_motion):
        need = max(need, estimator_memory(estimator, height, width, max_pixels=opts.flow_max_pixels))
    return need
