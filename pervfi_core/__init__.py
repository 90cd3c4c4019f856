"""PerVFI: perception-oriented video frame interpolation via asymmetric blending (CVPR 2024).

Pure PyTorch; nothing here imports ComfyUI.
"""
from .errors import (  # noqa: F401
    ArchitectureMismatchError,
    DownloadError,
    InputError,
    PerVFIError,
    UnsafeCheckpointError,
    WeightsError,
)

from .allocator import tune_malloc  # noqa: F401

__version__ = "0.1.0"


def build_model(config: str = "v00", **overrides):
    """Build a PerVFI model (``"v00"`` or ``"vb"``, or a project config); see :mod:`pervfi_core.configs`."""
    from .configs import build_model as _build

    return _build(config, **overrides)
