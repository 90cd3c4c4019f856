"""Motion estimators: F0->1 and F1->0 for PerVFI (OpenCV DIS, RIFE's IFNet, GMFlow, RAFT).

``fflow, bflow = est(img0, img1)`` (:mod:`.base` has the call contract). :mod:`.registry` lists them;
``pervfi_core.engines.load_estimator(name)`` loads one with its weights, ``build_estimator(name,
weights=state_dict)`` builds one from weights already in memory. Importing this package loads no weights.
"""
from .base import FlowEstimator, NetworkEstimator, check_frames
from .registry import AUTO, ESTIMATORS, build_estimator

__all__ = ["AUTO", "ESTIMATORS", "FlowEstimator", "NetworkEstimator", "build_estimator", "check_frames"]
