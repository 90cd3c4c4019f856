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
from .configs import build_model  # noqa: F401  (the network of a config: "v00", "vb", or the project's own)
from .pervfi_engine import build_engine  # noqa: F401  (the same behind the engine contract)

__version__ = "0.1.0"
