"""The PerVFI stages as separate nodes: flow estimation -> ASB blend -> flow decode.

Splitting the pipeline lets ComfyUI cache each stage: changing τ or the seed re-runs only
"PerVFI Flow Decode"; the flows and blends upstream are reused.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.flow.visualize import flow_to_color

from . import comfy
from .images import frames_from_image, image_from_frames, mask_from_masks

CATEGORY = "PerVFI"

FRAMES_TOOLTIP = "Video frames in time order (IMAGE batch [N, H, W, 3], N >= 2, all the same size)."
MODEL_TOOLTIP = "The PerVFI generator from 'Load PerVFI Model'. Use the same model for blending and decoding."
TAU_TOOLTIP = (
    "Sampling temperature τ of the normalizing-flow decoder (paper §3.2): the latent is drawn from "
    "N(0, τ²). 0 = the most probable (smoothest) frame; higher = more texture and detail, more "
    "randomness. Ignored by deterministic models (vb, the embedded default, training-free). The paper uses 0.3."
)
SEED_TOOLTIP = "Seed of the random latent. Same seed and τ = same frames."


def tau_widget() -> tuple:
    lo, hi = pipeline.TAU_RANGE
    return ("FLOAT", {"default": pipeline.DEFAULT_TAU, "min": lo, "max": hi, "step": 0.01, "display": "slider",
                      "tooltip": TAU_TOOLTIP})


def seed_widget() -> tuple:
    return ("INT", {"default": pipeline.DEFAULT_SEED, "min": 0, "max": pipeline.MAX_SEED, "control_after_generate": True,
                    "tooltip": SEED_TOOLTIP})


FLOW_TOOLTIP = "Flows of every consecutive frame pair, from 'PerVFI Flow Estimation' on the same frames."


@dataclass
class PerVFIBlend:
    """What travels on a PERVFI_BLEND link: the input frames (N,3,H,W) and their :class:`pipeline.Blends`.

    The decoder needs the input frames to interleave them with the new ones; both wait on ComfyUI's
    intermediate device (CPU unless --gpu-only), so a long clip does not fill GPU memory.
    """

    frames: torch.Tensor
    blends: pipeline.Blends


def _expect(name: str, value, kind: type, link: str):
    if not isinstance(value, kind):
        raise InputError(f"{name}: expected the {link} output, got {type(value).__name__}")
    return value


def parse_numbers(name: str, text: str) -> list[float]:
    """'0.25, 0.5' -> [0.25, 0.5]; ranges are checked by the caller (the pipeline's schedule for timesteps)."""
    try:
        return [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{name}: expected comma-separated numbers between 0 and 1 such as '0.25, 0.5', "
                         f"got {text!r}") from None


class PerVFIFlowEstimation:
    """IMAGE frames -> PERVFI_FLOW: F0→1 and F1→0 for every consecutive pair."""

    DISPLAY_NAME = "PerVFI Flow Estimation"
    DESCRIPTION = (
        "Estimates optical flow in both directions (F0→1 on the first frame's grid, F1→0 on the "
        "second's) for every consecutive pair of frames. Feed the result to 'PerVFI ASB Blend' "
        "or inspect it with 'PerVFI Flow to Image'."
    )
    CATEGORY = CATEGORY
    FUNCTION = "estimate"
    RETURN_TYPES = ("PERVFI_FLOW",)
    RETURN_NAMES = ("flow",)
    OUTPUT_TOOLTIPS = ("Flows in pixels for the N-1 consecutive pairs of the input frames.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": FRAMES_TOOLTIP}),
            "flow_model": ("PERVFI_FLOW_MODEL", {"tooltip": "Motion estimator from 'Load PerVFI Flow Estimator'."}),
        }}

    def estimate(self, frames, flow_model):
        x = frames_from_image(frames, min_frames=2)
        flows = pipeline.estimate_flow(x, flow_model, hooks=comfy.hooks(x.shape[0] - 1, "PerVFI flow"))
        return (flows,)


class PerVFIASBBlend:
    """Asymmetric synergistic blending of every new frame (paper §3.1, Eq. 1–9)."""

    DISPLAY_NAME = "PerVFI ASB Blend"
    DESCRIPTION = (
        "Asymmetric synergistic blending (paper §3.1): for every new frame, features of the primary "
        "frame are forward-warped, the other frame's aligned features fill what the primary cannot see, "
        "and a quasi-binary mask decides where. Outputs the blended conditions for 'PerVFI Flow Decode' "
        "and the masks (white = taken from the non-primary frame) for inspection."
    )
    CATEGORY = CATEGORY
    FUNCTION = "blend"
    RETURN_TYPES = ("PERVFI_BLEND", "MASK")
    RETURN_NAMES = ("blend", "masks")
    OUTPUT_TOOLTIPS = (
        "Blended conditions of every new frame (kept on ComfyUI's intermediate device), for 'PerVFI Flow Decode'.",
        "Quasi-binary blending mask of every new frame [M, H, W] in 0..1, M = number of new frames.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": FRAMES_TOOLTIP}),
                "flow": ("PERVFI_FLOW", {"tooltip": FLOW_TOOLTIP}),
                "model": ("PERVFI_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "multiplier": ("INT", {
                    "default": 2, "min": 2, "max": 16, "step": 1,
                    "tooltip": "Frame-rate multiplier: 2 adds one frame between each pair, 4 adds three. "
                               "Output frames: (N-1)·multiplier + 1.",
                }),
            },
            "optional": {
                "timesteps": ("STRING", {
                    "default": "", "multiline": False,
                    "tooltip": "Optional explicit times of the new frames inside each pair, comma-separated "
                               "values strictly between 0 and 1 (e.g. '0.25, 0.5'). Overrides the multiplier "
                               "when not empty.",
                }),
            },
        }

    def blend(self, frames, flow, model, multiplier, timesteps=""):
        x = frames_from_image(frames, min_frames=2)
        flow = _expect("flow", flow, pipeline.PairFlows, "'PerVFI Flow Estimation'")
        ts = parse_numbers("timesteps", timesteps) if str(timesteps).strip() else int(multiplier)
        hooks = comfy.hooks(x.shape[0] - 1, "PerVFI blend", model=model)
        blends = pipeline.blend(x, flow, model, ts, hooks=hooks)
        masks = blends.masks
        masks = torch.cat(masks)[..., : x.shape[2], : x.shape[3]] if masks else x.new_zeros(0, 1, *x.shape[2:])
        store = comfy.intermediate_device()
        return PerVFIBlend(x.to(store), blends), mask_from_masks(masks, device=store)


class PerVFIFlowDecode:
    """Decode blends into frames with the normalizing flow at temperature τ (paper §3.2)."""

    DISPLAY_NAME = "PerVFI Flow Decode"
    DESCRIPTION = (
        "Generates the new frames from the blends with PerVFI's conditional normalizing flow, "
        "sampling the latent at temperature τ, and returns the input frames and the new frames "
        "interleaved in time order. Changing τ or the seed re-runs only this node. Optionally decodes "
        "several τ values at once and places them side by side."
    )
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Input and interpolated frames in time order [(N-1)·multiplier + 1, H, W, 3] "
                       "(width W·k with k compared τ values).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "blend": ("PERVFI_BLEND", {"tooltip": "Blends from 'PerVFI ASB Blend'."}),
                "model": ("PERVFI_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "tau": tau_widget(),
                "seed": seed_widget(),
            },
            "optional": {
                "compare_taus": ("STRING", {
                    "default": "", "multiline": False,
                    "tooltip": "Optional extra τ values, comma-separated (e.g. '0, 0.6, 1'), decoded with the same "
                               "seed and placed side by side to the right of the slider's τ, for comparison. "
                               "Leave empty for a normal clip.",
                }),
            },
        }

    def decode(self, blend, model, tau, seed, compare_taus=""):
        blend = _expect("blend", blend, PerVFIBlend, "'PerVFI ASB Blend'")
        runs = [pipeline.Options(tau=tau, seed=int(seed))]
        for value in parse_numbers("compare_taus", compare_taus):  # every τ is checked before decoding any
            try:
                runs.append(pipeline.Options(tau=value, seed=int(seed)))
            except InputError as err:
                raise InputError(f"compare_taus: {err}") from None
        panels = []
        for options in runs:
            hooks = comfy.hooks(blend.blends.n_frames - 1, "PerVFI decode", model=model)
            out = pipeline.decode(blend.frames, blend.blends, model, options=options, hooks=hooks)
            panels.append(image_from_frames(out, device=comfy.intermediate_device()))
        return (rearrange(torch.stack(panels), "k b h w c -> b h (k w) c"),)  # τ panels side by side


class PerVFIFlowToImage:
    """Colour-coded flow (Middlebury colour wheel) for inspection."""

    DISPLAY_NAME = "PerVFI Flow to Image"
    DESCRIPTION = (
        "Shows the flows as colour images (Middlebury colour wheel: hue = direction, saturation = "
        "length; white = no motion; right = red, down = yellow, left = cyan, up = blue)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "visualize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("One colour-coded image per pair (two per pair for 'both').",)
    DIRECTIONS = ("forward (0→1)", "backward (1→0)", "both")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "flow": ("PERVFI_FLOW", {"tooltip": "Flows from 'PerVFI Flow Estimation'."}),
            "direction": (list(cls.DIRECTIONS), {
                "default": cls.DIRECTIONS[0],
                "tooltip": "forward: F0→1 on each pair's first frame; backward: F1→0 on its second frame; "
                           "both: forward and backward alternating.",
            }),
            "max_flow": ("FLOAT", {
                "default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.5,
                "tooltip": "Motion (pixels) shown fully saturated; 0 = the largest motion in the clip.",
            }),
        }}

    def visualize(self, flow, direction, max_flow):
        flow = _expect("flow", flow, pipeline.PairFlows, "'PerVFI Flow Estimation'")
        chosen = {self.DIRECTIONS[0]: [flow.forward], self.DIRECTIONS[1]: [flow.backward]}.get(
            direction, [flow.forward, flow.backward])
        stacked = rearrange(torch.stack(chosen, dim=1), "p k c h w -> (p k) c h w")  # pairs in order
        rgb = flow_to_color(stacked, max_flow=float(max_flow) or None)
        return (image_from_frames(rgb, device=comfy.intermediate_device()),)
