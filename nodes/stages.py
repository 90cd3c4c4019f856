"""The PerVFI stages as separate nodes: motion (optical flow) -> asymmetric blend (ASB) -> decode (τ).

Splitting the pipeline lets ComfyUI cache each stage: changing τ or the seed re-runs only "PerVFI Decode (τ)";
the flows and blends upstream are reused (and with a deterministic engine the decoder hands back its last
result, :mod:`nodes.reuse`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace

import torch
from einops import rearrange

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.flow.visualize import flow_to_color
from pervfi_core.pipeline.clips import frame_rate, frame_rate_schedule
from pervfi_core.pipeline.memory import memory_required
from pervfi_core.pipeline.report import run_report, to_json

from . import comfy, reuse
from .comfy import io
from .images import frames_from_image, image_from_frames, mask_from_masks
from .interpolate import node_key, source_rate
from .widgets import (
    CATEGORY,
    DEFAULT_SOURCE_FPS,
    FPS_TOOLTIP,
    REPORT_TOOLTIP,
    SEARCH_ALIASES,
    Blend,
    Motion,
    frames_input,
    model_input,
    motion_model_input,
    multiplier,
    noise,
    scene_threshold,
    seed,
    source_fps,
    target_fps,
    tau,
)

MOTION_TOOLTIP = "Optical flow of every consecutive pair, from 'PerVFI Motion (optical flow)' on the same frames."


@dataclass
class NodeMotion(pipeline.PairFlows):
    """What travels on a PERVFI_FLOW link: the flows and the name of the estimator that made them (reports)."""

    estimator: str | None = None


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
    estimator: str | None = None


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



class PerVFIFlowEstimation(io.ComfyNode):
    """IMAGE frames -> PERVFI_FLOW: F0→1 and F1→0 for every consecutive pair (stage 1)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PerVFIFlowEstimation",
            display_name="PerVFI Motion (optical flow)",
            category=CATEGORY,
            search_aliases=["optical flow", "motion estimation", *SEARCH_ALIASES],
            description=(
                "Stage 1 of PerVFI: estimates the motion between frames as optical flow, in both directions (F0→1 "
                "on the first frame's grid, F1→0 on the second's), for every consecutive pair. Feed it to 'PerVFI "
                "Asymmetric Blend (ASB)', or look at it with 'PerVFI Motion to Image'."),
            inputs=[frames_input(), motion_model_input()],
            outputs=[Motion.Output("flow", display_name="motion",
                                   tooltip="Optical flow in pixels for the N-1 consecutive pairs of the frames.")],
        )

    @classmethod
    def execute(cls, frames, flow_model) -> io.NodeOutput:
        x = frames_from_image(frames, min_frames=2)
        need = memory_required(*x.shape[2:], estimator=comfy.unwrap(flow_model))
        estimator, = comfy.prepare(flow_model, memory_required=need)
        flows = pipeline.estimate_flow(x, estimator, hooks=comfy.hooks(x.shape[0] - 1, "PerVFI motion"))
        return io.NodeOutput(NodeMotion(flows.forward, flows.backward, getattr(estimator, "name", None)))


class PerVFIASBBlend(io.ComfyNode):
    """Asymmetric synergistic blending of every new frame (paper §3.1, Eq. 1–9; stage 2)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PerVFIASBBlend",
            display_name="PerVFI Asymmetric Blend (ASB)",
            category=CATEGORY,
            search_aliases=["asb", "asymmetric blending", *SEARCH_ALIASES],
            description=(
                "Stage 2 of PerVFI, asymmetric synergistic blending (ASB, paper §3.1): for every new frame the "
                "nearer (primary) frame is warped forward along the motion, the other frame fills only what the "
                "primary one cannot show, and a nearly binary mask decides where. Outputs what 'PerVFI Decode (τ)' "
                "turns into frames, and the masks for inspection."),
            inputs=[frames_input(), Motion.Input("flow", display_name="motion", tooltip=MOTION_TOOLTIP), model_input(),
                    multiplier(),
                    io.String.Input("timesteps", default="", multiline=False, optional=True,
                                    tooltip="Optional explicit times of the new frames inside each pair, comma-"
                                            "separated values strictly between 0 and 1 (e.g. '0.25, 0.5'). Overrides "
                                            "the multiplier and the target fps when not empty."),
                    source_fps(), target_fps(), scene_threshold()],
            outputs=[Blend.Output("blend", display_name="blend",
                                  tooltip="Blends of every new frame (kept on ComfyUI's intermediate device), for "
                                          "'PerVFI Decode (τ)'."),
                     io.Mask.Output("masks", display_name="masks",
                                    tooltip="The blending mask of every new frame [M, H, W] in 0..1 (white = taken "
                                            "from the other, non-primary frame). The training-free default and "
                                            "pervfi-own show where the other frame fills in; pervfi-own-tau leaves "
                                            "the filling to its decoder, so its masks are almost black (not a fault).")],
        )

    @classmethod
    def execute(cls, frames, flow, model, multiplier, timesteps="", source_fps=DEFAULT_SOURCE_FPS, target_fps=0.0,
                scene_threshold=pipeline.DEFAULT_SCENE_THRESHOLD) -> io.NodeOutput:
        x = frames_from_image(frames, min_frames=2)
        flow = _expect("motion", flow, pipeline.PairFlows, "'PerVFI Motion (optical flow)'")
        explicit = parse_numbers("timesteps", timesteps) if str(timesteps).strip() else None
        fps_in = source_rate(source_fps)
        schedule, fps_out = frame_rate_schedule(int(multiplier), fps_in, float(target_fps) or None, timesteps=explicit)
        options = pipeline.Options(scene_threshold=scene_threshold)
        need = memory_required(*x.shape[2:], engine=comfy.unwrap(model), timesteps=schedule, options=options)
        engine, = comfy.prepare(model, memory_required=need)
        hooks = comfy.hooks(x.shape[0] - 1, "PerVFI blend", model=engine)
        start = time.perf_counter()
        blends = pipeline.blend(x, flow, engine, schedule, options=options, hooks=hooks)
        masks = blends.masks
        masks = torch.cat(masks)[..., : x.shape[2], : x.shape[3]] if masks else x.new_zeros(0, 1, *x.shape[2:])
        store = comfy.intermediate_device()
        carried = PerVFIBlend(x.to(store), blends, None if fps_in is None else frame_rate("source fps", fps_in),
                              fps_out, float(scene_threshold), time.perf_counter() - start,
                              getattr(flow, "estimator", None))
        return io.NodeOutput(carried, mask_from_masks(masks, device=store))


class PerVFIFlowDecode(io.ComfyNode):
    """Blends -> frames, the normalizing flow sampled at temperature τ (paper §3.2; stage 3)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PerVFIFlowDecode",
            display_name="PerVFI Decode (τ)",
            category=CATEGORY,
            search_aliases=["decode", "tau", "temperature", "normalizing flow", *SEARCH_ALIASES],
            description=(
                "Stage 3 of PerVFI: turns the blends into the new frames and returns the input frames and the new "
                "ones interleaved in time order. A stochastic engine (pervfi-v00, pervfi-own-tau) samples its "
                "conditional normalizing-flow decoder at temperature τ with the seed; changing τ or the seed re-runs "
                "only this node. Deterministic engines ignore both. Optionally decodes several τ values side by side."),
            inputs=[Blend.Input("blend", tooltip="Blends from 'PerVFI Asymmetric Blend (ASB)'."), model_input(), tau(),
                    seed(),
                    io.String.Input("compare_taus", default="", multiline=False, optional=True,
                                    tooltip="Optional extra τ values, comma-separated (e.g. '0, 0.6, 1'), decoded "
                                            "with the same seed and placed side by side to the right of the slider's "
                                            "τ, for comparison. Leave empty for a normal clip."),
                    noise()],
            outputs=[io.Image.Output("frames", display_name="frames",
                                     tooltip="Input and interpolated frames in time order [(N-1)·multiplier + 1, H, W, "
                                             "3] (width W·k with k compared τ values)."),
                     io.Float.Output("fps", display_name="fps", tooltip=FPS_TOOLTIP),
                     io.String.Output("report", display_name="report", tooltip=REPORT_TOOLTIP)],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, blend, model, tau, seed, compare_taus="", noise=pipeline.DEFAULT_NOISE) -> io.NodeOutput:
        blend = _expect("blend", blend, PerVFIBlend, "'PerVFI Asymmetric Blend (ASB)'")
        node = node_key(cls)
        key = (reuse.sampling_key(comfy.unwrap(model), tau, seed, noise), str(compare_taus))
        if (hit := reuse.lookup(node, key, (blend, model))) is not None:
            return io.NodeOutput(*hit)
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
            del out
        seconds = time.perf_counter() - start + blend.blend_seconds
        options = pipeline.Options(tau=tau, seed=int(seed), noise=noise, scene_threshold=blend.scene_threshold)
        estimator = SimpleNamespace(name=blend.estimator) if blend.estimator else None
        report = run_report(engine=engine, estimator=estimator, options=options, timesteps=blends.schedule,
                            height=frames.shape[2], width=frames.shape[3], fps_in=blend.fps_in,
                            frames_in=blends.n_frames, frames_out=panels[0].shape[0], cuts=blends.cuts,
                            seconds=seconds, pairs=blends.n_frames - 1, compare_taus=[o.tau for o in runs[1:]])
        report["notes"] = notes
        if blend.fps_in is None:
            report["fps_in"] = None
        fps = float(blend.fps_out) if blend.fps_out is not None else 0.0
        image = panels[0] if len(panels) == 1 else rearrange(torch.stack(panels), "k b h w c -> b h (k w) c")
        return io.NodeOutput(*reuse.store(node, key, (blend, model), (image, fps, to_json(report))))


class PerVFIFlowToImage(io.ComfyNode):
    """Colour-coded optical flow (Middlebury colour wheel) for inspection."""

    DIRECTIONS = ("forward (0→1)", "backward (1→0)", "both")

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PerVFIFlowToImage",
            display_name="PerVFI Motion to Image (flow colours)",
            category=CATEGORY,
            search_aliases=["optical flow visualization", "flow to image", "motion preview"],
            description=(
                "Shows the optical flow as colour images (Middlebury colour wheel: hue = direction, saturation = "
                "length; white = no motion; right = red, down = yellow, left = cyan, up = blue)."),
            inputs=[Motion.Input("flow", display_name="motion", tooltip="Motion from 'PerVFI Motion (optical flow)'."),
                    io.Combo.Input("direction", options=list(cls.DIRECTIONS), default=cls.DIRECTIONS[0],
                                   tooltip="forward: F0→1 on each pair's first frame; backward: F1→0 on its second "
                                           "frame; both: forward and backward alternating."),
                    io.Float.Input("max_flow", default=0.0, min=0.0, max=1000.0, step=0.5,
                                   tooltip="Motion (pixels) shown fully saturated; 0 = the largest motion in the clip.")],
            outputs=[io.Image.Output("image", display_name="image",
                                     tooltip="One colour-coded image per pair (two per pair for 'both').")],
        )

    @classmethod
    def execute(cls, flow, direction, max_flow) -> io.NodeOutput:
        flow = _expect("motion", flow, pipeline.PairFlows, "'PerVFI Motion (optical flow)'")
        chosen = {cls.DIRECTIONS[0]: [flow.forward], cls.DIRECTIONS[1]: [flow.backward]}.get(
            direction, [flow.forward, flow.backward])
        stacked = rearrange(torch.stack(chosen, dim=1), "p k c h w -> (p k) c h w")  # pairs in order
        rgb = flow_to_color(stacked, max_flow=float(max_flow) or None)
        return io.NodeOutput(image_from_frames(rgb, device=comfy.intermediate_device()))
