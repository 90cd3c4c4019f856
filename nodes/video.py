"""VIDEO in, VIDEO out: the clip at its new frame rate, with its audio."""
from __future__ import annotations

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.pipeline import clips

from . import comfy, reuse
from .images import frames_from_image, image_from_frames
from .interpolate import REPORT_TOOLTIP, report_json, run_clip
from .widgets import (
    FLOW_MODEL_TOOLTIP,
    MODEL_TOOLTIP,
    loop_widget,
    multiplier_widget,
    noise_widget,
    scene_threshold_widget,
    seed_widget,
    target_fps_widget,
    tau_widget,
)


class PerVFIInterpolateVideo:
    """A VIDEO (Load Video, Create Video) interpolated to a multiple of its frame rate or to a target fps."""

    DISPLAY_NAME = "PerVFI Interpolate Video"
    DESCRIPTION = (
        "Interpolates a VIDEO with PerVFI: x multiplier or to a target frame rate (e.g. 24 -> 60 fps on an exact "
        "timeline). The output VIDEO has the new frame rate and keeps the input's audio, ready for Save Video."
    )
    CATEGORY = "PerVFI"
    FUNCTION = "interpolate"
    RETURN_TYPES = ("VIDEO", "STRING")
    RETURN_NAMES = ("video", "report")
    OUTPUT_TOOLTIPS = ("The interpolated video: new frame rate, the input's audio unchanged.", REPORT_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The clip, e.g. from Load Video (its frame rate and audio are used)."}),
                "model": ("PERVFI_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "flow_model": ("PERVFI_FLOW_MODEL", {"tooltip": FLOW_MODEL_TOOLTIP}),
                "multiplier": multiplier_widget(),
                "tau": tau_widget(),
                "seed": seed_widget(),
            },
            "optional": {
                "target_fps": target_fps_widget(),
                "scene_threshold": scene_threshold_widget(),
                "loop": loop_widget(),
                "noise": noise_widget(),
            },
        }

    def interpolate(self, video, model, flow_model, multiplier, tau, seed, target_fps=0.0,
                    scene_threshold=pipeline.DEFAULT_SCENE_THRESHOLD, loop=False, noise=pipeline.DEFAULT_NOISE):
        key = (int(multiplier), reuse.sampling_key(comfy.unwrap(model), tau, seed, noise), float(target_fps),
               float(scene_threshold), bool(loop))
        if (hit := reuse.lookup(type(self).__name__, key, (video, model, flow_model))) is not None:
            return hit
        parts = comfy.video_parts(video)
        if parts.images is None or parts.images.shape[0] == 0:
            raise InputError("video: the VIDEO has no frames; check the file (Load Video) or the images given to "
                             "Create Video")
        x = frames_from_image(parts.images, name="video", min_frames=1 if loop else 2)
        schedule, fps_out = clips.frame_rate_schedule(int(multiplier), parts.frame_rate, float(target_fps) or None)
        options = pipeline.Options(tau=tau, seed=int(seed), noise=noise, scene_threshold=scene_threshold)
        result, engine, estimator, hooks = run_clip(x, model, flow_model, schedule, options=options, loop=bool(loop))
        report = report_json(result, engine, estimator, hooks, schedule, options, x, parts.frame_rate, loop=bool(loop),
                             audio=parts.audio is not None)
        images = image_from_frames(result.frames, device=comfy.intermediate_device())
        return reuse.store(type(self).__name__, key, (video, model, flow_model), (comfy.make_video(images, fps_out, parts.audio), report))
