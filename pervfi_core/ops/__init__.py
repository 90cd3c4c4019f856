"""Stateless tensor operations: softmax splatting, backward warping, deformable convolution.

Each op is a function plus a thin ``nn.Module``; import them from their modules or from here.
"""
from .deform_conv import DeformConv2d, deform_conv2d  # noqa: F401
from .softsplat import SoftSplat, softsplat  # noqa: F401
from .warp import BackwardWarp, backward_warp  # noqa: F401

__all__ = ["BackwardWarp", "DeformConv2d", "SoftSplat", "backward_warp", "deform_conv2d", "softsplat"]
