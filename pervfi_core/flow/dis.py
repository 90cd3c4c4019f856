"""OpenCV's DIS optical flow (Kroeger et al., "Fast Optical Flow using Dense Inverse Search",
ECCV 2016): a weight-free motion estimator, about two orders of magnitude faster than the networks
on a CPU.

Frames are converted to 8-bit grayscale (OpenCV's RGB->gray weights) and each direction is
computed separately with the ``PRESET_MEDIUM`` parameters (``preset="fine"``: medium down to full
resolution with twice the variational refinement; measured in bench/results/motion.md, not better).
OpenCV is an optional dependency (``pip install opencv-python-headless``); it is imported when the
estimator is built.
"""
from __future__ import annotations


import numpy as np
import torch

from ..errors import PerVFIError
from ..specs import EstimatorSpec
from .base import FlowEstimator


#: OpenCV's DIS refuses images smaller than 12 px; smaller frames are edge-padded up to this.
MIN_SIDE = 16


def import_cv2():
    """The ``cv2`` module, or a :class:`PerVFIError` saying how to install it."""
    try:
        import cv2
    except ImportError as err:
        raise PerVFIError(
            f"the 'dis' motion estimator needs OpenCV, which is not importable ({err}); install it with "
            "`pip install opencv-python-headless`, or choose a network estimator ('gmflow-refine', 'raft')"
        ) from None
    return cv2


class DISFlow(FlowEstimator):
    """DIS flow, same call as every estimator: (B, 3, H, W) in [0, 1] twice -> (F0->1, F1->0) px.

    Runs on the CPU whatever ``.to(device)`` says (it has no parameters); results come back on the
    inputs' device as float32.
    """

    def __init__(self, *, preset: str = "medium", name: str = "dis"):
        super().__init__(name=name)
        cv2 = import_cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        if preset == "fine":  # medium, down to full resolution, with more variational refinement
            self._dis.setFinestScale(0)
            self._dis.setVariationalRefinementIterations(10)

    def _gray(self, frames: torch.Tensor) -> list[np.ndarray]:
        rgb = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [self._cv2.cvtColor(np.ascontiguousarray(x), self._cv2.COLOR_RGB2GRAY) for x in rgb]

    def _flow(self, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
        h, w = a.shape
        pad_h, pad_w = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        if pad_h or pad_w:  # tiny frames: replicate the borders (zeros would add false edges)
            pads = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
            a, b = np.pad(a, pads, mode="edge"), np.pad(b, pads, mode="edge")
        flow = self._dis.calc(a, b, None)  # (H, W, 2) float32, x first
        flow = flow[pad_h // 2 : pad_h // 2 + h, pad_w // 2 : pad_w // 2 + w]
        return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)

    def estimate(self, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g0, g1 = self._gray(img0), self._gray(img1)
        fflow = torch.stack([self._flow(a, b) for a, b in zip(g0, g1)])
        bflow = torch.stack([self._flow(b, a) for a, b in zip(g0, g1)])
        return fflow, bflow


# Runs on the CPU: nothing on the device (memory 0).
SPEC = EstimatorSpec("dis", "OpenCV DIS, weight-free, fast on a CPU", lambda state_dict=None: DISFlow(), memory=(0, 0.0))
