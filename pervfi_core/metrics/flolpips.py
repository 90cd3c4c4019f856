"""FloLPIPS-style motion-weighted LPIPS — an APPROXIMATION of FloLPIPS (Danier, Zhang, Bull,
"FloLPIPS: A Bespoke Video Quality Metric for Frame Interpolation", PCS 2022).

FloLPIPS weights each LPIPS (alex, v0.1) layer map by where the motion of the interpolated frame
disagrees with that of the ground truth: with F_ref = flow(I_t^GT → I_0), F_dis = flow(Î_t → I_0),

    w_l = ‖F_ref − F_dis‖₂ resized (bilinear) to layer l's grid, normalised to sum 1
    d_0 = Σ_l Σ_hw w_l · lpips_map_l(Î_t, I_t^GT)

and the result is the mean of d_0 and the same with I_1. The published metric uses PWC-Net flows;
this one uses whatever estimator is passed (in the benchmark: the project's own,
``pervfi_core.flow.build_estimator``), so its values are NOT comparable with published FloLPIPS
numbers, only between methods measured with the same estimator. Where the two flows agree
everywhere (zero weight sum) the weights fall back to uniform, i.e. plain LPIPS, where the
published code would divide by zero.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_image, check_same_shape
from .lpips import LPIPS

FlowFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def motion_weighted_average(layer_map: torch.Tensor, flow_diff: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B, 1, h, w) distance map, (B, 2, H, W) flow difference -> (B,) weighted sum (weights sum to 1)."""
    diff = F.interpolate(flow_diff, size=layer_map.shape[-2:], mode="bilinear", align_corners=False)
    mag = diff.pow(2).sum(dim=1, keepdim=True).sqrt()  # (B, 1, h, w)
    total = mag.sum(dim=(1, 2, 3), keepdim=True)
    uniform = torch.full_like(mag, 1.0 / mag[0].numel())
    weight = torch.where(total > eps, mag / total.clamp_min(eps), uniform)
    return (layer_map * weight).sum(dim=(1, 2, 3))


class FloLPIPSApprox(nn.Module):
    """Motion-weighted LPIPS (approximate FloLPIPS; see the module docstring).

    ``flow``: callable ``(a, b) -> (F_a→b, F_b→a)`` on (B, 3, H, W) frames in [0, 1], flows
    (B, 2, H, W) in pixels — a ``pervfi_core.flow`` estimator fits. ``lpips``: an
    :class:`~pervfi_core.metrics.lpips.LPIPS` (default: alex, as FloLPIPS).
    """

    def __init__(self, *, flow: FlowFn, lpips: LPIPS | None = None):
        super().__init__()
        self.flow = flow
        self.lpips = LPIPS(net="alex") if lpips is None else lpips

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Inputs (B, 3, H, W) in [0, 1]: the two neighbours, the interpolated and the true frame -> (B,)."""
        for name, x in (("img0", img0), ("img1", img1), ("pred", pred), ("gt", gt)):
            check_image(name, x)
            check_same_shape("gt", gt, name, x)
        maps = self.lpips.layer_maps(gt, pred)
        scores = []
        for neighbour in (img0, img1):
            flow_ref = self.flow(gt, neighbour)[0]
            flow_dis = self.flow(pred, neighbour)[0]
            diff = flow_ref - flow_dis
            scores.append(sum(motion_weighted_average(m, diff) for m in maps))
        return (scores[0] + scores[1]) / 2
