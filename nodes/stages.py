"""The PerVFI stages as separate nodes: flow estimation -> ASB blend -> flow decode.

Splitting the pipeline lets ComfyUI cache each stage: changing τ or the seed re-runs only
"PerVFI Flow Decode"; the flows and blends upstream are reused.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import torch
from einops import rearrange

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.flow.visualize import flow_to_color
from pervfi_core.pipeline.clips import frame_rate, frame_rate_schedule
from pervfi_core.pipeline.memory import memory_required
from pervfi_core.pipeline.report import run_report, to_json

from . import comfy, reuse
from .images import frames_from_image, image_from_frames, mask_from_masks
from .widgets import (
    FLOW_MODEL_TOOLTIP,
    FRAMES_TOOLTIP,
    MODEL_TOOLTIP,
    DEFAULT_SOURCE_FPS,
    noise_widget,
    scene_threshold_widget,
    seed_widget,
    source_fps_widget,
    target_fps_widget,
    tau_widget,
)

CATEGORY = "PerVFI"

FLOW_TOOLTIP = "Flows of every consecutive frame pair, from 'PerVFI Flow Estimation' on the same frames."


@dataclass
class PerVFIBlend:
    """What travels on a PERVFI_BLEND link: the input frames (N,3,H,W) and their :class:`pipeline.Blends`,
    the schedule's output frame rate and what the decode node's report repeats.

    The decoder needs the input frames to interleave them with the new ones; both wait on ComfyUI's
    intermediate device (CPU unless --gpu-only), so a long clip does not fill GPU memory.
    """

    frames: torch.Tensor
    blends: pipeline.Blends
    fps_in: Fraction | None = None
    fps_out: Fraction | None = None
    scene_threshold: float = pipeline.DEFAULT_SCENE_THRESHOLD
    blend_seconds: float = 0.0


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
            "flow_model": ("PERVFI_FLOW_MODEL", {"tooltip": FLOW_MODEL_TOOLTIP}),
        }}

    def estimate(self, frames, flow_model):
        x = frames_from_image(frames, min_frames=2)
        need = memory_required(*x.shape[2:], estimator=comfy.unwrap(flow_model))
        estimator, = comfy.prepare(flow_model, memory_required=need)
        flows = pipeline.estimate_flow(x, estimator, hooks=comfy.hooks(x.shape[0] - 1, "PerVFI flow"))
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
                               "and the target fps when not empty.",
                }),
                "source_fps": source_fps_widget(),
                "target_fps": target_fps_widget(),
                "scene_threshold": scene_threshold_widget(),
            },
        }

    def blend(self, frames, flow, model, multiplier, timesteps="", source_fps=DEFAULT_SOURCE_FPS, target_fps=0.0,
              scene_threshold=pipeline.DEFAULT_SCENE_THRESHOLD):
        x = frames_from_image(frames, min_frames=2)
        flow = _expect("flow", flow, pipeline.PairFlows, "'PerVFI Flow Estimation'")
        explicit = parse_numbers("timesteps", timesteps) if str(timesteps).strip() else None
        schedule, fps_out = frame_rate_schedule(int(multiplier), source_fps, float(target_fps) or None,
                                                timesteps=explicit)
        options = pipeline.Options(scene_threshold=scene_threshold)
        need = memory_required(*x.shape[2:], engine=comfy.unwrap(model), timesteps=schedule, options=options)
        engine, = comfy.prepare(model, memory_required=need)
        hooks = comfy.hooks(x.shape[0] - 1, "PerVFI blend", model=engine)
        start = time.perf_counter()
        blends = pipeline.blend(x, flow, engine, schedule, options=options, hooks=hooks)
        masks = blends.masks
        masks = torch.cat(masks)[..., : x.shape[2], : x.shape[3]] if masks else x.new_zeros(0, 1, *x.shape[2:])
        store = comfy.intermediate_device()
        carried = PerVFIBlend(x.to(store), blends, frame_rate("source fps", source_fps), fps_out, float(scene_threshold),
                              time.perf_counter() - start)
        return carried, mask_from_masks(masks, device=store)


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
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "fps", "report")
    OUTPUT_TOOLTIPS = ("Input and interpolated frames in time order [(N-1)·multiplier + 1, H, W, 3] "
                       "(width W·k with k compared τ values).",
                       "Frame rate of the output (the blend node's source fps x multiplier, or its target fps).",
                       "JSON report: engine, device, dtype, τ, seed, timesteps, fps, cuts, tiles, notes, timing.")

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
                "noise": noise_widget(),
            },
        }

    def decode(self, blend, model, tau, seed, compare_taus="", noise=pipeline.DEFAULT_NOISE):
        blend = _expect("blend", blend, PerVFIBlend, "'PerVFI ASB Blend'")
        key = (reuse.sampling_key(comfy.unwrap(model), tau, seed, noise), str(compare_taus))
        if (hit := reuse.lookup(type(self).__name__, key, (blend, model))) is not None:
            return hit
        runs = [pipeline.Options(tau=tau, seed=int(seed), noise=noise)]
        for value in parse_numbers("compare_taus", compare_taus):  # every τ is checked before decoding any
            try:
                runs.append(pipeline.Options(tau=value, seed=int(seed), noise=noise))
            except InputError as err:
                raise InputError(f"compare_taus: {err}") from None
        frames, blends = blend.frames, blend.blends
        need = memory_required(*frames.shape[2:], engine=comfy.unwrap(model), timesteps=blends.schedule)
        engine, = comfy.prepare(model, memory_required=need)
        panels, notes = [], list(blends.log)
        start = time.perf_counter()
        for options in runs:
            hooks = comfy.hooks(blends.n_frames - 1, "PerVFI decode", model=engine)
            out = pipeline.decode(frames, blends, engine, options=options, hooks=hooks)
            notes += [n for n in hooks.log if n not in notes]
            panels.append(image_from_frames(out, device=comfy.intermediate_device()))
        seconds = time.perf_counter() - start + blend.blend_seconds
        options = pipeline.Options(tau=tau, seed=int(seed), noise=noise, scene_threshold=blend.scene_threshold)
        report = run_report(engine=engine, options=options, timesteps=blends.schedule, height=frames.shape[2],
                            width=frames.shape[3], fps_in=blend.fps_in, frames_in=blends.n_frames, frames_out=panels[0].shape[0],
                            cuts=blends.cuts, seconds=seconds, pairs=blends.n_frames - 1,
                            compare_taus=[o.tau for o in runs[1:]])
        report["notes"] = notes
        fps = float(blend.fps_out) if blend.fps_out is not None else 0.0
        image = rearrange(torch.stack(panels), "k b h w c -> b h (k w) c")  # τ panels side by side
        return reuse.store(type(self).__name__, key, (blend, model), (image, fps, to_json(report)))


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
