"""Generator of PerVFI: multi-scale fusion, conditional normalizing flow (v00), fast decoder (vb).

Keys are relative to the official prefixes: ``multiscaleFuse.`` (:class:`MultiscaleFuse`),
``condFLownet.`` (:class:`CondFlowNet`), ``generator.`` (:class:`VBDecoder`).
"""
from .fuse import MultiscaleFuse
from .glow import CondFlowNet, GlowBlock
from .glow_layers import (
    ActNorm,
    AffineCoupling,
    GlowStep,
    InvConv2d,
    ZeroConv2d,
    gaussian_log_p,
    gaussian_sample,
)
from .vb import VBDecoder

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "CondFlowNet",
    "GlowBlock",
    "GlowStep",
    "InvConv2d",
    "MultiscaleFuse",
    "VBDecoder",
    "ZeroConv2d",
    "gaussian_log_p",
    "gaussian_sample",
]
