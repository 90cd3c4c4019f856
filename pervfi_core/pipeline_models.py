"""Building what the pipeline runs: the blending engine, the motion estimator, the device.

``load_model(None)`` / ``"default"`` is the embedded default: the project's own trained weights
(``pervfi-own``, shipped in ``weights/``, offline; weights/MODEL_CARD.md), which beat the
training-free engine on the validation clips. ``"training-free"`` is that engine (no weights, about
15x faster on a CPU). Otherwise ``spec`` is a checkpoint id of the manifest or a file path; the
architecture is read from the state dict (PerVFI v00 or vb) and the weights are loaded strictly.
"""
from __future__ import annotations

import logging

import torch

from .errors import ArchitectureMismatchError, InputError, WeightsError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "pervfi-own"  # the embedded default: it beats the training-free engine (weights/MODEL_CARD.md)
TRAINING_FREE = "training-free"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; ``cpu``/``cuda``/``cuda:1``/``mps`` as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available to this PyTorch; use --device cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device mps: Apple's MPS backend is not available; use --device cpu")
    return device


def pick_dtype(name: str = "auto", device: torch.device | None = None) -> torch.dtype:
    """``auto`` -> float32 (the PerVFI flow generator and softmax splatting want float32 accuracy)."""
    if name == "auto":
        return torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype: expected auto or one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def load_model(spec: str | None = None, *, device=None, dtype: torch.dtype = torch.float32, progress=None,
               estimator_option: str = "--flow"):
    """The blending engine for ``spec``, in eval mode, on ``device``: None / "default" (the embedded
    default, :data:`DEFAULT_MODEL`), "training-free", or a manifest id, alias or checkpoint file (downloaded and verified on
    first use; ``progress(done, total)`` sees the download). Weights written by the training CLI
    carry their configuration (:mod:`pervfi_core.train.configs`) and rebuild the model they came
    from. A ``dtype`` other than float32 runs blend() in it; the normalizing flow stays float32
    (:meth:`PerVFI.set_blend_dtype`), the deterministic vb decoder follows ``dtype``. Motion-estimator
    weights raise :class:`ArchitectureMismatchError` pointing to ``estimator_option``, where they belong."""
    if spec is None or spec == "default":
        spec = DEFAULT_MODEL
    if spec == TRAINING_FREE:
        from .training_free import TrainingFreeVFI

        return TrainingFreeVFI().eval().to(device=device)
    from . import build_model, weights
    from .train.configs import META_MODEL_CONFIG, model_from_metadata

    loaded = weights.load(spec, progress=progress)
    arch = loaded.info.architecture
    if not arch.startswith("pervfi-"):
        raise ArchitectureMismatchError(
            f"{spec}: this checkpoint is a {arch!r} network, not a PerVFI generator (pervfi-v00, pervfi-vb); "
            f"motion-estimator weights belong in {estimator_option}")
    if META_MODEL_CONFIG in loaded.metadata:
        model = model_from_metadata(loaded.metadata)
    else:
        model = build_model(arch.removeprefix("pervfi-"))
    model.load_state_dict(loaded.state_dict)
    model.name = loaded.info.manifest_id or str(spec)  # what the CLI reports as the engine
    logger.info("loaded %s (PerVFI, %s architecture%s)", model.name, arch,
                f", config {loaded.metadata['pervfi_config_name']}" if "pervfi_config_name" in loaded.metadata else "")
    model = model.to(device=device).eval()
    if dtype != torch.float32:
        model.set_blend_dtype(dtype)
        if not model.stochastic:
            model.to(dtype)
    return model


def load_estimator(spec: str = "auto", *, device=None):
    """A motion estimator by name ("auto", "dis", "gmflow", "gmflow-refine", "raft", "raft-small")
    or from a checkpoint file / manifest id (its architecture picks the estimator)."""
    from .flow import build_estimator

    names = ("auto", "dis", "gmflow", "gmflow-refine", "raft", "raft-small")
    if spec in names:
        return build_estimator(spec, device=device)
    from . import weights

    arch = weights.detect_architecture(weights.load_state_dict(spec))
    if arch not in names:
        raise WeightsError(f"--flow {spec}: this checkpoint is a {arch!r} network, not a motion estimator "
                           f"({', '.join(names[2:])}); PerVFI checkpoints go to --model")
    return build_estimator(arch, weights=spec, device=device)
