"""Asymmetric synergistic blending, ASB (paper §3.1): the conditions' source features.

pyramid (Eq. 1-2 metric) -> forward_warp (f_t,0 and holes, Eq. 1-2, 5-6) -> pam (f_t,1, Eq. 3-4)
-> adm (quasi-binary mask and blend, Eq. 7-9). Level lists are finest first ([l0, l1, l2]).
"""
from .adm import AttentionMerge, SoftBinary  # noqa: F401
from .forward_warp import WarpedPyramid, forward_warp, splat_flow_t1  # noqa: F401
from .pam import DCNPack, DeformableAlign  # noqa: F401
from .pyramid import FeatureEncoder, FeaturePyramid, Softmetric  # noqa: F401

__all__ = [
    "AttentionMerge",
    "DCNPack",
    "DeformableAlign",
    "FeatureEncoder",
    "FeaturePyramid",
    "SoftBinary",
    "Softmetric",
    "WarpedPyramid",
    "forward_warp",
    "splat_flow_t1",
]
