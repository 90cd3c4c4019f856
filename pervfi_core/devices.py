"""Where and in which float type engines compute: ``auto`` and the user's choice, checked once."""
from __future__ import annotations

import logging

import torch

from .errors import InputError

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; ``cpu``/``cuda``/``cuda:1``/``mps`` as given."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available to this PyTorch; use --device cpu")
    if device.type == "mps" and not has_mps:
        raise InputError("--device mps: Apple's MPS backend is not available; use --device cpu")
    return device


def pick_dtype(name: str = "auto", device: torch.device | None = None, *, half: torch.dtype | None = None
               ) -> torch.dtype:
    """The compute dtype for a choice of :data:`DTYPES` or ``auto``.

    ``auto`` is float32 (the reference; PerVFI's flow generator and softmax splatting want its accuracy)
    unless the host says a half type is fast on its device (``half``: ComfyUI's model manager does).
    Half precision on a CPU is allowed but slow; it is said so in the log.
    """
    if name == "auto":
        return half or torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype: expected auto or one of {sorted(DTYPES)}, got {name!r}")
    dtype = DTYPES[name]
    if dtype != torch.float32 and device is not None and torch.device(device).type == "cpu":
        logger.warning("%s on a CPU is several times slower than float32 (CPUs have few half-precision "
                       "kernels); use float32 unless memory is the limit", name)
    return dtype


