"""The conditional normalizing-flow decoder of pervfi-rife, on the residual to the blended frame (§3.2).

PerVFI generates I_t = G⁻¹(z; c) with z ~ N(0, τ²) from conditions c of the blended features (Eq. 10-14).
Here the flow models the residual r = I_t − B to the asymmetric blend B (:mod:`.blend`), on a 2x2
space-to-depth grid (12 channels at half resolution, Glow's squeeze, Eq. 10):

    c = CondNet(B, W0, W1, M̃, |W0 − W1|, trunk features)                       conditions (Eq. 13-14)
    u = z;  u_b ← u_b · exp(s_k(u_a, c)) + t_k(u_a, c),  swap halves,  k = 1..K   affine couplings (Eq. 11)
    r = g · unsqueeze(μ(c) + σ(c) · u),   I_t = B + r                              conditional affine (Eq. 12)

so log p(r | c) = log N(z; 0, 1) − Σ log σ − Σ_k Σ s_k − Σ log g (Eq. 11-12), computed by
:meth:`ResidualDecoder.nll`, exactly invertible. g is the *disagreement envelope* (:func:`envelope`), a fixed
per-pixel scale in [1/L, 1] that rises with |W0 − W1|: where the two warped frames agree the blend is already
determined and the flow has nothing to generate (its residual there is the ground truth's own sensor noise,
which sampling would only add as grain); where they disagree — misalignment, occlusion, the pixels PerVFI's
ASB exists for — the flow's samples pass at full strength. L = 0 (a head file without ``envelope``) is g = 1.

Every last layer starts at zero: untrained, r = g·σ0·z, so τ = 0 (z = 0) returns B itself — never worse than
the blend before training moves it — and τ > 0 adds noise of std g·σ0·τ.
``sigma0`` sets the scale of σ at initialisation (residuals are a few 8-bit levels).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQUEEZE = 2
RES_CHANNELS = 3 * SQUEEZE * SQUEEZE  # the residual after the 2x2 squeeze
#: Condition inputs at full resolution: B (3), W0 (3), W1 (3), M̃ (1), |W0 − W1| (1), trunk features (8).
COND_INPUTS = 3 + 3 + 3 + 1 + 1 + 8
#: L of the shipped head's envelope: 8 levels, the line where the benches call two warped frames misaligned.
ENVELOPE_LEVELS = 8.0


def envelope(difference: torch.Tensor, levels: float) -> torch.Tensor:
    """g (B, 1, H, W) = clamp(d / L, 1/L, 1) from ``difference`` = |W0 − W1| (B, 3, H, W), d its largest channel in
    8-bit levels: full strength from L levels of disagreement, 1/L (a disagreement under one level, i.e. none) below."""
    d = difference.amax(1, keepdim=True) * 255
    return (d / levels).clamp(1 / levels, 1)


def _zero(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class CondNet(nn.Module):
    """Conditions c (B, width, H/2, W/2) from the full-resolution inputs (B, COND_INPUTS, H, W); H, W even."""

    def __init__(self, *, width: int = 32, blocks: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(COND_INPUTS * SQUEEZE * SQUEEZE, width, 3, 1, 1)
        self.body = nn.Sequential(*(_ResBlock(width) for _ in range(blocks)))

    def forward(self, x):
        return F.leaky_relu(self.body(F.leaky_relu(self.stem(F.pixel_unshuffle(x, SQUEEZE)), 0.2)), 0.2)


class _Coupling(nn.Module):
    """Affine coupling: the second half of u scaled and shifted by a net of the first half and c (Eq. 11)."""

    def __init__(self, cond: int, hidden: int):
        super().__init__()
        self.half = RES_CHANNELS // 2
        self.net = nn.Sequential(nn.Conv2d(self.half + cond, hidden, 3, 1, 1), nn.LeakyReLU(0.2),
                                 _zero(nn.Conv2d(hidden, 2 * self.half, 3, 1, 1)))

    def _st(self, ua, c):
        s, t = self.net(torch.cat([ua, c], 1)).chunk(2, 1)
        return torch.tanh(s), t  # bounded log-scale: stable inversion

    def forward(self, u, c):  # z -> x direction
        ua, ub = u[:, :self.half], u[:, self.half:]
        s, t = self._st(ua, c)
        return torch.cat([ub * s.exp() + t, ua], 1)  # halves swapped for the next step

    def inverse(self, x, c):  # x -> z direction, with the log-determinant of forward
        ub, ua = x[:, :self.half], x[:, self.half:]
        s, t = self._st(ua, c)
        return torch.cat([ua, (ub - t) * (-s).exp()], 1), s.flatten(1).sum(1)


class ResidualDecoder(nn.Module):
    """G⁻¹(z; c): residual (B, 3, H, W) from z (B, 12, H/2, W/2) and conditions c; exact inverse in :meth:`nll`."""

    def __init__(self, *, cond: int = 32, hidden: int = 32, couplings: int = 2, sigma0: float = 0.02):
        super().__init__()
        self.couplings = nn.ModuleList(_Coupling(cond, hidden) for _ in range(couplings))
        self.affine = _zero(nn.Conv2d(cond, 2 * RES_CHANNELS, 3, 1, 1))  # μ(c), log σ(c) (Eq. 12)
        self.log_sigma0 = math.log(sigma0)

    def _mu_logsigma(self, c):
        mu, log_sigma = self.affine(c).chunk(2, 1)
        return mu, log_sigma + self.log_sigma0

    def forward(self, z: torch.Tensor, c: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """The residual (B, 3, H, W); ``g`` the envelope (B, 1, H, W) or None (g = 1)."""
        u = z
        for step in self.couplings:
            u = step(u, c)
        mu, log_sigma = self._mu_logsigma(c)
        r = F.pixel_shuffle(mu + log_sigma.exp() * u, SQUEEZE)
        return r if g is None else r * g

    def nll(self, residual: torch.Tensor, c: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """−log p(residual | c) per dimension, (B,) in nats (Eq. 11-12); ``residual`` (B, 3, H, W), ``g`` as
        in :meth:`forward`."""
        logdet = residual.new_zeros(residual.shape[0])
        if g is not None:
            residual = residual / g
            logdet = logdet + residual.shape[1] * g.log().flatten(1).sum(1)  # one g for the 3 channels
        mu, log_sigma = self._mu_logsigma(c)
        u = (F.pixel_unshuffle(residual, SQUEEZE) - mu) * (-log_sigma).exp()
        logdet = logdet + log_sigma.flatten(1).sum(1)
        for step in reversed(self.couplings):
            u, s = step.inverse(u, c)
            logdet = logdet + s
        log_pz = -0.5 * (u ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)
        return -(log_pz - logdet) / residual[0].numel()


def latent(shape: tuple[int, int, int, int], tau: float, seed: int | None, *, device, dtype) -> torch.Tensor:
    """z ~ N(0, τ²) of ``shape`` (B, 12, H/2, W/2), the same for the same seed on any device (drawn on the
    CPU); zeros for τ = 0, whatever the seed."""
    if tau == 0:
        return torch.zeros(shape, device=device, dtype=dtype)
    g = torch.Generator().manual_seed(int(seed or 0))
    return (tau * torch.randn(shape, generator=g)).to(device=device, dtype=dtype)
