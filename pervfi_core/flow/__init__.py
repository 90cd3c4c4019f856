"""Motion estimators: F0->1 and F1->0 for PerVFI (RAFT, GMFlow, OpenCV DIS, ``auto``).

``build_estimator(name, weights=None, device=None)`` -> ``est``; ``fflow, bflow = est(img0, img1)``.
See :mod:`.registry` for the names and :mod:`.base` for the call contract. Importing this package
loads no weights and registers nothing.
"""
from .base import FlowEstimator, NetworkEstimator, check_frames
from .registry import EstimatorRegistry, EstimatorSpec, build_estimator, default_registry

__all__ = [
    "EstimatorRegistry", "EstimatorSpec", "FlowEstimator", "NetworkEstimator", "build_estimator",
    "check_frames", "default_registry",
]
