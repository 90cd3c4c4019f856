"""The controls the nodes share: one definition of each widget, its range, default and tooltip."""
from __future__ import annotations

from pervfi_core import pipeline

FRAMES_TOOLTIP = "Video frames in time order (IMAGE batch [N, H, W, 3], N >= 2, all the same size)."
MODEL_TOOLTIP = "The PerVFI generator from 'Load PerVFI Model'. Use the same model for blending and decoding."
FLOW_MODEL_TOOLTIP = "Motion estimator from 'Load PerVFI Flow Estimator'."
TAU_TOOLTIP = (
    "Sampling temperature τ of the normalizing-flow decoder (paper §3.2): the latent is drawn from "
    "N(0, τ²). 0 = the most probable (smoothest) frame; higher = more texture and detail, more "
    "randomness. Ignored by deterministic models (vb, pervfi-own, the training-free default). The paper uses 0.3."
)
SEED_TOOLTIP = ("Seed of the random latent of a stochastic engine (pervfi-v00, pervfi-own-flow): same seed and τ = "
                "same frames. Deterministic engines (the default) ignore it: changing it reuses the last result. "
                "Stays fixed after each Queue unless you set 'control after generate'.")
DEFAULT_SOURCE_FPS = 24.0
CHUNK_MODES = ("off", "overlapping", "consecutive")


def tau_widget() -> tuple:
    lo, hi = pipeline.TAU_RANGE
    return ("FLOAT", {"default": pipeline.DEFAULT_TAU, "min": lo, "max": hi, "step": 0.01, "display": "slider",
                      "tooltip": TAU_TOOLTIP})


def seed_widget() -> tuple:
    return ("INT", {"default": pipeline.DEFAULT_SEED, "min": 0, "max": pipeline.MAX_SEED, "control_after_generate": "fixed",
                    "tooltip": SEED_TOOLTIP})


def noise_widget() -> tuple:
    return (list(pipeline.NOISE_MODES), {
        "default": pipeline.DEFAULT_NOISE,
        "tooltip": "Latents of successive new frames. 'shared' = every new frame decodes the seed's latent: static "
                   "regions stay still. 'per-frame' = frame j draws its own (seed + j): independent samples, which "
                   "flicker at τ > 0. Ignored by deterministic models."})


def multiplier_widget() -> tuple:
    return ("INT", {"default": 2, "min": 2, "max": 16, "step": 1,
                    "tooltip": "Frame-rate multiplier: 2 adds one frame between each pair, 4 adds three. "
                               "Output frames: (N-1)·multiplier + 1. Unused when a target fps is set."})


def source_fps_widget() -> tuple:
    return ("FLOAT", {"default": DEFAULT_SOURCE_FPS, "min": 0.01, "max": 1000.0, "step": 0.001,
                      "tooltip": "Frame rate of the input frames, e.g. the fps output of Get Video Components or "
                                 "of VideoHelperSuite's loader. The fps output (source fps x multiplier, or the "
                                 "target fps) keeps Create Video / Video Combine in sync."})


def target_fps_widget() -> tuple:
    return ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                      "tooltip": "0 = use the multiplier. Otherwise the output frame rate (at least the source's): "
                                 "frames are placed on the exact timeline of that rate (24 -> 60 fps: new frames "
                                 "at arbitrary times between the inputs; inputs kept where the timeline hits them)."})


def scene_threshold_widget() -> tuple:
    return ("FLOAT", {"default": pipeline.DEFAULT_SCENE_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
                      "tooltip": "Scene-cut detection: a pair whose colour histograms differ by more than this is a "
                                 "cut and is never blended (the nearer frame is repeated); the report lists the cuts. "
                                 "0 = off. Lower catches more cuts, higher fewer."})


def loop_widget() -> tuple:
    return ("BOOLEAN", {"default": False,
                        "tooltip": "Seamless loop: the last frame is also interpolated towards the first, and the "
                                   "copy of the first frame that would close the loop is left out (N frames at x m "
                                   "-> N·m frames). Needs at least 2 frames."})


def chunk_mode_widget() -> tuple:
    return (list(CHUNK_MODES), {
        "default": CHUNK_MODES[0],
        "tooltip": "A long clip fed in chunks (e.g. VideoHelperSuite's Meta Batch Manager): 'consecutive' = each "
                   "chunk continues right after the previous one (Meta Batch); this node keeps the previous "
                   "chunk's last frame and interpolates across the boundary. 'overlapping' = each chunk starts "
                   "with the previous chunk's last frame, emitted once. Either way the chunks' outputs concatenate "
                   "to one run over the whole clip, seeds included. 'off' = every run is a whole clip."})


def chunk_index_widget() -> tuple:
    return ("INT", {"default": -1, "min": -1, "max": 2 ** 31 - 1, "step": 1,
                    "tooltip": "Chunk mode: which chunk this is. 0 starts a new clip; 1, 2, ... must follow in order. "
                               "-1 = automatic: the Meta Batch Manager's batch counter when the workflow has one, "
                               "else the chunk after the previous one this node ran (a new clip on its first run)."})
