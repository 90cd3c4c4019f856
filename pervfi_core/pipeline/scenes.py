"""Scene-cut detection: never blend two different shots.

A cut changes both what colours a frame holds and where things are; motion within a shot (a fast
pan included) moves things but keeps the colours, and a flash or a lighting change alters the
colours but keeps the layout. The score of a pair is therefore the geometric mean of two changes,
each in [0, 1]:

* colour: the total-variation distance between per-channel 32-bin histograms of the two frames
  (reduced to at most 128 px wide first), averaged over the three channels;
* layout: 1 minus the correlation of the two frames' luma, normalised (zero mean, unit norm:
  brightness and contrast do not count) at 32 px wide, where a pan of a few pixels barely moves
  anything; clamped to [0, 1] (an inverted image is a full change).

score = sqrt(colour * layout), so a pair needs both to be a cut. Measured by bench/bench_scenes.py
(BENCHMARKS.md, "Scene cuts"): opencv-doc's Megamind.avi has four cuts scoring 0.34-0.79 while its
other pairs stay below 0.02 (the colour change alone gave three of its cuts only 0.16-0.18); bikes'
fast blurred pan scores 0.185, its cuts at least 0.44; the default threshold 0.25 sits between. Limits:
a pan faster than the layout search reaches (about 6 % of the width a frame) or a flash that washes
out most of the picture can still score as a cut; a cut between two shots with the same layout and
only a new palette scores low. Lower the threshold to catch more, raise it to catch fewer; 0 turns
detection off.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_image, check_same_shape
from .options import DEFAULT_SCENE_THRESHOLD

_BINS = 32
_MAX_WIDTH = 128  # colour histograms: speed, and robustness to noise/compression
_LAYOUT_WIDTH = 32  # layout: coarse enough that motion within a shot moves little
_MAX_SHIFT = 2  # layout compared over shifts of up to 2 of its 32 columns: pans of ~6 % of the width a frame
_FLAT = 1e-3  # luma std below this (a quarter of an 8-bit level): a flat frame has no layout


def _shrink(frames: torch.Tensor, width: int) -> torch.Tensor:
    """Area downscale to at most ``width`` columns (aspect kept)."""
    b, c, h, w = frames.shape
    if w <= width:
        return frames.float()
    return F.interpolate(frames.float(), size=(max(1, round(h * width / w)), width), mode="area")


def _histograms(frames: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) in [0,1] -> normalised histograms (B,3,bins)."""
    small = _shrink(frames, _MAX_WIDTH)
    b, c = small.shape[:2]
    idx = (small.clamp(0, 1) * (_BINS - 1)).round().long().flatten(2)  # (B,3,N)
    hist = torch.zeros(b, c, _BINS, device=frames.device).scatter_add_(2, idx, torch.ones_like(idx, dtype=torch.float32))
    return hist / idx.shape[-1]


def _normalised(luma: torch.Tensor) -> torch.Tensor:
    """(B,h,w) -> (B,h*w) zero-mean, unit-norm (a flat crop stays ~0)."""
    x = luma.flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / (x.norm(dim=1, keepdim=True) + 1e-6)


def colour_change(frames0: torch.Tensor, frames1: torch.Tensor) -> torch.Tensor:
    """(B,) in [0, 1]: total-variation distance of the colour histograms, mean over channels."""
    return 0.5 * (_histograms(frames0) - _histograms(frames1)).abs().sum(-1).mean(-1)


def _layout_change(frames0: torch.Tensor, frames1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) in [0, 1]: 1 - the best correlation of the normalised luma layouts over shifts of up to
    :data:`_MAX_SHIFT` of :data:`_LAYOUT_WIDTH` columns (a pan moves the layout, a cut replaces it);
    one flat frame: 1. Also (B,) bool: both frames are flat (no layout to compare)."""
    a, b = _shrink(frames0, _LAYOUT_WIDTH).mean(1), _shrink(frames1, _LAYOUT_WIDTH).mean(1)  # (B,h,w) luma
    h, w = a.shape[-2:]
    reach = min(_MAX_SHIFT, h // 8, w // 8)  # tiny frames: no shift (a crop must keep most of the frame)
    best = torch.full(a.shape[:1], -1.0, device=a.device)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            crop_a = a[:, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            crop_b = b[:, max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            best = torch.maximum(best, (_normalised(crop_a) * _normalised(crop_b)).sum(1))
    flat_a, flat_b = a.flatten(1).std(1) < _FLAT, b.flatten(1).std(1) < _FLAT
    change = torch.where(flat_a ^ flat_b, torch.ones_like(best), (1 - best).clamp(0, 1))
    return change, flat_a & flat_b


def cut_scores(frames0: torch.Tensor, frames1: torch.Tensor) -> torch.Tensor:
    """Scene-change score of each pair: frames (B,3,H,W) in [0,1] -> (B,) in [0, 1] (0 = the same shot).

    sqrt(colour change x layout change); two flat frames (black to white) have no layout: the change
    of their mean colour (black to white: 1, black to a dark grey: a little)."""
    check_image("frames0", frames0)
    check_image("frames1", frames1)
    check_same_shape("frames0", frames0, "frames1", frames1)
    colour = colour_change(frames0, frames1)
    layout, both_flat = _layout_change(frames0, frames1)
    flat_change = (frames0.float().mean((2, 3)) - frames1.float().mean((2, 3))).abs().mean(1)
    return torch.where(both_flat, flat_change, (colour * layout).sqrt())


def is_cut(frame0: torch.Tensor, frame1: torch.Tensor, *, threshold: float = DEFAULT_SCENE_THRESHOLD) -> bool:
    """True when frames (1,3,H,W) are from different shots (see :func:`cut_scores`); never with threshold 0.

    The one scene-cut rule of the pipeline: every path (fused, split stages, streaming) asks this, inside
    :func:`~pervfi_core.checks.trusted` (the frames were checked at the entry: only shapes are checked here)."""
    return bool(threshold) and bool(cut_scores(frame0, frame1)[0] > threshold)
