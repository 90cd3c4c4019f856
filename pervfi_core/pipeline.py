"""The three stages of PerVFI as functions: estimate_flow -> blend -> decode (paper Fig. 2).

One API for the command line, the ComfyUI nodes and the tests. Frames are ``(N, 3, H, W)`` in
[0, 1]; flows are in pixels, channel 0 = x. ``model`` is anything with PerVFI's
``blend(img0, img1, fflow, bflow, t) -> Blend`` / ``decode(blend, tau, seed) -> (B,3,H,W)``
interface: :class:`pervfi_core.model.PerVFI` or the training-free default
(:class:`pervfi_core.training_free.TrainingFreeVFI`). ``estimator`` is a motion estimator from
:func:`pervfi_core.flow.build_estimator` (``est(img0, img1) -> (F0->1, F1->0)``).

Memory: the split stages keep one Blend per frame pair, parked on ``hooks.park_device`` (CPU by
default) between ``blend`` and ``decode``, so that re-decoding with another tau or seed does not
recompute flows or blends (what the nodes need). For whole videos, :mod:`pervfi_core.pipeline_loop`
fuses the stages per frame pair instead and holds a constant number of frames (long clips).

Scene cuts (:mod:`pervfi_core.scenes`): a pair that straddles a cut is never blended; its new
frames repeat the nearer input frame.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from .checks import check_image
from .errors import InputError
from .pipeline_hooks import Hooks, OutOfMemory, paste_cores, run_batched, run_tiled, tile_boxes
from .pipeline_schedule import Retime, Target, as_schedule
from .scenes import DEFAULT_THRESHOLD, cut_scores

logger = logging.getLogger(__name__)

FLOW_MAX_PIXELS = 1920 * 1088  # larger frames: motion estimated on a downscaled copy (speed, memory)
BLEND_MAX_PIXELS = 1920 * 1088  # pixels per blend/decode call (batch x H x W); larger frames are tiled
MIN_TILE = 64  # px; smaller tiles would be mostly context
TILE_CONTEXT = 32  # px of context around a tile beyond the largest motion (receptive field of the model)


@dataclass
class PairFlows:
    """Flows of consecutive pairs: ``forward`` (N-1,2,H,W) F_i->i+1 on frame i's grid, ``backward`` F_i+1->i."""

    forward: torch.Tensor
    backward: torch.Tensor

    def to(self, device=None, dtype=None) -> "PairFlows":
        return PairFlows(self.forward.to(device=device, dtype=dtype), self.backward.to(device=device, dtype=dtype))


@dataclass
class TiledBlend:
    """One blend per spatial tile of a frame above the model's pixel budget (what ``model.blend``
    returns for each crop), with the tile boxes of :func:`~pervfi_core.pipeline_hooks.tile_boxes`;
    :func:`decode` decodes every tile and keeps its core, as :func:`interpolate_pair` does."""

    size: tuple[int, int]
    tiles: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int], object]]  # (outer, inner, blend)

    def to(self, device=None, dtype=None) -> "TiledBlend":
        return replace(self, tiles=[(o, i, b.to(device=device, dtype=dtype)) for o, i, b in self.tiles])

    @property
    def masks(self) -> list[torch.Tensor]:
        """[finest mask (B,1,H,W)] stitched from the tiles' cores."""
        return [paste_cores(((o, i, b.masks[0]) for o, i, b in self.tiles), self.size)]

    def nbytes(self) -> int:
        return sum(b.nbytes() for _, _, b in self.tiles if hasattr(b, "nbytes"))


def _tiling(model, height: int, width: int, batch: int, max_pixels: int | None) -> tuple[int, int | None]:
    """(frames per call, tile side or None) so that one blend/decode call handles at most the smaller of
    ``max_pixels`` and the model's own ``max_pixels`` (batch x H x W)."""
    budgets = [b for b in (max_pixels, getattr(model, "max_pixels", None)) if b]
    limit = min(budgets) if budgets else height * width * batch
    per_call = max(1, limit // (height * width))
    size = 1 if getattr(model, "stochastic", False) else min(batch, per_call)
    tile = None if height * width <= limit else max(MIN_TILE, int(math.sqrt(limit)))
    return size, tile


def _margin(fflow: torch.Tensor, bflow: torch.Tensor) -> int:
    """Context around a tile: the largest motion plus the model's receptive field."""
    return int(math.ceil(float(torch.cat([fflow, bflow]).abs().max()))) + TILE_CONTEXT


@dataclass
class PairBlend:
    """The new frames of pair ``pair``: their ``targets`` and one batched ``blend`` (None across a scene cut)."""

    pair: int
    targets: list[Target]
    blend: object | None


@dataclass
class Blends:
    """Output of :func:`blend`: everything :func:`decode` needs except the frames and the model."""

    n_frames: int
    schedule: object
    items: list[PairBlend] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  # pair i straddles a cut between frames i and i+1

    @property
    def targets(self) -> list[Target]:
        return self.schedule.plan(self.n_frames)

    @property
    def masks(self) -> list[torch.Tensor]:
        """Finest quasi-binary mask of every blended new frame, (1,1,H,W) each, in output order."""
        return [m[None] for it in self.items if it.blend is not None for m in it.blend.masks[0]]


def nearest_input(target: Target) -> int:
    """Index of the input frame nearest to a target (the earlier one at t = 0.5)."""
    return target.pair + (1 if target.t > 0.5 else 0)


def _check_frames(frames) -> None:
    check_image("frames", frames)
    if frames.shape[0] < 2:
        raise InputError(f"frames: need at least 2 frames to interpolate, got {frames.shape[0]}")


def flow_pair(estimator, img0: torch.Tensor, img1: torch.Tensor, *, max_pixels: int | None = FLOW_MAX_PIXELS):
    """(F0->1, F1->0) for images (B,3,H,W); frames above ``max_pixels`` are estimated downscaled.

    Downscaled flows are resized back bilinearly and multiplied by the scale (pixels of the full frame).
    """
    h, w = img0.shape[-2:]
    if not max_pixels or h * w <= max_pixels:
        return estimator(img0, img1)
    scale = math.sqrt(max_pixels / (h * w))
    size = (max(8, round(h * scale)), max(8, round(w * scale)))
    small = [F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True) for x in (img0, img1)]
    gain = torch.tensor([w / size[1], h / size[0]], device=img0.device, dtype=img0.dtype).view(1, 2, 1, 1)
    return tuple(F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False) * gain
                 for f in estimator(*small))


def estimate_flow(frames: torch.Tensor, estimator, *, hooks: Hooks | None = None, batch_size: int = 1,
                  max_pixels: int | None = FLOW_MAX_PIXELS) -> PairFlows:
    """Stage 1: flows of every consecutive pair of ``frames`` (N,3,H,W) in [0,1], N >= 2."""
    _check_frames(frames)
    hooks = hooks or Hooks()
    n_pairs = frames.shape[0] - 1

    def run(start: int, stop: int) -> list:
        hooks.check_interrupt()
        a, b = hooks.place(frames[start:stop]), hooks.place(frames[start + 1:stop + 1])
        with torch.no_grad():
            fwd, bwd = flow_pair(estimator, a, b, max_pixels=max_pixels)
        hooks.report(stop, n_pairs)
        return [(hooks.park(fwd), hooks.park(bwd))]

    parts = run_batched(run, n_pairs, batch_size, hooks)
    return PairFlows(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def blend(frames: torch.Tensor, flows: PairFlows, model, timesteps=2, *, scene_threshold: float = DEFAULT_THRESHOLD,
          hooks: Hooks | None = None, batch_size: int = 4, max_pixels: int | None = BLEND_MAX_PIXELS) -> Blends:
    """Stage 2: asymmetric blending for every new frame.

    ``timesteps``: a multiplier (int), a :class:`~pervfi_core.pipeline_schedule.Retime`, or a
    sequence of floats in (0, 1) used between every pair. Returns :class:`Blends` (parked on
    ``hooks.park_device``); pairs across a scene cut get ``blend=None``. Frames above the pixel budget
    (as in :func:`interpolate_pair`) are blended in tiles (:class:`TiledBlend`), so that
    blend -> decode gives the frames :func:`interpolate` gives.
    """
    _check_frames(frames)
    hooks = hooks or Hooks()
    schedule = as_schedule(timesteps)
    n = frames.shape[0]
    if flows.forward.shape[0] != n - 1 or flows.forward.shape[2:] != frames.shape[2:]:
        raise InputError(f"flows: expected {n - 1} pairs of {tuple(frames.shape[2:])} flows for {n} frames, "
                         f"got {tuple(flows.forward.shape)}; were they computed for these frames?")
    out = Blends(n, schedule)
    size, tile = _tiling(model, *frames.shape[2:], batch_size, max_pixels)
    scores = cut_scores(frames[:-1], frames[1:])
    for i in range(n - 1):
        hooks.check_interrupt()
        new = [tg for tg in schedule.targets_in_pair(i) if not tg.is_input]
        if scores[i] > scene_threshold:
            out.cuts.append(i)
            out.items.append(PairBlend(i, new, None))
        chunks = [] if scores[i] > scene_threshold else [new[k:k + size] for k in range(0, len(new), size)]
        for chunk in chunks:
            args = [hooks.place(x[i:i + 1]) for x in (frames, frames[1:], flows.forward, flows.backward)]
            out.items.append(PairBlend(i, chunk, hooks.park(_blend_chunk(model, *args, chunk, hooks, tile))))
        hooks.report(i + 1, n - 1)
    return out


def _blend_chunk(model, img0, img1, fflow, bflow, chunk: list[Target], hooks: Hooks, tile: int | None = None):
    k = len(chunk)
    t = torch.tensor([float(tg.t) for tg in chunk], device=img0.device, dtype=img0.dtype)
    inputs = [x.expand(k, -1, -1, -1) for x in (img0, img1, fflow, bflow)]
    with torch.no_grad():
        if tile is None:
            return model.blend(*inputs, t)
        h, w = img0.shape[-2:]
        tiles = []
        for outer, inner in tile_boxes(h, w, tile, _margin(fflow, bflow)):
            hooks.check_interrupt()
            y0, y1, x0, x1 = outer
            tiles.append((outer, inner, hooks.park(model.blend(*(x[..., y0:y1, x0:x1] for x in inputs), t))))
        return TiledBlend((h, w), tiles)


def _decode_one(model, blend, *, tau: float, seed: int, hooks: Hooks) -> torch.Tensor:
    """model.decode of a Blend, or of every tile of a TiledBlend with the cores stitched."""
    device = hooks.device or "cpu"
    if not isinstance(blend, TiledBlend):
        return model.decode(blend.to(device=device), tau=tau, seed=seed)

    def pieces():
        for outer, inner, b in blend.tiles:
            hooks.check_interrupt()
            yield outer, inner, model.decode(b.to(device=device), tau=tau, seed=seed)

    return paste_cores(pieces(), blend.size)


def decode(frames: torch.Tensor, blends: Blends, model, *, tau: float = 0.3, seed: int = 0,
           hooks: Hooks | None = None) -> torch.Tensor:
    """Stage 3: the output clip (M,3,H,W) in [0,1] — input frames (unchanged) and new frames interleaved.

    New frame j of a stochastic model (v00) is drawn with seed ``seed + j``, whatever the batching.
    """
    _check_frames(frames)
    hooks = hooks or Hooks()
    new = {}
    for item in blends.items:
        hooks.check_interrupt()
        if item.blend is None:
            new.update({tg.index: frames[nearest_input(tg)] for tg in item.targets})
            continue
        with torch.no_grad():
            y = _decode_one(model, item.blend, tau=tau, seed=seed + item.targets[0].index, hooks=hooks)
        new.update({tg.index: y[k].to(device=frames.device, dtype=frames.dtype) for k, tg in enumerate(item.targets)})
        hooks.report(item.pair + 1, blends.n_frames - 1)
    return torch.stack([frames[tg.pair] if tg.is_input else new[tg.index] for tg in blends.targets])


def interpolate_pair(img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float], model, estimator=None, *,
                     flows=None, tau: float = 0.3, seeds: Sequence[int] | None = None, hooks: Hooks | None = None,
                     batch_size: int = 4, max_pixels: int | None = BLEND_MAX_PIXELS) -> torch.Tensor:
    """All three stages for one pair: images (1,3,H,W) -> new frames (len(ts),3,H,W) at timesteps ``ts``.

    Work is split so that each blend/decode call handles at most ``max_pixels`` pixels (batch x H x W);
    frames larger than that are processed in spatial tiles with enough context for the motion.
    On out-of-memory the batch is halved, then the tiles are shrunk.
    """
    hooks = hooks or Hooks()
    if flows is None:
        with torch.no_grad():
            flows = flow_pair(estimator, img0, img1)
    fflow, bflow = flows
    seeds = list(seeds) if seeds is not None else list(range(len(ts)))
    h, w = img0.shape[-2:]
    # the model may ask for smaller calls than max_pixels (PerVFI's fusion peaks at ~5 KB per pixel)
    size, tile = _tiling(model, h, w, min(batch_size, len(ts)) if batch_size else len(ts), max_pixels)
    margin = _margin(fflow, bflow)

    def run(start: int, stop: int) -> list:
        hooks.check_interrupt()
        t = torch.tensor(ts[start:stop], device=img0.device, dtype=img0.dtype)

        def step(crops):
            k = stop - start
            with torch.no_grad():
                b = model.blend(*(c.expand(k, -1, -1, -1) for c in crops), t)
                return model.decode(b, tau=tau, seed=seeds[start])

        inputs = [img0, img1, fflow, bflow]
        if tile is None:
            return [step(inputs)]
        return [run_tiled(step, inputs, tile=tile, margin=margin, hooks=hooks)]

    while True:
        try:
            return torch.cat(run_batched(run, len(ts), size, hooks))
        except OutOfMemory:
            if (tile or max(h, w)) // 2 < MIN_TILE:
                raise
            tile = (tile or max(h, w)) // 2
            hooks.log.append(f"out of memory: retrying in tiles of {tile} px")
            logger.warning("out of memory: retrying in tiles of %d px", tile)


def interpolate(frames: torch.Tensor, model, estimator, timesteps=2, *, tau: float = 0.3, seed: int = 0,
                scene_threshold: float = DEFAULT_THRESHOLD, hooks: Hooks | None = None, batch_size: int = 4,
                max_pixels: int | None = BLEND_MAX_PIXELS) -> torch.Tensor:
    """All stages fused per pair: frames (N,3,H,W) in [0,1] -> (M,3,H,W), inputs kept exactly.

    Equivalent to estimate_flow -> blend -> decode, but holds one pair's flows and blends at a time
    (new frames are parked on ``hooks.park_device`` as they are made). Scene cuts repeat the nearer frame.
    """
    _check_frames(frames)
    hooks = hooks or Hooks()
    schedule = as_schedule(timesteps)
    n, out = frames.shape[0], []
    park = hooks.park_device or frames.device
    for i in range(n - 1):
        hooks.check_interrupt()
        targets = schedule.targets_in_pair(i)
        new = [tg for tg in targets if not tg.is_input]
        out.extend(frames[i:i + 1] for tg in targets if tg.is_input)
        a, b = hooks.place(frames[i:i + 1]), hooks.place(frames[i + 1:i + 2])
        if new and float(cut_scores(a, b)[0]) > scene_threshold:
            out.extend(frames[nearest_input(tg)][None] for tg in new)
        elif new:
            ys = interpolate_pair(a, b, [float(tg.t) for tg in new], model, estimator, tau=tau,
                                  seeds=[seed + tg.index for tg in new], hooks=hooks, batch_size=batch_size,
                                  max_pixels=max_pixels)
            out.extend(y[None].to(device=park, dtype=frames.dtype) for y in ys)
        hooks.report(i + 1, n - 1)
    final = schedule.final_target(n)
    out.extend([frames[n - 1:n]] if final is not None else [])
    return torch.cat([x.to(park) for x in out])


__all__ = ["interpolate", "PairFlows", "PairBlend", "Blends", "TiledBlend", "estimate_flow", "blend", "decode", "flow_pair",
           "interpolate_pair", "nearest_input", "Hooks", "Retime"]
