"""The three stages of PerVFI as functions: estimate_flow -> blend -> decode (paper Fig. 2), and fused.

One API for the command line, the ComfyUI nodes and the tests. Frames are ``(N, 3, H, W)`` in
[0, 1]; flows are in pixels, channel 0 = x. ``engine`` is an :class:`~pervfi_core.engine.Engine`
(any engine of :mod:`pervfi_core.registry`, :func:`pervfi_core.engines.load_engine`); ``estimator`` a motion estimator
(``est(img0, img1) -> (F0->1, F1->0)``, :func:`pervfi_core.engines.load_estimator`). Options
(τ, seed, scene threshold, batch, pixel budgets) come as an :class:`~.options.Options` and/or as
keyword overrides of its fields.

Two ways through, with the same frames out:

* split (the nodes' Flow Estimation -> ASB Blend -> Flow Decode): one Blend per frame pair is kept,
  parked on ``hooks.park_device`` (CPU by default), so that re-decoding with another τ or seed does
  not recompute flows or blends;
* fused (:func:`interpolate` and the streaming video loop, :mod:`.loop`): :func:`generate`, the one
  per-pair generator, runs flow -> blend -> decode pair by pair and holds one pair at a time.

An engine that finds its own motion inside ``blend`` (``engine.needs_motion`` False) gets None flows:
no estimator runs for it (``estimator`` may be None), the split path's flows hold no tensors, and
tiles get a fixed context margin (:data:`.tiling.SELF_MOTION_CONTEXT`).

Both use the scene-cut rule of :func:`.scenes.is_cut` (a pair across a cut is never blended; its new
frames repeat the nearer input frame) and the tiling plan and out-of-memory policy of :mod:`.tiling`.

Inputs are checked once, at the public entry: every frame (one pass, one device sync for the whole
clip; :func:`generate` checks each frame of its stream as it arrives) and the flows given to
:func:`blend`. The per-pair work then runs inside :func:`~pervfi_core.checks.trusted`, where the scene
test, the estimator and the engine skip their own value scans and syncs.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F

from ..checks import MAX_FRAME_VALUE, check_engine, check_estimator, check_image, trusted
from ..errors import InputError
from .hooks import Hooks
from .options import FLOW_MAX_PIXELS, Options, make_options
from .scenes import is_cut
from .schedule import Target, as_schedule
from .tiling import margin, over_tiles, paste_cores, plan, run_adaptive, run_batched, run_tiled

logger = logging.getLogger(__name__)


@dataclass
class PairFlows:
    """Flows of consecutive pairs: ``forward`` (N-1,2,H,W) F_i->i+1 on frame i's grid, ``backward`` F_i+1->i;
    both None when no motion was estimated (for an engine that finds its own: ``needs_motion`` False)."""

    forward: torch.Tensor | None
    backward: torch.Tensor | None

    def to(self, device=None, dtype=None) -> "PairFlows":
        return PairFlows(*(None if f is None else f.to(device=device, dtype=dtype)
                           for f in (self.forward, self.backward)))


@dataclass
class TiledBlend:
    """One blend per spatial tile of a frame above the pixel budget (what ``engine.blend`` returns for
    each crop), with the boxes of :func:`~.tiling.tile_boxes`; :func:`decode` decodes every tile and
    keeps its core, as the fused path does."""

    size: tuple[int, int]
    tiles: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int], object]]  # (outer, inner, blend)

    def to(self, device=None, dtype=None) -> "TiledBlend":
        return replace(self, tiles=[(o, i, b.to(device=device, dtype=dtype)) for o, i, b in self.tiles])

    def select(self, start: int, stop: int) -> "TiledBlend":
        return replace(self, tiles=[(o, i, b.select(start, stop)) for o, i, b in self.tiles])

    @property
    def batch(self) -> int:
        return self.tiles[0][2].batch

    @property
    def masks(self) -> list[torch.Tensor]:
        """[finest mask (B,1,H,W)] stitched from the tiles' cores."""
        return [paste_cores(((o, i, b.masks[0]) for o, i, b in self.tiles), self.size)]

    def nbytes(self) -> int:
        return sum(b.nbytes() for _, _, b in self.tiles)


@dataclass
class PairBlend:
    """New frames ``targets`` of pair ``pair`` and their batched ``blend`` (None across a scene cut)."""

    pair: int
    targets: list[Target]
    blend: object | None


@dataclass
class Blends:
    """Output of :func:`blend`: everything :func:`decode` needs except the frames and the engine."""

    n_frames: int
    schedule: object
    items: list[PairBlend] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  # pair i straddles a cut between frames i and i+1
    log: list[str] = field(default_factory=list)  # what the blend stage noted (capped budgets, retries)

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
    """The entry check of a clip: (N,3,H,W) float, N >= 2, finite, in [0, 1] (checks.FRAME_TOLERANCE) (one pass, one sync)."""
    check_image("frames", frames, max_value=MAX_FRAME_VALUE)
    if frames.shape[0] < 2:
        raise InputError(f"frames: need at least 2 frames to interpolate, got {frames.shape[0]}")


# ------------------------------------------------------------------------------ stage 1: motion
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


def estimate_flow(frames: torch.Tensor, estimator, *, engine=None, options: Options | None = None,
                  hooks: Hooks | None = None, batch_size: int = 1, **overrides) -> PairFlows:
    """Stage 1: flows of every consecutive pair of ``frames`` (N,3,H,W) in [0,1], N >= 2.

    ``engine``: the engine the flows are for; for one that finds its own motion (``needs_motion`` False),
    or without an ``estimator``, nothing is estimated: PairFlows(None, None)."""
    _check_frames(frames)
    check_estimator("estimator", estimator)
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    if estimator is None or (engine is not None and not engine.needs_motion):
        return PairFlows(None, None)
    n_pairs = frames.shape[0] - 1

    def run(start: int, stop: int) -> list:
        hooks.check_interrupt()
        a, b = hooks.place(frames[start:stop]), hooks.place(frames[start + 1:stop + 1])
        with torch.no_grad():
            fwd, bwd = flow_pair(estimator, a, b, max_pixels=opts.flow_max_pixels)
        hooks.report(stop, n_pairs)
        return [(hooks.park(fwd), hooks.park(bwd))]

    with trusted():
        parts = run_batched(run, n_pairs, batch_size, hooks)
    return PairFlows(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


# ------------------------------------------------------------------------------ stage 2: ASB
def _blend_crops(engine, inputs: Sequence[torch.Tensor], ts: Sequence[float]):
    """``engine.blend`` of one crop of a pair for the timesteps ``ts`` (the pair expanded to a batch; None
    flows stay None)."""
    t = torch.tensor(list(ts), device=inputs[0].device, dtype=inputs[0].dtype)
    with torch.no_grad():
        return engine.blend(*(None if x is None else x.expand(len(ts), -1, -1, -1) for x in inputs), t)


def blend(frames: torch.Tensor, flows: PairFlows, engine, timesteps=2, *, options: Options | None = None,
          hooks: Hooks | None = None, **overrides) -> Blends:
    """Stage 2: asymmetric blending for every new frame.

    ``timesteps``: a multiplier (int), a :class:`~.schedule.Retime`, or a sequence of floats in (0, 1)
    used between every pair. Returns :class:`Blends` (parked on ``hooks.park_device``); pairs across a
    scene cut get ``blend=None``. Frames above the pixel budget are blended in tiles
    (:class:`TiledBlend`), so that blend -> decode gives the frames :func:`interpolate` gives.
    """
    _check_frames(frames)
    check_engine("engine", engine)
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    schedule = as_schedule(timesteps)
    n = frames.shape[0]
    for f in (flows.forward, flows.backward):
        if f is not None and (f.shape[0] != n - 1 or f.shape[2:] != frames.shape[2:]):
            raise InputError(f"flows: expected {n - 1} pairs of {tuple(frames.shape[2:])} flows for {n} frames, "
                             f"got {tuple(f.shape)}; were they computed for these frames?")
    if not engine.needs_motion:
        flows = PairFlows(None, None)  # it finds its own motion: flows that came along (checked above) are not used
    elif flows.forward is None or flows.backward is None:
        raise InputError(f"flows: {engine.name} blends along motion, and these flows hold none (estimated "
                         "without a motion estimator, or for an engine that finds its own); estimate them with one")
    else:
        check_image("flows.forward", flows.forward, channels=2)
        check_image("flows.backward", flows.backward, channels=2)
    with trusted():
        return _blend_pairs(frames, flows, engine, schedule, opts, hooks)


def _blend_pairs(frames: torch.Tensor, flows: PairFlows, engine, schedule, opts: Options, hooks: Hooks) -> Blends:
    """:func:`blend` after its entry checks."""
    n = frames.shape[0]
    out = Blends(n, schedule, log=hooks.log)
    h, w = frames.shape[2:]
    work_plan = plan(engine, h, w, opts.batch_size, opts.blend_max_pixels, hooks)
    for i in range(n - 1):
        hooks.check_interrupt()
        new = [tg for tg in schedule.targets_in_pair(i) if not tg.is_input]
        a, b = hooks.place(frames[i:i + 1]), hooks.place(frames[i + 1:i + 2])
        if new and is_cut(a, b, threshold=opts.scene_threshold):
            out.cuts.append(i)
            out.items.append(PairBlend(i, new, None))
        elif new:
            inputs = [a, b, *(None if f is None else hooks.place(f[i:i + 1]) for f in (flows.forward, flows.backward))]
            context = functools.cache(lambda: margin(inputs[2], inputs[3]))  # a device sync: asked only when tiling

            def work(start: int, stop: int, tile: int | None) -> list:
                ts = [float(tg.t) for tg in new[start:stop]]
                step = lambda parts: hooks.park(_blend_crops(engine, parts, ts))  # noqa: E731
                if tile is None:
                    return [PairBlend(i, new[start:stop], step(inputs))]
                tiles = list(over_tiles(step, inputs, tile=tile, margin=context(), hooks=hooks))
                return [PairBlend(i, new[start:stop], TiledBlend((h, w), tiles))]

            out.items.extend(run_adaptive(work, len(new), work_plan, max(h, w), hooks))
        hooks.report(i + 1, n - 1)
    return out


# ------------------------------------------------------------------------------ stage 3: decode
def _decode_blend(engine, blend, *, tau: float, seed: int, hooks: Hooks) -> torch.Tensor:
    """engine.decode of a Blend, or of every tile of a TiledBlend with the cores stitched."""
    device = engine.device
    if not isinstance(blend, TiledBlend):
        return engine.decode(blend.to(device=device), tau=tau, seed=seed)

    def pieces():
        for outer, inner, b in blend.tiles:
            hooks.check_interrupt()
            yield outer, inner, engine.decode(b.to(device=device), tau=tau, seed=seed)

    return paste_cores(pieces(), blend.size)


def decode(frames: torch.Tensor, blends: Blends, engine, *, options: Options | None = None,
           hooks: Hooks | None = None, **overrides) -> torch.Tensor:
    """Stage 3: the output clip (M,3,H,W) in [0,1] — input frames (unchanged) and new frames interleaved.

    New frame j of a stochastic model (v00) is drawn with seed ``options.seed_for(j)``, whatever the
    batching. On out-of-memory a batched blend is decoded in smaller batches (its tiles were fixed by
    the blend stage).
    """
    _check_frames(frames)
    check_engine("engine", engine)
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    new = {}
    for item in blends.items:
        hooks.check_interrupt()
        if item.blend is None:
            new.update({tg.index: frames[nearest_input(tg)] for tg in item.targets})
            continue

        def run(start: int, stop: int, item=item) -> list:
            part = item.blend if (start, stop) == (0, item.blend.batch) else item.blend.select(start, stop)
            with torch.no_grad():
                return [_decode_blend(engine, part, tau=opts.tau, seed=opts.seed_for(item.targets[start].index),
                                      hooks=hooks)]

        y = torch.cat(run_batched(run, item.blend.batch, item.blend.batch, hooks))
        new.update({tg.index: y[k].to(device=frames.device, dtype=frames.dtype) for k, tg in enumerate(item.targets)})
        hooks.report(item.pair + 1, blends.n_frames - 1)
    return torch.stack([frames[tg.pair] if tg.is_input else new[tg.index] for tg in blends.targets])


# ------------------------------------------------------------------------------ fused
def interpolate_pair(img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float], engine, estimator=None, *,
                     flows=None, seeds: Sequence[int] | None = None, options: Options | None = None,
                     hooks: Hooks | None = None, **overrides) -> torch.Tensor:
    """All three stages for one pair: images (1,3,H,W) -> new frames (len(ts),3,H,W) at timesteps ``ts``.

    ``seeds``: one per new frame (default ``options.seed_for(k)``). Work follows :mod:`.tiling`: calls
    of at most the pixel budget, tiles with context for larger frames, the out-of-memory policy.
    ``flows``: (F0->1, F1->0) already estimated; an engine that finds its own motion gets (None, None).
    """
    check_engine("engine", engine)
    check_estimator("estimator", estimator)
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    if not engine.needs_motion:
        flows = (None, None)
    elif flows is None:
        _need_estimator(engine, estimator)
        with torch.no_grad():
            flows = flow_pair(estimator, img0, img1, max_pixels=opts.flow_max_pixels)
    fflow, bflow = flows
    seeds = list(seeds) if seeds is not None else [opts.seed_for(k) for k in range(len(ts))]
    h, w = img0.shape[-2:]
    work_plan = plan(engine, h, w, min(opts.batch_size, len(ts)), opts.blend_max_pixels, hooks)
    inputs = [img0, img1, fflow, bflow]
    context = functools.cache(lambda: margin(fflow, bflow))  # a device sync: asked only when tiling

    def work(start: int, stop: int, tile: int | None) -> list:
        hooks.check_interrupt()

        def step(parts):
            b = _blend_crops(engine, parts, ts[start:stop])
            with torch.no_grad():
                return engine.decode(b, tau=opts.tau, seed=seeds[start])

        return [step(inputs) if tile is None else run_tiled(step, inputs, tile=tile, margin=context(), hooks=hooks)]

    return torch.cat(run_adaptive(work, len(ts), work_plan, max(h, w), hooks))


def _need_estimator(engine, estimator) -> None:
    if estimator is None and engine.needs_motion:
        raise InputError(f"estimator: {engine.name} blends along motion; give a motion estimator "
                         "(only an engine that finds its own motion runs without one)")


def interpolate_alpha(a0: torch.Tensor, a1: torch.Tensor, ts: Sequence[float], engine, *, flows=None,
                      seeds: Sequence[int] | None = None, options: Options | None = None,
                      hooks: Hooks | None = None) -> torch.Tensor:
    """The alpha (len(ts),1,H,W) of new frames between alphas (1,1,H,W): run through the same engine as a
    gray image, along ``flows``, the motion of the RGB pair (an engine that finds its own motion finds it
    in the alpha).

    Why so: a time-weighted blend (1-t)·A0 + t·A1 would leave a moving opaque shape as two half-transparent
    ghosts at its old and new places while the colour shows it once, in between; moved by the colour's
    motion, the alpha stays on the colour. Costs a second blend and decode per new frame, no second flow.
    """
    if engine.needs_motion and flows is None:
        raise InputError(f"flows: {engine.name} blends along motion; give the RGB pair's (F0->1, F1->0)")
    gray = interpolate_pair(a0.expand(-1, 3, -1, -1).contiguous(), a1.expand(-1, 3, -1, -1).contiguous(), ts,
                            engine, None, flows=flows, seeds=seeds, options=options, hooks=hooks)
    return gray.mean(dim=1, keepdim=True).clamp(0, 1)


def _split_alpha(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(1,3,H,W) -> (x, None); (1,4,H,W) RGBA -> (RGB, alpha (1,1,H,W)); each checked (in [0, 1])."""
    if x.ndim == 4 and x.shape[1] == 4:
        check_image(f"{name} alpha", x[:, 3:], channels=1, max_value=MAX_FRAME_VALUE)
        x, alpha = x[:, :3], x[:, 3:]
    else:
        alpha = None
    check_image(name, x, max_value=MAX_FRAME_VALUE)  # no value scan when trusted
    return x, alpha


def generate(frames: Iterable, engine, estimator, schedule, *, place: Callable[[object], torch.Tensor],
             options: Options | None = None, hooks: Hooks | None = None, total_pairs: int | None = None,
             cuts: list[int] | None = None, first_frame: int = 0, final: bool = True
             ) -> Iterator[tuple[Target, object, bool]]:
    """The one per-pair loop: ``(target, value, is_new)`` for every output frame, in order.

    ``frames`` is any iterable of input frames (tensors, 8-bit arrays); ``place(frame)`` makes the
    (1,3,H,W) tensor the engine sees, or (1,4,H,W): RGB and an alpha, interpolated beside the colour by
    :func:`interpolate_alpha` (the scene test looks at the colour). ``value`` is the input frame itself
    (``is_new`` False: the frame on the grid, or the nearer frame repeated across a scene cut) or a new
    frame (1,C,H,W) in [0,1]. Holds two input frames and one pair's flows and blends at a time. Cut pairs
    are appended to ``cuts``.

    A part of a longer clip: ``first_frame`` is the clip-wide index of the first frame given, so targets,
    their indices and hence the seeds of new frames are those of one run over the whole clip; ``final``
    says whether this part ends the clip (only then the output frame on the last input is emitted).
    Parts that overlap by one input frame concatenate to exactly the whole run.
    Raises InputError for fewer than 2 frames (after consuming them), or for a frame that is not
    (1,3,H,W) / (1,4,H,W) in [0, 1] (each frame is checked once, as it arrives).
    """
    check_engine("engine", engine)  # once per run, before the first pair
    check_estimator("estimator", estimator)
    _need_estimator(engine, estimator)
    opts, hooks = make_options(options), hooks or Hooks()
    prev = prev_t = prev_a = None
    n = 0
    for frame in frames:
        hooks.check_interrupt()
        cur_t, cur_a = _split_alpha(f"frame {first_frame + n}", place(frame))
        if prev is not None:
            i = first_frame + n - 1
            targets = schedule.targets_in_pair(i)
            new = [tg for tg in targets if not tg.is_input]
            if targets and targets[0].is_input:
                yield targets[0], prev, False
            with trusted():  # checked on arrival; no yield inside the scope
                cut = bool(new) and is_cut(prev_t, cur_t, threshold=opts.scene_threshold)
            if cut:
                if cuts is not None:
                    cuts.append(i)
                logger.info("scene cut between input frames %d and %d: repeating frames instead of blending", i, i + 1)
                for tg in new:
                    yield tg, prev if nearest_input(tg) == i else frame, False
            elif new:
                ts, seeds = [float(tg.t) for tg in new], [opts.seed_for(tg.index) for tg in new]
                with trusted():
                    ys = _new_frames(prev_t, cur_t, prev_a, cur_a, ts, engine, estimator, seeds, opts, hooks)
                for k, tg in enumerate(new):
                    yield tg, ys[k:k + 1], True
            hooks.report(n, total_pairs)
        prev, prev_t, prev_a, n = frame, cur_t, cur_a, n + 1
    if n < 2:
        raise InputError(f"need at least 2 input frames to interpolate, got {n}")
    last = schedule.final_target(first_frame + n) if final else None
    if last is not None:
        yield last, prev, False


def _new_frames(img0, img1, a0, a1, ts, engine, estimator, seeds, opts: Options, hooks: Hooks) -> torch.Tensor:
    """New frames (len(ts),C,H,W) of one pair: RGB, and the alpha beside it where both frames have one."""
    if a0 is None or a1 is None:
        return interpolate_pair(img0, img1, ts, engine, estimator, seeds=seeds, options=opts, hooks=hooks)
    flows = None
    if engine.needs_motion:  # one motion for colour and alpha
        with torch.no_grad():
            flows = flow_pair(estimator, img0, img1, max_pixels=opts.flow_max_pixels)
    rgb = interpolate_pair(img0, img1, ts, engine, estimator, flows=flows, seeds=seeds, options=opts, hooks=hooks)
    alpha = interpolate_alpha(a0, a1, ts, engine, flows=flows, seeds=seeds, options=opts, hooks=hooks)
    return torch.cat([rgb, alpha.to(rgb)], dim=1)


def interpolate(frames: torch.Tensor, engine, estimator, timesteps=2, *, options: Options | None = None,
                hooks: Hooks | None = None, cuts: list[int] | None = None, first_frame: int = 0, final: bool = True,
                **overrides) -> torch.Tensor:
    """All stages fused per pair: frames (N,3,H,W) in [0,1] -> (M,3,H,W), inputs kept exactly.

    Equivalent to estimate_flow -> blend -> decode, but holds one pair's flows and blends at a time
    (new frames are parked on ``hooks.park_device`` as they are made). Scene cuts repeat the nearer frame
    (their pair indices are appended to ``cuts``). ``first_frame``/``final``: a part of a longer clip
    (see :func:`generate`).
    """
    _check_frames(frames)
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    n = frames.shape[0]
    park = hooks.park_device or frames.device
    with trusted():  # all frames checked above; generate() runs to its end inside the scope
        out = [value.to(device=park, dtype=frames.dtype) if is_new else value
               for _, value, is_new in generate((frames[i:i + 1] for i in range(n)), engine, estimator,
                                                as_schedule(timesteps), place=hooks.place, options=opts, hooks=hooks,
                                                total_pairs=n - 1, cuts=cuts, first_frame=first_frame, final=final)]
    return torch.cat([x.to(park) for x in out])
