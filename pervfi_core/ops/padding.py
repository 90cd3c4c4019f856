"""Padding frames to a size multiple (motion estimators need multiples of 8 or 16).

``centred`` reproduces the flow-estimator padder of the official PerVFI code: zero (constant)
padding, left = floor(pad_w / 2), right = the rest, same for top/bottom. ``bottom_right`` puts all
padding at the right and bottom (the official PerVFI inference closure pads frames that way).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError

MODES = ("centred", "bottom_right")


@dataclass(frozen=True)
class Padding:
    """Pixels added on each side of the last two dims; :meth:`crop` removes them again."""

    left: int
    right: int
    top: int
    bottom: int

    @property
    def is_empty(self) -> bool:
        return not (self.left or self.right or self.top or self.bottom)

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        """``(..., H + top + bottom, W + left + right)`` -> ``(..., H, W)``."""
        h, w = y.shape[-2:]
        return y[..., self.top : h - self.bottom, self.left : w - self.right]

    def apply(self, x: torch.Tensor, *, fill: str = "constant", value: float = 0.0) -> torch.Tensor:
        """Pad ``x`` ``(..., H, W)``: ``fill="constant"`` with ``value`` or ``"replicate"`` (edge pixels)."""
        if self.is_empty:
            return x
        pads = (self.left, self.right, self.top, self.bottom)
        if fill == "replicate":
            return F.pad(x, pads, mode="replicate")
        if fill != "constant":
            raise InputError(f"fill: expected 'constant' or 'replicate', got {fill!r}")
        return F.pad(x, pads, mode="constant", value=value)


def _target(n: int, multiple: int, min_size: int) -> int:
    n = max(n, min_size)
    return -(-n // multiple) * multiple


def padding_for(size: tuple[int, int], multiple: int, *, mode: str = "centred", min_size: int = 0) -> Padding:
    """The :class:`Padding` that makes ``size`` (H, W) multiples of ``multiple`` and >= ``min_size``."""
    if multiple < 1:
        raise InputError(f"multiple: expected an integer >= 1, got {multiple}")
    if mode not in MODES:
        raise InputError(f"mode: expected one of {MODES}, got {mode!r}")
    h, w = size
    pad_h = _target(h, multiple, min_size) - h
    pad_w = _target(w, multiple, min_size) - w
    if mode == "centred":
        return Padding(pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return Padding(0, pad_w, 0, pad_h)


def pad_to_multiple(
    x: torch.Tensor,
    multiple: int,
    *,
    mode: str = "centred",
    min_size: int = 0,
    value: float = 0.0,
) -> tuple[torch.Tensor, Padding]:
    """Pad ``x`` ``(..., H, W)`` with ``value`` so both sizes are multiples of ``multiple`` and >= ``min_size``.

    Returns ``(padded, padding)``; ``padding.crop(y)`` undoes it for any tensor on the padded grid
    (for example a flow computed on the padded frames).
    """
    if x.ndim < 2:
        raise InputError(f"x: expected a tensor (..., H, W), got shape {tuple(x.shape)}")
    padding = padding_for(tuple(x.shape[-2:]), multiple, mode=mode, min_size=min_size)
    return padding.apply(x, value=value), padding
