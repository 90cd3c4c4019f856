"""Building what the pipeline runs: the blending engine, the motion estimator, the device.

``load_model(None)`` is the embedded default, the training-free engine (no weights, offline).
Otherwise ``spec`` is a checkpoint id of the manifest or a file path; the architecture is read
from the state dict (PerVFI v00 or vb) and the weights are loaded strictly.
"""
from __future__ import annotations

import logging

import torch

from .errors import InputError, WeightsError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "training-free"
MODEL_ALIASES = ("training-free", "default")
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


def load_model(spec: str | None = None, *, device=None, dtype: torch.dtype = torch.float32):
    """The blending engine for ``spec`` (None / "training-free": the embedded default), in eval mode."""
    if spec is None or spec in MODEL_ALIASES:
        from .training_free import TrainingFreeVFI

        return TrainingFreeVFI().eval()
    from . import build_model, weights

    state_dict = weights.load_state_dict(spec)
    arch = weights.detect_architecture(state_dict)
    if not arch.startswith("pervfi-"):
        raise WeightsError(f"--model {spec}: this checkpoint is a {arch!r} network, not PerVFI; pass it to "
                           "--flow instead, or give a PerVFI checkpoint (pervfi-v00, pervfi-vb)")
    model = build_model(arch.removeprefix("pervfi-"))
    model.load_state_dict(state_dict)
    logger.info("loaded PerVFI %s from %s", arch, spec)
    return model.to(device=device, dtype=dtype).eval()


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
