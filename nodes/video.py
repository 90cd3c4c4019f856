"""VIDEO in, VIDEO out: the clip at its new frame rate, with its audio.

A VIDEO backed by a whole file (Load Video) is streamed: the core's streaming loop
(:func:`pervfi_core.pipeline.loop.interpolate_file`) reads it pair by pair and writes the output file
into ComfyUI's temp folder, and the VIDEO returned is backed by that file. Memory does not grow with
the length of the clip. A VIDEO held in memory (Create Video, a trimmed clip) is interpolated in memory.
"""
from __future__ import annotations

import time

from pervfi_core import pipeline
from pervfi_core.allocator import trimmed
from pervfi_core.errors import InputError
from pervfi_core.pipeline import clips
from pervfi_core.pipeline.loop import RunReport, input_info, interpolate_file
from pervfi_core.pipeline.memory import memory_required
from pervfi_core.pipeline.report import run_report, to_json

from . import comfy, reuse
from .comfy import io
from .images import frames_from_image
from .interpolate import SINGLE_FRAME_NOTE, node_key, report_json, run_clip
from .widgets import (
    CATEGORY,
    REPORT_TOOLTIP,
    SEARCH_ALIASES,
    loop,
    model_input,
    motion_model_input,
    multiplier,
    noise,
    scene_threshold,
    seed,
    target_fps,
    tau,
)


def stream_file(path, model, flow_model, *, multiplier: int, target_fps: float, options, loop: bool):
    """Input file -> a new file in ComfyUI's temp folder, pair by pair; returns (VIDEO, report JSON)."""
    info = input_info(path)
    if info.frame_count == 1 and not loop:
        return comfy.video_from_file(path), to_json({"frames_in": 1, "frames_out": 1, "notes": [SINGLE_FRAME_NOTE]})
    fps_out = float(target_fps) or None
    schedule, _ = clips.frame_rate_schedule(multiplier, info.fps, fps_out)  # checks the target as the IMAGE node does
    need = memory_required(info.height, info.width, engine=comfy.unwrap(model), estimator=comfy.unwrap(flow_model),
                           timesteps=schedule, options=options)
    engine, estimator = comfy.prepare(model, flow_model, memory_required=need)
    pairs = (info.frame_count or 2) - 1 + int(loop)
    hooks = comfy.hooks(pairs, "PerVFI video", model=engine)
    output = comfy.output_file("pervfi", path.suffix if path.suffix.lower() in (".mp4", ".mkv", ".mov") else ".mp4")
    report = RunReport()
    start = time.perf_counter()
    with trimmed():  # pervfi_core/allocator.py
        interpolate_file(path, output, engine, estimator, multiplier=None if fps_out else multiplier, fps=fps_out,
                         options=options, hooks=hooks, report=report, loop=loop)
    frames_in = report.frames_in - int(loop)  # the loop's closing pair reads the first frame again
    summary = run_report(engine=engine, estimator=estimator, options=options, timesteps=schedule, height=info.height,
                         width=info.width, fps_in=report.fps_in, frames_in=frames_in, frames_out=report.frames_out,
                         cuts=report.cuts, hooks=hooks, seconds=time.perf_counter() - start,
                         pairs=frames_in - 1 + int(loop), loop=loop, audio=bool(info.audio_codec), streamed=True,
                         file=output.name)
    return comfy.video_from_file(output), to_json(summary)


def in_memory(video, model, flow_model, *, multiplier: int, target_fps: float, options, loop: bool):
    """A VIDEO held in memory (frames as IMAGE) -> a VIDEO from the interpolated frames; (VIDEO, report JSON)."""
    parts = comfy.video_parts(video)
    if parts.images is None or parts.images.shape[0] == 0:
        raise InputError("video: the VIDEO has no frames; check the file (Load Video) or the images given to "
                         "Create Video")
    x = frames_from_image(parts.images, name="video", min_frames=1 if loop else 2)
    schedule, fps_out = clips.frame_rate_schedule(multiplier, parts.frame_rate, float(target_fps) or None)
    result, image, engine, estimator, hooks = run_clip(x, model, flow_model, schedule, options=options, loop=loop)
    report = report_json(result, engine, estimator, hooks, schedule, options, x, parts.frame_rate, loop=loop,
                         audio=parts.audio is not None, streamed=False)
    return comfy.make_video(image, fps_out, parts.audio), report


class PerVFIInterpolateVideo(io.ComfyNode):
    """A VIDEO (Load Video, Create Video) interpolated to a multiple of its frame rate or to a target fps."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PerVFIInterpolateVideo",
            display_name="PerVFI Interpolate Video",
            category=CATEGORY,
            search_aliases=SEARCH_ALIASES,
            description=(
                "Interpolates a VIDEO with PerVFI: x multiplier or to a target frame rate (e.g. 24 -> 60 fps on an "
                "exact timeline), keeping its audio. A video loaded from a file is streamed from that file to a new "
                "file in ComfyUI's temp folder, so memory does not grow with its length; the VIDEO returned reads "
                "that file, ready for Save Video."),
            inputs=[io.Video.Input("video", tooltip="The clip, e.g. from Load Video (its frame rate and audio are used)."),
                    model_input(), motion_model_input(), multiplier(), tau(), seed(), target_fps(), scene_threshold(),
                    loop(), noise()],
            outputs=[io.Video.Output("video", display_name="video",
                                     tooltip="The interpolated video: new frame rate, the input's audio unchanged."),
                     io.String.Output("report", display_name="report", tooltip=REPORT_TOOLTIP)],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, video, model, flow_model, multiplier, tau, seed, target_fps=0.0,
                scene_threshold=pipeline.DEFAULT_SCENE_THRESHOLD, loop=False,
                noise=pipeline.DEFAULT_NOISE) -> io.NodeOutput:
        node = node_key(cls)
        key = (int(multiplier), reuse.sampling_key(comfy.unwrap(model), tau, seed, noise), float(target_fps),
               float(scene_threshold), bool(loop))
        if (hit := reuse.lookup(node, key, (video, model, flow_model))) is not None:
            return io.NodeOutput(*hit)
        options = pipeline.Options(tau=tau, seed=int(seed), noise=noise, scene_threshold=scene_threshold)
        path = comfy.video_file(video)
        run = stream_file if path is not None else in_memory
        out = run(path if path is not None else video, model, flow_model, multiplier=int(multiplier),
                  target_fps=float(target_fps), options=options, loop=bool(loop))
        return io.NodeOutput(*reuse.store(node, key, (video, model, flow_model), out))
