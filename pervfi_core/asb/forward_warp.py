"""Forward warping of the frame-0 pyramid to time t and its binary holes (paper §3.1, Eq. 1-2, 5-6).

Only frame 0 is forward-warped (the asymmetry of ASB): level l of its pyramid is softmax-splatted
along F0->t = t·F0->1 with weight exp(-Z) (official sign convention: ``clip(-m, -20, 20)``), and a
pixel that received (almost) no splatting weight is a hole (M_b = 1). Frame 1 is aligned later by PAM,
guided by the flow F_t->1 obtained by splatting (1-t)·F1->0 once at full resolution.

Flows and metrics of the coarser levels are resized in a cascade (level 1 from level 0, level 2 from
level 1), bilinear with ``align_corners=False``; flows are scaled by the height ratio. Cascaded and
direct resizing differ: the cascade is what the official model does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..ops.softsplat import EPSILON, softsplat


METRIC_CLIP = 20.0  # |metric| bound before exp() in the splat (official value)
HOLE_THRESHOLD = 0.5  # "avg"-splatted ones at or below this are holes (Eq. 6)


@dataclass
class WarpedPyramid:
    """Frame-0 features at time t and what PAM needs; lists are per level [l0, l1, l2] (finest first).

    features: (B, c_l, h_l, w_l) splatted frame-0 features f_t,0 (Eq. 1).
    holes: (B, 1, h_l, w_l) binary masks M_b, 1 = nothing landed there (Eq. 5-6).
    flow_t1: (B, 2, H, W) flow from time t to frame 1 in pixels on the time-t grid, full resolution.
    flows_0t, metrics: the per-level splat flows t·F0->1 and splat metrics clip(-m, -20, 20).
    """

    features: list[torch.Tensor]
    holes: list[torch.Tensor]
    flow_t1: torch.Tensor
    flows_0t: list[torch.Tensor]
    metrics: list[torch.Tensor]


def resize(x: torch.Tensor, size: tuple[int, int], *, is_flow: bool = False) -> torch.Tensor:
    """Bilinear resize (align_corners=False, no antialias); a flow is scaled by new/old height."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return out * (size[0] / x.shape[-2]) if is_flow else out


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(like.dtype).view(-1, 1, 1, 1)


def splat_flow_t1(flow10: torch.Tensor, metric10: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """F_t->1 = -splat((1-t)·F1->0) with weight exp(-Z10·2(1-t)); all (B, ., H, W), t (B,)."""
    flow_1t = (1 - _per_sample(t, flow10)) * flow10
    metric = (metric10 * 2 * (1 - _per_sample(t, metric10))).clamp(-METRIC_CLIP, METRIC_CLIP)
    return -softsplat(flow_1t, flow_1t, -metric, "soft")


def forward_warp(enc0: list[torch.Tensor], flow01: torch.Tensor, flow10: torch.Tensor,
                 metric01: torch.Tensor, metric10: torch.Tensor, t: torch.Tensor) -> WarpedPyramid:
    """Warp the frame-0 pyramid to time t.

    Args:
        enc0: frame-0 features [l0 (B, c0, H, W), l1 (B, c1, H/2, W/2), l2 (B, c2, H/4, W/4)].
        flow01, flow10: (B, 2, H, W) F0->1 on frame 0's grid and F1->0 on frame 1's grid, pixels.
        metric01, metric10: (B, 1, H, W) raw Softmetric outputs Z01, Z10 (before time scaling).
        t: (B,) target times in [0, 1].
    """
    flow = _per_sample(t, flow01) * flow01  # F0->t (Eq. 1)
    metric = metric01 * 2 * _per_sample(t, metric01)  # time-scaled Z, (raw·2)·t as in the official code
    features, holes, flows, metrics = [], [], [], []
    for level, feat in enumerate(enc0):
        if level:  # cascade: resize the previous level's flow and metric
            flow = resize(flow, feat.shape[-2:], is_flow=True)
            metric = resize(metric, feat.shape[-2:])
        splat_metric = (-metric).clamp(-METRIC_CLIP, METRIC_CLIP)  # weight exp(-Z)
        features.append(softsplat(feat, flow, splat_metric, "soft"))  # Eq. (1)
        # mode "avg" of ones, S / (S + 1e-7), with the single splat of ones it needs
        weight = softsplat(torch.ones_like(feat[:, :1]), flow, None, "sum")
        landed = weight / (weight + EPSILON)
        holes.append((landed <= HOLE_THRESHOLD).to(feat.dtype))  # Eq. (5)-(6)
        flows.append(flow)
        metrics.append(splat_metric)
    return WarpedPyramid(features, holes, splat_flow_t1(flow10, metric10, t), flows, metrics)
