"""All-in-one node for simple graphs: frames in, interpolated frames out (also loops and chunked clips).

Chunk mode (a long clip fed in parts, e.g. by VideoHelperSuite's Meta Batch Manager, which re-runs the
workflow once per chunk): each node instance keeps a :class:`pervfi_core.pipeline.clips.ChunkedClip`
between runs: the previous chunk's last frame, its clip-wide index and how many frames were emitted.
ComfyUI keeps node instances between runs of a workflow, so the state survives the Meta Batch re-runs.
Which chunk a run is: the ``chunk_index`` input, else the Meta Batch Manager's own batch counter (its
``requeue`` input in the prompt, 0 for the first batch), else "the next one" (a new clip on the
node's first run). Chunk 0 always starts a new clip, so a finished clip never leaks into the next one.
"""
from __future__ import annotations

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.pipeline import clips
from pervfi_core.pipeline.memory import memory_required
from pervfi_core.pipeline.report import run_report, to_json

from . import comfy, reuse
from .images import frames_from_image, image_from_frames
from .widgets import (
    DEFAULT_SOURCE_FPS,
    FLOW_MODEL_TOOLTIP,
    FRAMES_TOOLTIP,
    MODEL_TOOLTIP,
    chunk_index_widget,
    chunk_mode_widget,
    loop_widget,
    multiplier_widget,
    noise_widget,
    scene_threshold_widget,
    seed_widget,
    source_fps_widget,
    target_fps_widget,
    tau_widget,
)

META_BATCH_NODE = "VHS_BatchManager"  # VideoHelperSuite's Meta Batch Manager (class_type in the prompt)
REPORT_TOOLTIP = ("JSON report: engine (name and descriptor), estimator, device, dtype, τ, seed, multiplier or fps, "
                  "scene cuts, tile plan, notes (retries, capped budgets), seconds per pair.")


def meta_batch_index(prompt) -> int | None:
    """The batch counter of the workflow's Meta Batch Manager (0 = first batch), or None without one."""
    if not isinstance(prompt, dict):
        return None
    for node in prompt.values():
        if isinstance(node, dict) and node.get("class_type") == META_BATCH_NODE:
            value = node.get("inputs", {}).get("requeue", 0)
            return int(value) if isinstance(value, (int, float)) else 0
    return None


def run_clip(frames, model, flow_model, schedule, *, options, loop=False, chunk=None, overlap=False):
    """Load the models through ComfyUI's manager (memory for this frame size), run the clip (or the
    next part of ``chunk``), return (ClipResult, engine, estimator, hooks)."""
    need = memory_required(*frames.shape[2:], engine=comfy.unwrap(model), estimator=comfy.unwrap(flow_model),
                           timesteps=schedule, options=options)
    engine, estimator = comfy.prepare(model, flow_model, memory_required=need)
    hooks = comfy.hooks(frames.shape[0] - 1 + int(loop), "PerVFI", model=engine)
    if chunk is not None:
        result = chunk.feed(frames, engine, estimator, schedule, overlap=overlap, options=options, hooks=hooks)
    else:
        result = clips.interpolate_clip(frames, engine, estimator, schedule, loop=loop, options=options, hooks=hooks)
    return result, engine, estimator, hooks


def report_json(result, engine, estimator, hooks, schedule, options, frames, fps_in, **extra) -> str:
    """The run's JSON report (pervfi_core.pipeline.report) for frames (N,3,H,W)."""
    return to_json(run_report(engine=engine, estimator=estimator, options=options, timesteps=schedule,
                              height=frames.shape[2], width=frames.shape[3], fps_in=fps_in, frames_in=frames.shape[0],
                              frames_out=result.frames.shape[0], cuts=result.cuts, hooks=hooks,
                              seconds=result.seconds, pairs=result.pairs, **extra))


class PerVFIInterpolate:
    """Flow estimation, ASB blend and flow decode in one node."""

    DISPLAY_NAME = "PerVFI Interpolate"
    DESCRIPTION = (
        "Multiplies the frame rate of a clip with PerVFI (or retimes it to a target fps): estimates motion, "
        "blends the two frames asymmetrically and decodes each new frame. Loop mode makes seamless loops; "
        "chunk mode continues a clip fed in chunks (Meta Batch). For experiments with τ use the separate Flow "
        "Estimation / ASB Blend / Flow Decode nodes: there only the decoder re-runs when τ changes."
    )
    CATEGORY = "PerVFI"
    FUNCTION = "interpolate"
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "fps", "report")
    OUTPUT_TOOLTIPS = ("Input and interpolated frames in time order [(N-1)·multiplier + 1, H, W, 3] "
                       "(loop mode: N·multiplier; chunk mode: this chunk's part of the whole clip).",
                       "Frame rate of the output: source fps x multiplier, or the target fps.",
                       REPORT_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": FRAMES_TOOLTIP}),
                "model": ("PERVFI_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "flow_model": ("PERVFI_FLOW_MODEL", {"tooltip": FLOW_MODEL_TOOLTIP}),
                "multiplier": multiplier_widget(),
                "tau": tau_widget(),
                "seed": seed_widget(),
            },
            "optional": {
                "source_fps": source_fps_widget(),
                "target_fps": target_fps_widget(),
                "scene_threshold": scene_threshold_widget(),
                "loop": loop_widget(),
                "chunk_mode": chunk_mode_widget(),
                "chunk_index": chunk_index_widget(),
                "noise": noise_widget(),
            },
            "hidden": {"prompt": "PROMPT"},
        }

    def interpolate(self, frames, model, flow_model, multiplier, tau, seed, source_fps=DEFAULT_SOURCE_FPS,
                    target_fps=0.0, scene_threshold=pipeline.DEFAULT_SCENE_THRESHOLD, loop=False, chunk_mode="off",
                    chunk_index=-1, prompt=None, noise=pipeline.DEFAULT_NOISE):
        chunked = chunk_mode != "off"
        key = (int(multiplier), reuse.sampling_key(comfy.unwrap(model), tau, seed, noise), float(source_fps),
               float(target_fps), float(scene_threshold), bool(loop))
        if not chunked and (hit := reuse.lookup(type(self).__name__, key, (frames, model, flow_model))) is not None:
            return hit
        if chunked and loop:
            raise InputError("loop mode and chunk mode cannot be combined: a loop needs the whole clip at once; "
                             "turn one of them off")
        x = frames_from_image(frames, min_frames=1 if (chunked or loop) else 2)
        schedule, fps_out = clips.frame_rate_schedule(int(multiplier), source_fps, float(target_fps) or None)
        options = pipeline.Options(tau=tau, seed=int(seed), noise=noise, scene_threshold=scene_threshold)
        chunk = self._chunk(int(chunk_index), prompt) if chunked else None
        result, engine, estimator, hooks = run_clip(x, model, flow_model, schedule, options=options, loop=bool(loop),
                                                    chunk=chunk, overlap=chunk_mode == "overlapping")
        extra = {"loop": bool(loop)}
        if chunk is not None:
            extra["chunk"] = {"mode": chunk_mode, "index": chunk.parts - 1, "first_output": result.first_output,
                              "emitted": chunk.emitted}
        report = report_json(result, engine, estimator, hooks, schedule, options, x, source_fps, **extra)
        out = image_from_frames(result.frames, device=comfy.intermediate_device()), float(fps_out), report
        return out if chunked else reuse.store(type(self).__name__, key, (frames, model, flow_model), out)

    def _chunk(self, chunk_index: int, prompt) -> clips.ChunkedClip:
        """This node's clip state for the chunk ``chunk_index`` (-1: automatic; module docstring)."""
        index = chunk_index if chunk_index >= 0 else meta_batch_index(prompt)
        state = getattr(self, "_clip", None)
        if state is None or index == 0:
            if index not in (None, 0):
                raise InputError(f"chunk mode: this is chunk {index}, but this node has not run chunk 0 of the clip; "
                                 "run the chunks in order, starting with chunk index 0")
            state = clips.ChunkedClip()
        elif index is not None and index != state.parts:
            raise InputError(f"chunk mode: this is chunk {index}, but the next chunk of the clip is {state.parts}; "
                             "run the chunks in order, or set chunk index 0 to start a new clip")
        self._clip = state  # replaced only for chunk 0; feed() changes a state only when the chunk succeeds
        return state
