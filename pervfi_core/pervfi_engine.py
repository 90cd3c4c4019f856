"""The PerVFI network (:class:`pervfi_core.model.PerVFI`) run as an engine, and its registry entries.

The network is the paper's; what the pipeline needs on top of it lives here: the name reports show,
whether τ matters, the pixel budget of one call, the measured working memory, dtype handling, and how
its checkpoints (official v00 / vb, and the project's trained configs) are recognised and built.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .configs import META_MODEL_CONFIG, build_model, model_from_metadata, network
from .engine import DEFAULT_TAU, Blend, EngineInfo
from .errors import ArchitectureMismatchError
from .model import ARCHITECTURE_V00, ARCHITECTURE_VB, SIZE_MULTIPLE, PerVFI
from .specs import EngineSpec

# Bytes per pixel of one blend + decode call (batch x H x W), float32: the peak of live tensor bytes
# (allocations minus frees, torch profiler on the CPU, weights and inputs excluded) of blend -> decode on
# one 256x448 and one 512x896 frame, batch 1, t = 0.5 (bench/memory_per_pixel.py; the same figure at both
# sizes: the network is convolutional). v00 and vb peak in the shared blend stage (fusion at full
# resolution), hence one figure; the project's compact widths (fuse_width < 64) with the vb decoder need
# less. A compact normalizing-flow decoder is charged the official figure (not measured: the safe side). On a GPU the
# caching allocator and convolution workspaces add to it (bench/device_check.py measures the real peak).
OFFICIAL_BYTES_PER_PIXEL = 3157
COMPACT_VB_BYTES_PER_PIXEL = 1031


def memory_per_pixel(config: Mapping) -> int:
    compact = config.get("fuse_width", 64) < 64
    return COMPACT_VB_BYTES_PER_PIXEL if compact and config.get("decoder") == "vb" else OFFICIAL_BYTES_PER_PIXEL


class PerVFIEngine(nn.Module):
    """:class:`PerVFI` behind the :class:`~pervfi_core.engine.Engine` contract (the network is ``.network``)."""

    needs_motion = True
    size_multiple = SIZE_MULTIPLE
    # Pixels (batch x H x W) per blend+decode call that the pipeline tiles larger frames down to: the
    # official v00 peaks at about 4.6 GB for 1280x720 in float32 on a CPU (bench/bench_core.py), mostly
    # the fusion's 256-channel full-resolution blocks, so 1024x576 tiles plus motion context keep a
    # 3840x2160 frame well under 8 GB.
    max_pixels = 1024 * 576

    def __init__(self, net: PerVFI, info: EngineInfo | None = None):
        super().__init__()
        self.network = net
        self.info = info or EngineInfo(id=net.arch, architecture=net.arch, config=dict(net.config))

    @property
    def name(self) -> str:
        """What reports call this engine: the manifest id or file it was loaded from, else its architecture."""
        return self.info.id

    @property
    def config(self) -> dict:
        """The network's hyperparameters (what the training CLI's metadata records)."""
        return self.network.config

    @property
    def stochastic(self) -> bool:
        """True when τ and the seed change the output (the normalizing-flow decoder)."""
        return self.network.decoder == "cnf"

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def dtype(self) -> torch.dtype:
        return self.network.dtype

    @property
    def memory_per_pixel(self) -> int:
        return memory_per_pixel(self.network.config)

    def set_dtype(self, dtype: torch.dtype) -> "PerVFIEngine":
        """Blend in ``dtype``; the normalizing flow stays float32 (it inverts matrices and exponentiates),
        the deterministic vb decoder follows ``dtype``."""
        if dtype != torch.float32:
            self.network.set_blend_dtype(dtype)
            if not self.stochastic:
                self.network.to(dtype)
        return self

    def blend(self, img0, img1, fflow, bflow, t=0.5) -> Blend:
        return self.network.blend(img0, img1, fflow, bflow, t)

    def decode(self, blend: Blend, tau: float = DEFAULT_TAU, seed: int = 0, z=None) -> torch.Tensor:
        return self.network.decode(blend, tau=tau, seed=seed, z=z)

    def encode(self, blend: Blend, gt: torch.Tensor, *, standardize: bool = True):
        return self.network.encode(blend, gt, standardize=standardize)

    def forward(self, img0, img1, fflow, bflow, t=0.5, *, tau: float = DEFAULT_TAU, seed: int = 0) -> torch.Tensor:
        return self.decode(self.blend(img0, img1, fflow, bflow, t), tau=tau, seed=seed)


def build_engine(config: str = "v00", **overrides) -> PerVFIEngine:
    """A PerVFI engine with random weights for a config of :mod:`pervfi_core.configs` (tests, training)."""
    return PerVFIEngine(build_model(config, **overrides))


def build(state_dict=None, metadata=None) -> PerVFIEngine:
    """The engine for a PerVFI state dict: the config from the training CLI's metadata when present (it
    carries the residual base), else read from the tensor shapes; loaded strictly."""
    meta = metadata or {}
    net = model_from_metadata(meta) if META_MODEL_CONFIG in meta else network(**ARCHITECTURE_V00.config(state_dict))
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ArchitectureMismatchError(f"these weights do not fit the {net.arch} network ({net.config}): {exc}") from None
    return PerVFIEngine(net)


V00 = EngineSpec("pervfi-v00", "PerVFI with the conditional normalizing-flow decoder (τ and the seed matter)", build,
                 memory_per_pixel, ARCHITECTURE_V00, default_weights="pervfi-v00")
VB = EngineSpec("pervfi-vb", "PerVFI with the deterministic decoder (faster)", build, memory_per_pixel,
                ARCHITECTURE_VB, default_weights="pervfi-vb")
