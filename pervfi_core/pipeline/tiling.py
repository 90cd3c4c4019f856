"""How much work one engine call gets, and what happens when it does not fit: one plan, one policy.

:func:`plan` turns the pixel budgets (the run's ``blend_max_pixels`` and the engine's own
``max_pixels``) into frames per call and, for frames above the budget, a tile side. Tiles keep a
margin of context larger than the motion (:func:`margin`), so each tile sees every pixel that moves
into its core; only the cores are kept (:func:`paste_cores`). :func:`over_tiles` is the one tiling
path: the fused path stitches what it yields at once (:func:`run_tiled`), the split stages keep the
tiles' blends for a later decode.

The out-of-memory policy (:func:`run_adaptive`), the same for the fused path, the blend stage and the
decode stage: free the accelerator cache, halve the batch down to one frame per call, then halve the
tile side down to :data:`MIN_TILE`; only then give up with :class:`~.hooks.OutOfMemory`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from .hooks import Hooks, OutOfMemory
from .options import BLEND_MAX_PIXELS

MIN_TILE = 64  # px; smaller tiles would be mostly context
TILE_CONTEXT = 32  # px of context around a tile beyond the largest motion (receptive field of the engine)
# px of context for an engine that finds its own motion (no flows to size the margin from): the
# receptive field plus motions of up to 32 px; larger motion across a tile border is cut off there
SELF_MOTION_CONTEXT = TILE_CONTEXT + 32


@dataclass(frozen=True)
class Plan:
    """``batch`` new frames per engine call; ``tile`` px tiles (None: whole frames)."""

    batch: int
    tile: int | None


def plan(engine, height: int, width: int, batch: int, budget: int | None, hooks: Hooks) -> Plan:
    """The plan under the smaller of ``budget`` and the engine's own ``max_pixels`` (batch x H x W);
    without a ``budget``, the engine's own, at most :data:`~.options.BLEND_MAX_PIXELS`.

    A stochastic engine decodes one frame per call, so that frame j's latent depends only on its seed.
    A budget above what the engine allows is reported (once per run), not silently lowered.
    """
    own = engine.max_pixels
    if budget and own and budget > own:
        hooks.note(f"blend pixel budget {budget} is above what {engine.name} allows per call ({own}): "
                   f"using {own}", once=True)
    limit = min(b for b in (budget or BLEND_MAX_PIXELS, own) if b)
    per_call = max(1, limit // (height * width))
    size = 1 if engine.stochastic else max(1, min(batch, per_call))
    tile = None if height * width <= limit else max(MIN_TILE, int(math.sqrt(limit)))
    return Plan(size, tile)


def margin(fflow: torch.Tensor | None, bflow: torch.Tensor | None) -> int:
    """Context around a tile: the largest motion plus the engine's receptive field (one device sync: ask
    only when tiling); :data:`SELF_MOTION_CONTEXT` without flows (an engine that finds its own motion)."""
    if fflow is None or bflow is None:
        return SELF_MOTION_CONTEXT
    return int(math.ceil(float(torch.cat([fflow, bflow]).abs().max()))) + TILE_CONTEXT


def tile_boxes(height: int, width: int, tile: int, margin: int) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Split an image into tiles of at most ``tile`` px (core) with ``margin`` px of context.

    Returns ``[(outer, inner)]`` where ``outer = (y0, y1, x0, x1)`` is the region to process and
    ``inner`` the core to keep, in the outer region's coordinates. Cores cover the image exactly once.
    """
    def spans(n: int) -> list[tuple[int, int]]:
        k = max(1, math.ceil(n / tile))
        edges = [round(i * n / k) for i in range(k + 1)]
        return list(zip(edges[:-1], edges[1:]))

    boxes = []
    for cy0, cy1 in spans(height):
        for cx0, cx1 in spans(width):
            y0, y1 = max(0, cy0 - margin), min(height, cy1 + margin)
            x0, x1 = max(0, cx0 - margin), min(width, cx1 + margin)
            boxes.append(((y0, y1, x0, x1), (cy0 - y0, cy1 - y0, cx0 - x0, cx1 - x0)))
    return boxes


def paste_cores(pieces, size: tuple[int, int]) -> torch.Tensor:
    """Stitch ``(outer, inner, y)`` pieces of :func:`tile_boxes` (``y`` computed on the outer region,
    (B,C,h,w)) into one (B,C,H,W) tensor of ``size`` = (H, W), keeping each piece's core. ``pieces``
    may be a generator: each ``y`` can be freed once pasted."""
    out = None
    for (y0, _, x0, _), (iy0, iy1, ix0, ix1), y in pieces:
        core = y[..., iy0:iy1, ix0:ix1]
        if out is None:
            out = core.new_empty(core.shape[0], core.shape[1], *size)
        out[..., y0 + iy0:y0 + iy1, x0 + ix0:x0 + ix1] = core
    return out


def crops(inputs: Sequence[torch.Tensor | None], outer: tuple[int, int, int, int]) -> list[torch.Tensor | None]:
    """The region ``outer`` = (y0, y1, x0, x1) of each (B,C,H,W) input (None stays None: no flows)."""
    y0, y1, x0, x1 = outer
    return [None if x is None else x[..., y0:y1, x0:x1] for x in inputs]


def over_tiles(fn: Callable[[list], object], inputs: Sequence[torch.Tensor | None], *, tile: int, margin: int,
               hooks: Hooks) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int], object]]:
    """``(outer, inner, fn(crops))`` for every tile of :func:`tile_boxes` over ``inputs`` (all (B,C,H,W)
    on one grid; the first is never None), lazily, checking for interruption before each tile."""
    h, w = inputs[0].shape[-2:]
    for outer, inner in tile_boxes(h, w, tile, margin):
        hooks.check_interrupt()
        yield outer, inner, fn(crops(inputs, outer))


def run_tiled(fn: Callable[[list], torch.Tensor], inputs: Sequence[torch.Tensor | None], *,
              tile: int, margin: int, hooks: Hooks) -> torch.Tensor:
    """Apply ``fn`` to spatial tiles of ``inputs`` (:func:`over_tiles`) and stitch the cores.

    ``fn`` maps the list of cropped inputs to one (B,C',h,w) tensor on the same grid.
    """
    return paste_cores(over_tiles(fn, inputs, tile=tile, margin=margin, hooks=hooks), tuple(inputs[0].shape[-2:]))


def run_batched(fn: Callable[[int, int], list], n: int, batch_size: int, hooks: Hooks) -> list:
    """``fn(start, stop)`` over ``range(n)`` in batches; on out-of-memory, halve the batch and retry.

    Returns the concatenated lists. Raises :class:`OutOfMemory` if a batch of one does not fit.
    """
    out, start, size = [], 0, max(1, batch_size)
    while start < n:
        stop = min(n, start + size)
        try:
            out.extend(fn(start, stop))
        except Exception as exc:  # noqa: BLE001 — only OOM is handled, the rest re-raised
            if not hooks.is_oom(exc):
                raise
            hooks.empty_cache()
            if size == 1:
                raise OutOfMemory(f"out of memory even for one frame at a time: {exc}") from exc
            size = max(1, size // 2)
            hooks.note(f"out of memory: retrying with batches of {size}")
            continue
        start = stop
    return out


def run_adaptive(work: Callable[[int, int, int | None], list], n: int, plan: Plan, full_side: int,
                 hooks: Hooks) -> list:
    """``work(start, stop, tile)`` over ``range(n)`` under the module's out-of-memory policy.

    ``full_side``: the longer side of the frame, where tile halving starts when the plan had no tiles.
    """
    tile = plan.tile
    while True:
        try:
            return run_batched(lambda start, stop: work(start, stop, tile), n, plan.batch, hooks)
        except OutOfMemory:
            side = tile or full_side
            if side // 2 < MIN_TILE:
                raise
            tile = side // 2
            hooks.note(f"out of memory: retrying in tiles of {tile} px")
