"""Colour coding of optical flow for inspection (Middlebury colour wheel).

The convention of Baker et al., "A Database and Evaluation Methodology for Optical Flow"
(IJCV 2011): the direction of a motion vector picks a hue on a wheel of six colour ramps
(red → yellow → green → cyan → blue → magenta → red), its length the saturation: no motion is
white, motion of ``max_flow`` pixels or more is the fully saturated colour. Vectors longer than
``max_flow`` are darkened so that clipped values stand out.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import check_image
from ..errors import InputError

# Number of hues in each ramp of the wheel, chosen by Baker et al. to be perceptually even:
# red→yellow, yellow→green, green→cyan, cyan→blue, blue→magenta, magenta→red.
RAMP_LENGTHS = (15, 6, 4, 11, 13, 6)
# (channel that stays at 1, channel that changes, rising?) for each ramp, channels R=0 G=1 B=2.
_RAMPS = ((0, 1, True), (1, 0, False), (1, 2, True), (2, 1, False), (2, 0, True), (0, 2, False))
# Saturated colours of clipped vectors (|flow| > max_flow) are scaled by this to mark them.
OUT_OF_RANGE_SHADE = 0.75


def color_wheel(*, device=None, dtype=torch.float32) -> torch.Tensor:
    """The wheel as ``(n_colours, 3)`` RGB in [0, 1], n_colours = ``sum(RAMP_LENGTHS)`` = 55."""
    rows = []
    for length, (full, moving, rising) in zip(RAMP_LENGTHS, _RAMPS):
        ramp = torch.floor(255 * torch.arange(length, dtype=torch.float64) / length) / 255
        rgb = torch.zeros(length, 3, dtype=torch.float64)
        rgb[:, full] = 1.0
        rgb[:, moving] = ramp if rising else 1.0 - ramp
        rows.append(rgb)
    return torch.cat(rows).to(device=device, dtype=dtype)


def flow_to_color(flow: torch.Tensor, *, max_flow: float | None = None) -> torch.Tensor:
    """Colour-code flows ``(B, 2, H, W)`` in pixels (channel 0 = x, +right; 1 = y, +down).

    ``max_flow`` is the length in pixels that maps to full saturation; ``None`` or ``<= 0`` uses
    the largest length in the whole batch (so frames of one clip share one scale).
    Returns RGB ``(B, 3, H, W)`` float in [0, 1] on the flow's device.
    """
    check_image("flow", flow, channels=2)
    if max_flow is not None and not math.isfinite(float(max_flow)):
        raise InputError(f"max_flow: expected a finite number of pixels (or None for auto), got {max_flow!r}")
    flow = flow.float()
    u, v = flow[:, 0], flow[:, 1]
    radius = torch.sqrt(u * u + v * v)  # (B, H, W)
    scale = float(max_flow) if max_flow is not None and max_flow > 0 else float(radius.max())
    radius = radius / max(scale, 1e-6)

    wheel = color_wheel(device=flow.device)
    n_colours = wheel.shape[0]
    # Angle of the vector measured so that +x (rightward motion) lands on red.
    angle = torch.atan2(-v, -u) / math.pi  # (B, H, W) in [-1, 1]
    position = (angle + 1) / 2 * (n_colours - 1)
    k0 = position.floor().long().clamp(0, n_colours - 1)
    k1 = (k0 + 1) % n_colours
    frac = (position - k0).unsqueeze(-1)  # (B, H, W, 1)
    colour = (1 - frac) * wheel[k0] + frac * wheel[k1]  # (B, H, W, 3), linear between wheel entries

    r = radius.unsqueeze(-1)
    inside = 1 - r * (1 - colour)  # saturation grows with length: white at rest
    outside = colour * OUT_OF_RANGE_SHADE
    rgb = torch.where(r <= 1, inside, outside)
    return rgb.permute(0, 3, 1, 2).clamp(0, 1).contiguous()  # (B, H, W, 3) -> (B, 3, H, W)


class FlowToColor(nn.Module):
    """Module form of :func:`flow_to_color` with a fixed ``max_flow`` (``None`` = per batch)."""

    def __init__(self, *, max_flow: float | None = None):
        super().__init__()
        self.max_flow = max_flow

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return flow_to_color(flow, max_flow=self.max_flow)
