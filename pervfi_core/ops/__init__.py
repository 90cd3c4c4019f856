"""Stateless tensor operations: softmax splatting, backward warping, deformable convolution.

Each op is a function plus a thin ``nn.Module``; import them from their modules or from here.
"""
from .softsplat import SoftSplat, softsplat  # noqa: F401
from .warp import BackwardWarp, backward_warp  # noqa: F401

__all__ = ["BackwardWarp", "SoftSplat", "backward_warp", "softsplat"]
