"""What LPIPS and DISTS share: a distance between two images computed from deep features of each.

Both run one backbone pass over x and y together, and both let a caller compute a reference's features
once (:meth:`FeatureDistance.reference`) and score many candidates against it (:meth:`~FeatureDistance.against`),
as the benchmarks do with every method's frame against one ground truth.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_image, check_same_shape


class FeatureDistance(nn.Module):
    """Base of a feature distance. A subclass gives ``features(x)``: a list of (B, C_l, h_l, w_l) tensors for
    images (B, 3, H, W) in [0, 1], and ``distance(fx, fy)``: (B,) distances from two such lists."""

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def distance(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def pair_features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The features of ``x`` and of ``y`` (both (B, 3, H, W) in [0, 1], checked) from one pass over both."""
        check_image("x", x)
        check_image("y", y)
        check_same_shape("x", x, "y", y)
        feats = self.features(torch.cat([x, y], dim=0))  # one pass over both: (2B, C_l, h_l, w_l)
        fx, fy = zip(*(f.chunk(2, dim=0) for f in feats))
        return list(fx), list(fy)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x`` (distorted), ``y`` (reference): (B, 3, H, W) in [0, 1] -> (B,) distances."""
        return self.distance(*self.pair_features(x, y))

    def reference(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The features of a reference (1, 3, H, W), computed once for :meth:`against`."""
        check_image("y", y)
        return self.features(y)

    def against(self, x: torch.Tensor, reference: list[torch.Tensor]) -> torch.Tensor:
        """``forward(x, y)`` with y's :meth:`reference` features (B,): many candidates, one reference pass."""
        check_image("x", x)
        return self.distance(self.features(x), reference)
