"""VGG16 perceptual loss for training (the μ·L_perc term of paper §3.2, μ = 0.2 in DESIGN.md).

Built on the same ImageNet VGG16 as the benchmark metrics (:mod:`pervfi_core.metrics.backbones`):
* ``kind="lpips"`` (default): LPIPS-vgg v0.1 (Zhang et al. 2018), differentiable, per sample;
* ``kind="features"``: mean L1 distance of ImageNet-normalised VGG16 activations relu1_2 …
  relu5_3 (Johnson et al. 2016 style), each layer weighted equally.

Both return a (B,) tensor for ``pred``, ``gt`` (B, 3, H, W) in [0, 1]; gradients flow to ``pred``
(and ``gt``), the VGG weights are frozen. Usage with :func:`pervfi_core.train.losses.pervfi_loss`:
``perceptual=VGGPerceptualLoss().to(device)``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from ..metrics.backbones import VGG16Features, load_backbone, lpips_weights
from ..metrics.lpips import LPIPS

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGGPerceptualLoss(nn.Module):
    """Perceptual distance for training; see the module docstring for ``kind``.

    ``weights``: LPIPS-vgg state dict (``features.*``, ``lin0..4.weight``); default: the published
    weights (downloaded and converted once into ``cache_dir("metrics")``).
    """

    def __init__(self, *, kind: str = "lpips", weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        if kind not in ("lpips", "features"):
            raise InputError(f"kind: expected 'lpips' or 'features', got {kind!r}")
        self.kind = kind
        sd = lpips_weights("vgg") if weights is None else weights
        if kind == "lpips":
            self.lpips = LPIPS(net="vgg", weights=sd)
        else:
            self.net = load_backbone(VGG16Features(), sd)
            self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen feature extractor: always in eval mode

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B,) perceptual distance."""
        if self.kind == "lpips":
            return self.lpips(pred, gt)
        if pred.shape != gt.shape:
            raise InputError(f"pred and gt must have the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
        feats = self.net((torch.cat([pred, gt], dim=0) - self.mean) / self.std)  # (2B, C_l, h_l, w_l) each
        dist = pred.new_zeros(pred.shape[0])
        for f in feats:
            a, b = f.chunk(2, dim=0)
            dist = dist + (a - b).abs().mean(dim=(1, 2, 3))
        return dist / len(feats)
