"""All-in-one node for simple graphs: frames in, interpolated frames out (also loops and chunked clips).

Chunk mode (a long clip fed in parts, e.g. by VideoHelperSuite's Meta Batch Manager, which re-runs the
workflow once per chunk): each node (by its id in the graph) keeps a
:class:`pervfi_core.pipeline.clips.ChunkedClip` between runs: the previous chunk's last frame, its
clip-wide index and how many frames were emitted. Which chunk a run is: the ``chunk_index`` input, else
the Meta Batch Manager's own batch counter (its ``requeue`` input in the prompt, 0 for the first batch),
else "the next one" (a new clip on the node's first run). Chunk 0 always starts a new clip, so a
finished clip never leaks into the next one.

The output is written frame by frame into one IMAGE buffer allocated up front (no concatenation copies).
"""
from __future__ import annotations

import threading

from pervfi_core import pipeline
from pervfi_core.allocator import trimmed
from pervfi_core.errors import InputError
from pervfi_core.pipeline import clips
from pervfi_core.pipeline.memory import memory_required
from pervfi_core.pipeline.report import run_report, to_json

from . import comfy, reuse
from .comfy import io
from .images import frames_from_image, image_buffer
from .widgets import (
    CATEGORY,
    DEFAULT_SOURCE_FPS,
    FPS_TOOLTIP,
    REPORT_TOOLTIP,
    SEARCH_ALIASES,
    chunk_index,
    chunk_mode,
    frames_input,
    loop,
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

META_BATCH_NODE = "VHS_BatchManager"  # VideoHelperSuite's Meta Batch Manager (class_type in the prompt)
SINGLE_FRAME_NOTE = "1 input frame: nothing to interpolate, returned unchanged"

_clips: dict = {}  # node id -> ChunkedClip (chunk mode)
_clips_lock = threading.Lock()


def meta_batch_index(prompt) -> int | None:
    """The batch counter of the workflow's Meta Batch Manager (0 = first batch), or None without one."""
    if not isinstance(prompt, dict):
        return None
    for node in prompt.values():
        if isinstance(node, dict) and node.get("class_type") == META_BATCH_NODE:
            value = node.get("inputs", {}).get("requeue", 0)
            return int(value) if isinstance(value, (int, float)) else 0
    return None


def node_key(cls) -> tuple:
    """This node in the graph: its class and ComfyUI's id for it (None outside ComfyUI)."""
    hidden = getattr(cls, "hidden", None)
    return cls.__name__, getattr(hidden, "unique_id", None)


def run_clip(frames, model, flow_model, schedule, *, options, loop=False, chunk=None, overlap=False):
    """Load the models through ComfyUI's manager (memory for this frame size), run the clip (or the next part
    of ``chunk``) into one IMAGE buffer; returns (ClipResult, IMAGE, engine, estimator, hooks)."""
    need = memory_required(*frames.shape[2:], engine=comfy.unwrap(model), estimator=comfy.unwrap(flow_model),
                           timesteps=schedule, options=options)
    engine, estimator = comfy.prepare(model, flow_model, memory_required=need)
    hooks = comfy.hooks(frames.shape[0] - 1 + int(loop), "PerVFI", model=engine)
    buffer = {}

    def alloc(count: int):
        buffer["image"], view = image_buffer(count, *frames.shape[2:], device=comfy.intermediate_device())
        return view

    with trimmed():  # the run's peak sits on what is held, not on freed heap pages (pervfi_core/allocator.py)
        if chunk is not None:
            result = chunk.feed(frames, engine, estimator, schedule, overlap=overlap, options=options, hooks=hooks,
                                alloc=alloc)
        else:
            result = clips.interpolate_clip(frames, engine, estimator, schedule, loop=loop, options=options,
                                            hooks=hooks, alloc=alloc)
    image = buffer["image"][: result.frames.shape[0]]
    return result, image, engine, estimator, hooks


def report_json(result, engine, estimator, hooks, schedule, options, frames, fps_in, **extra) -> str:
    """The run's JSON report (pervfi_core.pipeline.report) for frames (N,3,H,W); an unknown fps_in is said."""
    report = run_report(engine=engine, estimator=estimator, options=options, timesteps=schedule,
                        height=frames.shape[2], width=frames.shape[3], fps_in=fps_in, frames_in=frames.shape[0],
                        frames_out=result.frames.shape[0], cuts=result.cuts, hooks=hooks, seconds=result.seconds,
                        pairs=result.pairs, **extra)
    if fps_in is None:
        report["fps_in"] = None  # said, not invented
    return to_json(report)


def single_frame_report(model, flow_model, options, frames, fps_in, schedule) -> str:
    """The report of a 1-frame input, returned unchanged (nothing loaded, nothing run)."""
    report = run_report(engine=comfy.unwrap(model), estimator=comfy.unwrap(flow_model), options=options,
                        timesteps=schedule, height=frames.shape[2], width=frames.shape[3], fps_in=fps_in,
                        frames_in=1, frames_out=1, seconds=0.0, pairs=0)
    report["notes"] = [SINGLE_FRAME_NOTE]
    if fps_in is None:
        report["fps_in"] = None
    return to_json(report)


def source_rate(value):
    """The source fps widget: 0 (or nothing) = not given -> None; a negative rate (through a link) is refused."""
    return None if value is None or value == 0 else clips.frame_rate("source fps", value)


class PerVFIInterpolate(io.ComfyNode):
    """Motion, asymmetric blend and decode in one node."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PerVFIInterpolate",
            display_name="PerVFI Interpolate Frames",
            category=CATEGORY,
            search_aliases=SEARCH_ALIASES,
            description=(
                "Multiplies the frame rate of a batch of frames with PerVFI (or retimes it to a target fps) in one "
                "node: motion estimation (optical flow), asymmetric blending of the two frames, decoding of each "
                "new frame. Loop mode makes seamless loops; chunk mode continues a clip fed in chunks (Meta Batch). "
                "For experiments with τ use the three stage nodes (Motion -> Asymmetric Blend -> Decode): there only "
                "the decoder re-runs when τ changes. A single frame is returned unchanged."),
            inputs=[frames_input(), model_input(), motion_model_input(), multiplier(), tau(), seed(), source_fps(),
                    target_fps(), scene_threshold(), loop(), chunk_mode(), chunk_index(), noise()],
            outputs=[io.Image.Output("frames", display_name="frames",
                                     tooltip="Input and interpolated frames in time order [(N-1)·multiplier + 1, H, "
                                             "W, 3] (loop mode: N·multiplier; chunk mode: this chunk's part)."),
                     io.Float.Output("fps", display_name="fps", tooltip=FPS_TOOLTIP),
                     io.String.Output("report", display_name="report", tooltip=REPORT_TOOLTIP)],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
        )

    @classmethod
    def execute(cls, frames, model, flow_model, multiplier, tau, seed, source_fps=DEFAULT_SOURCE_FPS,
                target_fps=0.0, scene_threshold=pipeline.DEFAULT_SCENE_THRESHOLD, loop=False, chunk_mode="off",
                chunk_index=-1, noise=pipeline.DEFAULT_NOISE) -> io.NodeOutput:
        chunked = chunk_mode != "off"
        if chunked and loop:
            raise InputError("loop mode and chunk mode cannot be combined: a loop needs the whole clip at once; "
                             "turn one of them off")
        node, fps_in = node_key(cls), source_rate(source_fps)
        key = (int(multiplier), reuse.sampling_key(comfy.unwrap(model), tau, seed, noise), fps_in, float(target_fps),
               float(scene_threshold), bool(loop))
        if not chunked and (hit := reuse.lookup(node, key, (frames, model, flow_model))) is not None:
            return io.NodeOutput(*hit)
        x = frames_from_image(frames, min_frames=1)
        schedule, fps_out = clips.frame_rate_schedule(int(multiplier), fps_in, float(target_fps) or None)
        options = pipeline.Options(tau=tau, seed=int(seed), noise=noise, scene_threshold=scene_threshold)
        if x.shape[0] == 1 and not (chunked or loop):
            out = (frames, float(fps_in or 0.0), single_frame_report(model, flow_model, options, x, fps_in, schedule))
            return io.NodeOutput(*out)
        chunk = cls._chunk(node, int(chunk_index), cls.hidden.prompt if cls.hidden else None) if chunked else None
        result, image, engine, estimator, hooks = run_clip(x, model, flow_model, schedule, options=options,
                                                           loop=bool(loop), chunk=chunk,
                                                           overlap=chunk_mode == "overlapping")
        extra = {"loop": bool(loop)}
        if chunk is not None:
            extra["chunk"] = {"mode": chunk_mode, "index": chunk.parts - 1, "first_output": result.first_output,
                              "emitted": chunk.emitted}
        report = report_json(result, engine, estimator, hooks, schedule, options, x, fps_in, **extra)
        out = (image, float(fps_out or 0.0), report)
        return io.NodeOutput(*(out if chunked else reuse.store(node, key, (frames, model, flow_model), out)))

    @classmethod
    def _chunk(cls, node, chunk_index: int, prompt) -> clips.ChunkedClip:
        """This node's clip state for the chunk ``chunk_index`` (-1: automatic; module docstring)."""
        index = chunk_index if chunk_index >= 0 else meta_batch_index(prompt)
        with _clips_lock:
            state = _clips.get(node)
            if state is None or index == 0:
                if index not in (None, 0):
                    raise InputError(f"chunk mode: this is chunk {index}, but this node has not run chunk 0 of the "
                                     "clip; run the chunks in order, starting with chunk index 0")
                state = clips.ChunkedClip()
            elif index is not None and index != state.parts:
                raise InputError(f"chunk mode: this is chunk {index}, but the next chunk of the clip is "
                                 f"{state.parts}; run the chunks in order, or set chunk index 0 to start a new clip")
            _clips[node] = state  # replaced only for chunk 0; feed() changes a state only when the chunk succeeds
        return state
