"""The controls and sockets the nodes share: one definition of each (V3 inputs), its range, default and tooltip."""
from __future__ import annotations

from pervfi_core import pipeline
from pervfi_core.pipeline.schedule import MULTIPLIER_RANGE

from .comfy import io

# Where the nodes sit in the Add Node menu: beside core's frame interpolation ("video") and loaders.
CATEGORY = "video/PerVFI"
LOADERS = "model/loaders/PerVFI"
SEARCH_ALIASES = ["rife", "film", "vfi", "slow motion", "interpolate frames", "frame interpolation", "pervfi"]

Model = io.Custom("PERVFI_MODEL")  # the engine (PerVFI network or the training-free engine)
MotionModel = io.Custom("PERVFI_FLOW_MODEL")  # the motion (optical flow) estimator
Motion = io.Custom("PERVFI_FLOW")  # optical flow of every consecutive pair
Blend = io.Custom("PERVFI_BLEND")  # asymmetric blends of every new frame, ready for decoding

FRAMES_TOOLTIP = ("Video frames in time order (IMAGE batch [N, H, W, 3], all the same size). One frame is returned "
                  "unchanged. RGBA: split off the alpha first with core's 'Split Image with Alpha'.")
MODEL_TOOLTIP = "The engine from 'Load PerVFI Model'. Use the same one for blending and decoding."
MOTION_MODEL_TOOLTIP = "The motion estimator from 'Load PerVFI Motion Estimator (optical flow)'."
TAU_TOOLTIP = (
    "Sampling temperature τ of a normalizing-flow decoder (paper §3.2): the latent is drawn from N(0, τ²). "
    "0 = the most probable (smoothest) frame; higher = more texture and randomness (pervfi-rife, the default: only "
    "where the two warped frames disagree, at moving edges and occlusions). Used only by stochastic engines "
    "(pervfi-rife, pervfi-v00, pervfi-own-tau); deterministic ones (training-free, pervfi-own, pervfi-vb) ignore it, "
    "and a change re-uses the last result.")
SEED_TOOLTIP = (
    "Seed of the random latent of a stochastic engine (pervfi-rife, pervfi-v00, pervfi-own-tau): same seed and τ = "
    "same frames. Deterministic engines ignore it (a change re-uses the last result). Stays fixed after each "
    "Queue unless you choose otherwise in 'control after generate'.")
REPORT_TOOLTIP = ("JSON report: engine (name and descriptor), motion estimator, device, dtype, τ, seed (and whether "
                  "the engine uses them), multiplier or fps, frame counts, scene cuts, tile plan, notes, seconds per "
                  "pair.")
FPS_TOOLTIP = ("Frame rate of the output: source fps x multiplier, or the target fps; 0 when the source fps is not "
               "given. Connect it to Create Video's fps.")
DEFAULT_SOURCE_FPS = 0.0  # 0 = not given: the report says so instead of inventing 24
CHUNK_MODES = ("off", "overlapping", "consecutive")


def tau(name: str = "tau") -> io.Float.Input:
    lo, hi = pipeline.TAU_RANGE
    return io.Float.Input(name, default=pipeline.DEFAULT_TAU, min=lo, max=hi, step=0.01,
                          display_mode=io.NumberDisplay.slider, tooltip=TAU_TOOLTIP)


def seed() -> io.Int.Input:
    return io.Int.Input("seed", default=pipeline.DEFAULT_SEED, min=0, max=pipeline.MAX_SEED,
                        control_after_generate=io.ControlAfterGenerate.fixed, tooltip=SEED_TOOLTIP)


def noise() -> io.Combo.Input:
    return io.Combo.Input(
        "noise", options=list(pipeline.NOISE_MODES), default=pipeline.DEFAULT_NOISE, optional=True,
        tooltip="Latents of successive new frames of a stochastic engine. 'shared' = every new frame decodes the "
                "seed's latent: static regions stay still. 'per-frame' = frame j draws its own (seed + j): "
                "independent samples, which flicker at τ > 0. Ignored by deterministic engines.")


def multiplier() -> io.Int.Input:
    lo, hi = MULTIPLIER_RANGE  # the command line's limits too
    return io.Int.Input("multiplier", default=2, min=lo, max=hi, step=1,
                        tooltip="Frame-rate multiplier: 2 adds one frame between each pair, 4 adds three. Output "
                                f"frames: (N-1)·multiplier + 1. {lo} to {hi}. Unused when a target fps is set.")


def source_fps() -> io.Float.Input:
    return io.Float.Input("source_fps", default=DEFAULT_SOURCE_FPS, min=0.0, max=1000.0, step=0.001, optional=True,
                          tooltip="Frame rate of the input frames: connect Get Video Components' fps (or type it). "
                                  "0 = unknown: the fps output is then 0 and the report says so. Needed for a "
                                  "target fps.")


def target_fps() -> io.Float.Input:
    return io.Float.Input("target_fps", default=0.0, min=0.0, max=1000.0, step=0.001, optional=True,
                          tooltip="0 = use the multiplier. Otherwise the output frame rate (at least the source's): "
                                  "frames are placed on the exact timeline of that rate (24 -> 60 fps: new frames "
                                  "at arbitrary times between the inputs; inputs kept where the timeline hits them).")


def scene_threshold() -> io.Float.Input:
    return io.Float.Input("scene_threshold", default=pipeline.DEFAULT_SCENE_THRESHOLD, min=0.0, max=1.0, step=0.01,
                          optional=True,
                          tooltip="Scene-cut detection: a pair whose colour histograms differ by more than this is a "
                                  "cut and is never blended (the nearer frame is repeated); the report lists the "
                                  "cuts. 0 = off. Lower catches more cuts, higher fewer.")


def loop() -> io.Boolean.Input:
    return io.Boolean.Input("loop", default=False, optional=True,
                            tooltip="Seamless loop: the last frame is also interpolated towards the first, and the "
                                    "copy of the first frame that would close the loop is left out (N frames at x m "
                                    "-> N·m frames). Needs at least 2 frames.")


def chunk_mode() -> io.Combo.Input:
    return io.Combo.Input(
        "chunk_mode", options=list(CHUNK_MODES), default=CHUNK_MODES[0], optional=True,
        tooltip="A long clip fed in chunks (e.g. VideoHelperSuite's Meta Batch Manager): 'consecutive' = each "
                "chunk continues right after the previous one (Meta Batch); this node keeps the previous "
                "chunk's last frame and interpolates across the boundary. 'overlapping' = each chunk starts "
                "with the previous chunk's last frame, emitted once. Either way the chunks' outputs concatenate "
                "to one run over the whole clip, seeds included. 'off' = every run is a whole clip.")


def chunk_index() -> io.Int.Input:
    return io.Int.Input("chunk_index", default=-1, min=-1, max=2 ** 31 - 1, step=1, optional=True,
                        tooltip="Chunk mode: which chunk this is. 0 starts a new clip; 1, 2, ... must follow in "
                                "order. -1 = automatic: the Meta Batch Manager's batch counter when the workflow "
                                "has one, else the chunk after the previous one this node ran.")


def frames_input() -> io.Image.Input:
    return io.Image.Input("frames", tooltip=FRAMES_TOOLTIP)


def model_input() -> io.Input:
    return Model.Input("model", tooltip=MODEL_TOOLTIP)


def motion_model_input() -> io.Input:
    return MotionModel.Input("flow_model", display_name="motion_model", tooltip=MOTION_MODEL_TOOLTIP)
