"""All-in-one node for simple graphs: frames in, interpolated frames out."""
from __future__ import annotations

from pervfi_core import pipeline

from . import comfy
from .images import frames_from_image, image_from_frames
from .stages import FRAMES_TOOLTIP, MODEL_TOOLTIP, seed_widget, tau_widget


class PerVFIInterpolate:
    """Flow estimation, ASB blend and flow decode in one node."""

    DISPLAY_NAME = "PerVFI Interpolate"
    DESCRIPTION = (
        "Multiplies the frame rate of a clip with PerVFI: estimates motion, blends the two frames "
        "asymmetrically and decodes each new frame. For experiments with τ use the separate Flow "
        "Estimation / ASB Blend / Flow Decode nodes: there only the decoder re-runs when τ changes."
    )
    CATEGORY = "PerVFI"
    FUNCTION = "interpolate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Input and interpolated frames in time order [(N-1)·multiplier + 1, H, W, 3].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": FRAMES_TOOLTIP}),
            "model": ("PERVFI_MODEL", {"tooltip": MODEL_TOOLTIP}),
            "flow_model": ("PERVFI_FLOW_MODEL", {"tooltip": "Motion estimator from 'Load PerVFI Flow Estimator'."}),
            "multiplier": ("INT", {"default": 2, "min": 2, "max": 16, "step": 1,
                                   "tooltip": "Frame-rate multiplier. Output frames: (N-1)·multiplier + 1."}),
            "tau": tau_widget(),
            "seed": seed_widget(),
        }}

    def interpolate(self, frames, model, flow_model, multiplier, tau, seed):
        x = frames_from_image(frames, min_frames=2)
        hooks = comfy.hooks(x.shape[0] - 1, "PerVFI", model=model)
        # fused per pair (pipeline.interpolate): one pair's flows and blends at a time, tiling and
        # out-of-memory retries, so long clips and large frames fit; same frames as the three stage nodes
        out = pipeline.interpolate(x, model, flow_model, int(multiplier), tau=float(tau), seed=int(seed), hooks=hooks)
        return (image_from_frames(out, device=comfy.intermediate_device()),)
