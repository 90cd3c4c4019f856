"""Loader nodes: the PerVFI generator and the motion estimator.

Dropdowns list, in this order: the default, the manifest's checkpoints of that kind (ids stay the
same before and after their first download, so saved workflows keep working), and any other
checkpoint file found in the ``pervfi`` / ``pervfi_flow`` model folders. A manifest checkpoint
that is not on disk is downloaded on first use (progress bar, sha256 and layout verified).
"""
from __future__ import annotations

from pervfi_core import engines

from . import comfy

CATEGORY = "PerVFI/loaders"
DEFAULT = engines.DEFAULT
DTYPES = ("auto", *engines.DTYPES)


def checkpoint_choices(kind: str) -> list[str]:
    """The loader dropdown of ``kind`` (``pervfi`` or ``pervfi_flow``): the core's catalog, the same the CLI offers."""
    comfy.register_model_folders()  # files added to the model folders show up after a refresh
    return engines.engine_choices() if kind == "pervfi" else engines.estimator_checkpoints()


class PerVFILoadModel:
    """Checkpoint -> PERVFI_MODEL (generator: ASB + normalizing flow / fast decoder)."""

    DISPLAY_NAME = "Load PerVFI Model"
    DESCRIPTION = (
        "Loads a PerVFI generator. 'default' is 'pervfi-rife', the best measured: PerVFI's asymmetric "
        "blending and normalizing-flow decoder on the pretrained RIFE 4.25/4.26 IFNet (a rife425/426.pth in "
        "models/frame_interpolation is used, else about 25 MB are downloaded on first use; without them, the "
        "'training-free' engine: PerVFI's asymmetric blending on images, no weights, deterministic). "
        "'pervfi-own' is the project's own trained weights, shipped with the pack: slower on a CPU and slightly "
        "lower in quality (figures: its model card, weights/MODEL_CARD.md). 'pervfi-own-flow' is the project's "
        "own normalizing-flow decoder, also shipped: τ and the seed act on it without any download. 'pervfi-v00' is the "
        "official stochastic model (τ matters), 'pervfi-vb' its fast deterministic variant; they "
        "are downloaded into models/pervfi on first use. Other files found in models/pervfi are listed too."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("PERVFI_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("PerVFI generator for 'PerVFI ASB Blend', 'PerVFI Flow Decode' and 'PerVFI Interpolate'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "checkpoint": (checkpoint_choices("pervfi"), {
                "default": DEFAULT,
                "tooltip": "Generator weights: 'default' (pervfi-rife; its RIFE trunk is downloaded once), a "
                           "manifest checkpoint (downloaded "
                           "and verified on first use) or a file in models/pervfi.",
            }),
            "dtype": (list(DTYPES), {
                "default": "auto",
                "tooltip": "Compute precision. auto = what ComfyUI finds fast on this device: bfloat16, else "
                           "float16, else float32 (CPU). float32 is the reference; half precision halves memory. "
                           "The normalizing-flow decoder of v00 always runs in float32.",
            }),
        }}

    def load(self, checkpoint, dtype):
        comfy.register_model_folders()
        # loaded where models wait (ComfyUI's offload device); the model manager moves it for each run
        model = engines.load_engine(checkpoint, device=comfy.offload_device(),
                                   dtype=comfy.resolve_dtype(dtype, comfy.torch_device()),
                                   progress=comfy.download_progress(f"PerVFI {checkpoint}"),
                                   estimator_option="'Load PerVFI Flow Estimator'")
        return (comfy.manage(model, kind="generator"),)


class PerVFILoadFlowModel:
    """Estimator name + checkpoint -> PERVFI_FLOW_MODEL."""

    DISPLAY_NAME = "Load PerVFI Flow Estimator"
    DESCRIPTION = (
        "Loads the motion estimator used for the optical flow between frames. 'auto' needs no "
        "download: pretrained GMFlow on a GPU, OpenCV's DIS flow on a CPU. RIFE (4.25/4.26), RAFT, "
        "RAFT-small and GMFlow use their published weights (downloaded into models/pervfi_flow on first "
        "use) unless a checkpoint is chosen; RIFE checkpoints already in models/frame_interpolation are listed too."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("PERVFI_FLOW_MODEL",)
    RETURN_NAMES = ("flow_model",)
    OUTPUT_TOOLTIPS = ("Motion estimator for 'PerVFI Flow Estimation' and 'PerVFI Interpolate'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "estimator": (list(engines.estimator_choices()), {
                "default": "auto",
                "tooltip": "auto: fastest good choice for this device (no download). dis: OpenCV DIS (CPU, "
                           "no weights). rife: pretrained RIFE 4.25/4.26 run once at t = 0.5 (better motion than "
                           "DIS, about 5x its CPU time). gmflow-refine: pretrained two-scale GMFlow. gmflow, raft, "
                           "raft-small: official networks (weights downloaded on first use).",
            }),
            "checkpoint": (checkpoint_choices("pervfi_flow"), {
                "default": DEFAULT,
                "tooltip": "'default' = the estimator's official weights; or a manifest checkpoint / a file in "
                           "models/pervfi_flow (or, for rife, models/frame_interpolation) of the same "
                           "architecture (checked on load).",
            }),
        }}

    def load(self, estimator, checkpoint):
        comfy.register_model_folders()
        # 'auto' chooses by the device it will run on; the weights wait on the offload device
        est = engines.load_estimator(estimator, checkpoint=checkpoint, device=comfy.torch_device(),
                                     progress=comfy.download_progress(f"PerVFI {estimator} {checkpoint}"))
        return (comfy.manage(est.to(comfy.offload_device()), kind="motion"),)
