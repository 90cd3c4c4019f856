"""Invertible layers of the conditional normalizing flow (paper §3.2, Glow-style).

Every layer has ``encode`` (data -> latent, with its log|det J|) and ``decode`` (latent -> data).
Tensors are ``(B, C, h, w)`` in the flow's domain (images mapped to [-1, 1], squeezed to C channels).
A log-determinant is either a 0-dim tensor (the same for every sample: ActNorm, InvConv2d) or a
``(B,)`` tensor (per sample: the coupling); summing them broadcasts to ``(B,)``.

The formulas follow the official implementation exactly, including its asymmetries (see
:class:`ActNorm`), so that official checkpoints decode and encode identically.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_p(x: torch.Tensor, mean: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    """Element-wise log N(x; mean, exp(log_sd)²) (the prior term of the NLL, Eq. (11)-(12))."""
    return -0.5 * _LOG_2PI - log_sd - 0.5 * (x - mean) ** 2 * torch.exp(-2 * log_sd)


def gaussian_sample(eps: torch.Tensor, mean: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample ``mean + exp(log_sd)·eps`` (eps is N(0, τ²) noise, τ = temperature)."""
    return torch.addcmul(mean, torch.exp(log_sd), eps)


class ActNorm(nn.Module):
    """Per-channel affine normalisation (Glow's actnorm).

    encode: ``y = (exp(logs) + 1e-8)·(x + loc)``, log|det| = h·w·Σ logs.
    decode: ``x = y·exp(-logs) - loc``. As in the official code, decode is not the exact inverse of
    encode (the 1e-8 appears only in encode); each direction keeps its own formula.

    ``initialized`` is a uint8 scalar buffer (official layout). While it is 0, the first call (in
    either direction) sets ``loc = -mean`` and ``logs = ln(1/(std + 1e-6) + 1e-6)`` per channel from
    that call's input (std with Bessel's correction) and flips it to 1: Glow's data-dependent
    initialisation, used when training from scratch.
    """

    def __init__(self, *, channels: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent init from ``x`` (B, C, h, w): unit variance, zero mean per channel."""
        std, mean = torch.std_mean(x, dim=(0, 2, 3), keepdim=True)
        self.loc.copy_(-mean)
        self.logs.copy_(torch.log(1 / (std + 1e-6) + 1e-6))
        self.initialized.fill_(1)
        log.debug("ActNorm(%d) initialised from data", x.shape[1])

    def _maybe_initialize(self, x: torch.Tensor) -> None:
        if int(self.initialized) == 0:
            self.initialize(x)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._maybe_initialize(x)
        h, w = x.shape[-2:]
        logdet = h * w * self.logs.sum()
        return (torch.exp(self.logs) + 1e-8) * (x + self.loc), logdet

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        self._maybe_initialize(y)
        return y * torch.exp(-self.logs) - self.loc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(x)


class InvConv2d(nn.Module):
    """Invertible 1×1 convolution with a free (C, C) matrix W (stored as ``weight`` (C, C, 1, 1)).

    encode: ``y = W x`` per pixel, log|det| = h·w·ln|det W| (computed in float64, then cast, as
    the official code does). decode: ``x = W⁻¹ y`` with W⁻¹ the matrix inverse in W's dtype,
    computed from the current weight at every call (a C×C inverse, C ≤ 48: microseconds), so it can
    never be stale after an optimiser step or ``load_state_dict``.
    """

    def __init__(self, *, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(q[:, :, None, None])

    def matrix(self) -> torch.Tensor:
        return self.weight[:, :, 0, 0]

    def inverse_matrix(self) -> torch.Tensor:
        return torch.linalg.inv(self.matrix())

    def log_abs_det(self) -> torch.Tensor:
        return torch.linalg.slogdet(self.matrix().double())[1].to(self.weight.dtype)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        return F.conv2d(x, self.weight), h * w * self.log_abs_det()

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, self.inverse_matrix()[:, :, None, None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(x)


class ZeroConv2d(nn.Module):
    """3×3 convolution (zero padding, with bias) whose output is scaled by ``exp(3·scale)``.

    Initialised to zero, so a fresh coupling or prior starts as the identity / standard normal.
    """

    def __init__(self, *, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.scale = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # conv(x)·g == conv with weight·g and bias·g: folds the output scaling into the tiny weights
        gain = torch.exp(self.scale * 3).view(-1)
        return F.conv2d(x, self.conv.weight * gain.view(-1, 1, 1, 1), self.conv.bias * gain, padding=1)


class CouplingNet(nn.Module):
    """NN(off, c) of the coupling: conv3×3 -> ReLU -> conv1×1 -> ReLU -> ZeroConv2d (``tail``)."""

    def __init__(self, *, in_channels: int, cond_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.tail = nn.Sequential(
            nn.Conv2d(in_channels + cond_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),  # safe: a conv's backward does not need its output
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(inplace=True),
            ZeroConv2d(in_channels=hidden, out_channels=out_channels),
        )

    def forward(self, off: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.cat([off, cond], dim=1))


class AffineCoupling(nn.Module):
    """Conditional affine coupling (paper Eq. (16)-(17)).

    The C channels split into ``on`` (first half) and ``off`` (second half);
    ``shift, raw = NN(off, cond)`` (halves of C channels), ``s = scale·tanh(raw) + scale_shift``.
    encode: ``on' = on·exp(s) + shift`` (Eq. 16), log|det| = Σ s per sample (Eq. 17);
    decode: ``on = (on' - shift)·exp(-s)``. ``off`` passes through; the output is [on', off].
    ``cond`` is ``(B, cond_channels, h, w)`` at the resolution of x.
    """

    def __init__(self, *, channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        self.affine = CouplingNet(
            in_channels=channels // 2, cond_channels=cond_channels, hidden=hidden, out_channels=channels
        )
        self.scale = nn.Parameter(torch.zeros(1))
        self.scale_shift = nn.Parameter(torch.zeros(1))

    def _shift_and_tanh(self, off, cond):
        shift, raw = self.affine(off, cond).chunk(2, dim=1)
        return shift, torch.tanh(raw)

    def encode(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        on, off = x.chunk(2, dim=1)
        shift, t = self._shift_and_tanh(off, cond)
        s = torch.addcmul(self.scale_shift, self.scale, t)  # s = scale·tanh(raw) + scale_shift
        on = torch.addcmul(shift, on, torch.exp(s))  # Eq. (16)
        return torch.cat([on, off], dim=1), s.sum(dim=(1, 2, 3))  # Eq. (17)

    def decode(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        on, off = y.chunk(2, dim=1)
        shift, t = self._shift_and_tanh(off, cond)
        inv_rescale = torch.exp(torch.addcmul(-self.scale_shift, -self.scale, t))  # exp(-s)
        return torch.cat([(on - shift) * inv_rescale, off], dim=1)

    def forward(self, x, cond):
        return self.encode(x, cond)


class GlowStep(nn.Module):
    """One Glow step ("step of flow"): ActNorm -> InvConv2d -> AffineCoupling (decode runs them backwards)."""

    def __init__(self, *, channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        self.actnorm = ActNorm(channels=channels)
        self.invconv = InvConv2d(channels=channels)
        self.coupling = AffineCoupling(channels=channels, cond_channels=cond_channels, hidden=hidden)

    def encode(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ld_act = self.actnorm.encode(x)
        x, ld_inv = self.invconv.encode(x)
        x, ld_cpl = self.coupling.encode(x, cond)
        return x, ld_act + ld_inv + ld_cpl

    def decode(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = self.coupling.decode(y, cond)
        return invconv_then_actnorm_decode(self.invconv, self.actnorm, y)

    def forward(self, x, cond):
        return self.encode(x, cond)


def invconv_then_actnorm_decode(invconv: InvConv2d, actnorm: ActNorm, y: torch.Tensor) -> torch.Tensor:
    """``actnorm.decode(invconv.decode(y))`` as one 1×1 conv: diag(exp(-logs))·W⁻¹ y - loc.

    Saves two full passes over the tensor per step; equal to the two-stage form up to float
    rounding. Falls back to the two stages while ActNorm still needs its data-dependent init.
    """
    if int(actnorm.initialized) == 0:
        return actnorm.decode(invconv.decode(y))
    inv_scale = torch.exp(-actnorm.logs).view(-1, 1)  # (C, 1)
    weight = (inv_scale * invconv.inverse_matrix())[:, :, None, None]
    return F.conv2d(y, weight, -actnorm.loc.view(-1))
