"""Softmax splatting (Niklaus & Liu, CVPR 2020): forward warping of a tensor along a flow.

PerVFI uses it for Eq. (1)-(2) (frame-0 features warped to time t with the weight exp(-Z)) and for
the binary holes of Eq. (5)-(6) (mode ``"avg"`` of a channel of ones).

Semantics follow the official CUDA kernel exactly (see the parity fixture README, "Softmax
splatting"): each source pixel (x, y) lands at (X, Y) = (x + flow_x, y + flow_y), computed in the
working dtype; it is skipped if X or Y is not finite; it feeds its four integer neighbours with
bilinear weights; neighbours outside the image are dropped (no clamping, no renormalisation);
contributions to one target are summed; unreached targets are 0.

Implementation: pure torch and vectorised. The four corner indices and weights are computed once for
the whole batch; each splatted tensor then takes one ``scatter_add_`` per corner into a flat buffer
with one extra "discard" slot that collects dropped contributions (out-of-image or non-finite).
Memory is one output plus one product the size of the input at a time. float16/bfloat16 inputs are
splatted in float32 (sums of many small weights) and cast back.
"""
from __future__ import annotations


import torch
from einops import rearrange
from torch import nn

from ..checks import check_flow
from ..errors import InputError


EPSILON = 1e-7  # added to the normaliser (in the working dtype, float32 for float32 inputs)
_BASE_MODES = ("sum", "avg", "linear", "soft")
_SUFFIXES = ("addeps", "zeroeps", "clipeps")


def _check(x: torch.Tensor, flow: torch.Tensor, metric, mode: str) -> None:
    base, _, suffix = mode.partition("-")
    if base not in _BASE_MODES or (suffix and suffix not in _SUFFIXES):
        raise InputError(
            f"softsplat: unknown mode {mode!r}; expected one of {_BASE_MODES}, optionally with a "
            f"suffix {tuple('-' + s for s in _SUFFIXES)} for avg/linear/soft"
        )
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise InputError(f"softsplat: expected input (N, C, H, W), got {tuple(getattr(x, 'shape', ()))}")
    check_flow("softsplat flow", flow, x, finite=False)  # non-finite vectors are skipped, by definition
    needs_metric = base in ("linear", "soft")
    if needs_metric and metric is None:
        raise InputError(f"softsplat: mode {mode!r} needs a metric (N, 1, H, W), got None")
    if mode in ("sum", "avg") and metric is not None:
        raise InputError(f"softsplat: mode {mode!r} takes no metric; pass metric=None")
    if metric is not None and (metric.ndim != 4 or metric.shape[1] != 1 or metric.shape[0] != x.shape[0]
                               or metric.shape[2:] != x.shape[2:]):
        raise InputError(
            f"softsplat: metric must be ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}), got {tuple(metric.shape)}"
        )


def _corners(flow: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Flat target index ``(N, 1, H*W)`` and weight ``(N, 1, H*W)`` of each of the 4 corners.

    Dropped targets (outside the image, or from a non-finite landing point) get the index H*W,
    the discard slot.
    """
    _, _, height, width = flow.shape
    gy, gx = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    land_x = gx + flow[:, 0]  # (N, H, W), the kernel's float addition
    land_y = gy + flow[:, 1]
    finite = torch.isfinite(land_x) & torch.isfinite(land_y)
    # Sanitise skipped sources so that neither values nor gradients see NaN/inf.
    land_x = torch.where(finite, land_x, torch.zeros_like(land_x))
    land_y = torch.where(finite, land_y, torch.zeros_like(land_y))
    x0 = torch.floor(land_x).detach()
    y0 = torch.floor(land_y).detach()
    x1, y1 = x0 + 1, y0 + 1
    xs = ((x0, x1 - land_x), (x1, land_x - x0))  # (corner coordinate, its 1-D weight)
    ys = ((y0, y1 - land_y), (y1, land_y - y0))
    discard = height * width
    corners = []
    for cy, wy in ys:
        cy = cy.clamp(-1, height).long()  # integer indices: float32 is not exact beyond 2^24 pixels
        for cx, wx in xs:
            cx = cx.clamp(-1, width).long()
            inside = finite & (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            flat = torch.where(inside, cy * width + cx, discard)
            corners.append((rearrange(flat, "n h w -> n 1 (h w)"), rearrange(wx * wy, "n h w -> n 1 (h w)")))
    return corners


def _splat(x: torch.Tensor, corners) -> torch.Tensor:
    """Raw splat of ``x`` (N, C, H, W) with precomputed corners -> (N, C, H, W)."""
    n, c, h, w = x.shape
    src = rearrange(x, "n c h w -> n c (h w)")
    out = src.new_zeros(n, c, h * w + 1)  # + the discard slot
    for index, weight in corners:
        out.scatter_add_(2, index.expand(n, c, h * w), src * weight)
    return out[:, :, : h * w].reshape(n, c, h, w)


def softsplat(x: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None, mode: str = "sum") -> torch.Tensor:
    """Forward-warp ``x`` along ``flow`` (official softmax-splatting semantics).

    Args:
        x: (N, C, H, W) values to splat (any range).
        flow: (N, 2, H, W) displacement in pixels of each source pixel, channel 0 = x (+right),
            channel 1 = y (+down).
        metric: (N, 1, H, W) for ``linear*`` (weight m) and ``soft*`` (weight exp(m)); ``None`` for
            ``sum``/``avg``. Not clipped here (PerVFI passes ``clip(-Z, -20, 20)``).
        mode: ``"sum"`` (raw splat), ``"avg"`` (splat / (splatted ones + 1e-7)), ``"linear"``,
            ``"soft"``, the latter two optionally suffixed ``-addeps`` (= + 1e-7, the default),
            ``-zeroeps`` (normaliser 0 -> 1) or ``-clipeps`` (normaliser clipped below at 1e-7).
            Quirk kept from the official code: only the exact string ``"avg"`` appends a channel of
            ones; ``"avg-<suffix>"`` divides the other channels by the last input channel.

    Returns:
        (N, C, H, W) for sum/avg/linear/soft; (N, C-1, H, W) for ``avg-<suffix>``.
    """
    _check(x, flow, metric, mode)
    out_dtype = x.dtype
    work = torch.promote_types(x.dtype, torch.float32)
    x, flow = x.to(work), flow.to(work)
    metric = None if metric is None else metric.to(work)
    corners = _corners(flow)
    base, _, suffix = mode.partition("-")
    if base == "sum":
        return _splat(x, corners).to(out_dtype)
    if mode == "avg":
        numer, denom = _splat(x, corners), _splat(torch.ones_like(x[:, :1]), corners)
    elif base == "avg":  # quirk: no ones channel, the last input channel normalises
        numer, denom = _splat(x[:, :-1], corners), _splat(x[:, -1:], corners)
    else:
        weight = metric if base == "linear" else metric.exp()
        numer, denom = _splat(x * weight, corners), _splat(weight, corners)
    if suffix == "zeroeps":
        denom = torch.where(denom == 0, torch.ones_like(denom), denom)
    elif suffix == "clipeps":
        denom = denom.clamp(min=EPSILON)
    else:
        denom = denom + EPSILON
    return (numer / denom).to(out_dtype)


class SoftSplat(nn.Module):
    """Module form of :func:`softsplat` with a fixed ``mode``."""

    def __init__(self, *, mode: str = "soft"):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None) -> torch.Tensor:
        return softsplat(x, flow, metric, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
