"""Conditional normalizing flow G (paper §3.2): I_t = G⁻¹(z; c), z ~ N(0, τ²).

Multi-scale Glow: ``n_blocks`` blocks, each squeeze (``pixel_unshuffle(2)``) -> ActNorm ->
InvConv2d -> ``n_steps`` Glow steps (conditioned on the fused features c_b at the block's
resolution) -> split. Blocks 0..L-2 emit half of their channels as a latent z_b and pass the other
half on; the last block emits everything. Each z_b has a conditional Gaussian prior predicted by a
ZeroConv2d ``prior`` from the kept half (or from zeros for the last block).

For the official v00 (in_channels 3, L = 3) on an H×W image:
``z_shapes = [(B, 6, H/2, W/2), (B, 12, H/4, W/4), (B, 48, H/8, W/8)]`` and the conditions are
``[(B, 35, H/2, W/2), (B, 64, H/4, W/4), (B, 96, H/8, W/8)]`` (finest first, see
:class:`~pervfi_core.generator.fuse.MultiscaleFuse`). Images live in the [-1, 1] domain (2·x - 1).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .glow_layers import (
    ActNorm,
    GlowStep,
    InvConv2d,
    ZeroConv2d,
    gaussian_log_p,
    gaussian_sample,
    invconv_then_actnorm_decode,
)


class GlowBlock(nn.Module):
    """One scale of the flow. Input ``(B, in_channels, h, w)``; works on 4·in_channels at h/2×w/2."""

    def __init__(self, *, in_channels: int, cond_channels: int, n_steps: int, hidden: int, split: bool):
        super().__init__()
        squeezed = 4 * in_channels
        self.split = split
        self.actnorm = ActNorm(channels=squeezed)
        self.invconv = InvConv2d(channels=squeezed)
        self.flows = nn.ModuleList(  # "flows": the official key name of the steps
            GlowStep(channels=squeezed, cond_channels=cond_channels, hidden=hidden) for _ in range(n_steps)
        )
        # split: prior of z (second half) from the kept half; else: a learnt constant prior (from zeros)
        z_channels = squeezed // 2 if split else squeezed
        prior_in = squeezed - z_channels if split else squeezed
        self.prior = ZeroConv2d(in_channels=prior_in, out_channels=2 * z_channels)  # mean, log_sd

    def _prior_from_zeros(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # a learnt constant; computed as the official conv of zeros (cheap at 1/2^L resolution)
        # so that the conv weight receives its (zero) gradient like every other parameter
        return self.prior(torch.zeros_like(like)).chunk(2, dim=1)

    def encode(self, x: torch.Tensor, cond: torch.Tensor, *, standardize: bool = False):
        """x (B, in_channels, h, w) -> (kept (B, 2·in, h/2, w/2) or None, logdet, log_p (B,), z).

        ``standardize``: return ``(z - mean)·exp(-log_sd)`` (the decode's eps) instead of z.
        """
        x = F.pixel_unshuffle(x, 2)  # squeeze: (B, C, h, w) -> (B, 4C, h/2, w/2)
        x, logdet = self.actnorm.encode(x)
        x, ld = self.invconv.encode(x)
        logdet = logdet + ld
        for step in self.flows:
            x, ld = step.encode(x, cond)
            logdet = logdet + ld
        if self.split:
            kept, z = x.chunk(2, dim=1)
            mean, log_sd = self.prior(kept).chunk(2, dim=1)
        else:
            kept, z = None, x
            mean, log_sd = self._prior_from_zeros(z)
        log_p = gaussian_log_p(z, mean, log_sd).sum(dim=(1, 2, 3))  # Eq. (12)
        if standardize:
            z = (z - mean) * torch.exp(-log_sd)
        return kept, logdet, log_p, z

    def decode(self, kept: torch.Tensor | None, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """(kept from the coarser block or None, cond, eps) -> x (B, in_channels, h, w)."""
        if self.split:
            mean, log_sd = self.prior(kept).chunk(2, dim=1)
            x = torch.cat([kept, gaussian_sample(eps, mean, log_sd)], dim=1)
        else:
            x = gaussian_sample(eps, *self._prior_from_zeros(eps))
        for step in reversed(self.flows):
            x = step.decode(x, cond)
        x = invconv_then_actnorm_decode(self.invconv, self.actnorm, x)
        return F.pixel_shuffle(x, 2)  # unsqueeze: out[c, 2h+i, 2w+j] = in[4c+2i+j, h, w]


class CondFlowNet(nn.Module):
    """The conditional normalizing flow (official key prefix ``condFLownet.``): the v00 decoder. The class
    keeps the official implementation's name, and ``flows`` below its key name, so that checkpoints map 1:1.

    Args (keyword-only): ``in_channels`` image channels (3); ``cond_channels`` channels of the
    conditions c_0..c_{L-1}, finest first; ``n_blocks`` L (= len(cond_channels)); ``n_steps`` Glow
    steps K per block; ``hidden`` width of the coupling networks.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        cond_channels: Sequence[int] = (35, 64, 96),
        n_blocks: int = 3,
        n_steps: int = 16,
        hidden: int = 64,
    ):
        super().__init__()
        if len(cond_channels) != n_blocks:
            raise InputError(f"cond_channels: expected {n_blocks} values (one per block), got {tuple(cond_channels)}")
        self.in_channels = in_channels
        self.n_blocks = n_blocks
        self.blocks = nn.ModuleList(
            GlowBlock(
                in_channels=in_channels * 2**b,  # each split keeps half of 4C channels
                cond_channels=cond_channels[b],
                n_steps=n_steps,
                hidden=hidden,
                split=b < n_blocks - 1,
            )
            for b in range(n_blocks)
        )

    @property
    def size_multiple(self) -> int:
        return 2**self.n_blocks

    def z_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Latent shapes for an image ``height × width`` (multiples of 2^L), finest first."""
        self._check_size(height, width)
        shapes = []
        for b in range(self.n_blocks):
            c = self.in_channels * 2**b * (2 if b < self.n_blocks - 1 else 4)
            s = 2 ** (b + 1)
            shapes.append((batch, c, height // s, width // s))
        return shapes

    def _check_size(self, height: int, width: int) -> None:
        m = self.size_multiple
        if height % m or width % m:
            raise InputError(f"image size {height}x{width}: both sides must be multiples of {m}; pad first")

    def _check_list(self, name: str, xs, shapes: Sequence[tuple]) -> None:
        got = [tuple(x.shape) for x in xs]
        want = [tuple(s) for s in shapes]
        if got != want:
            raise InputError(f"{name}: expected shapes {want}, got {got}")

    def _check_conds(self, conds, batch: int, height: int, width: int) -> None:
        if len(conds) != self.n_blocks:
            raise InputError(f"conds: expected {self.n_blocks} tensors (finest first), got {len(conds)}")
        for b, c in enumerate(conds):
            s = 2 ** (b + 1)
            if c.ndim != 4 or c.shape[0] != batch or tuple(c.shape[2:]) != (height // s, width // s):
                raise InputError(
                    f"conds[{b}]: expected (B={batch}, C, {height // s}, {width // s}), got {tuple(c.shape)}"
                )

    def encode(self, x: torch.Tensor, conds: Sequence[torch.Tensor], *, standardize: bool = False):
        """x (B, in_channels, H, W) in [-1, 1] -> (log_p (B,), logdet (B,), zs finest first).

        ``-(log_p + logdet)`` is the negative log-likelihood in nats (Eq. (11)-(12)), before any
        dequantisation term and the normalisation to bits per pixel.

        As in the official code, the returned zs are the flow's outputs, *not* the noise that
        :meth:`decode` takes: decode maps its input eps through the learnt priors
        (z = mean + exp(log_sd)·eps). With ``standardize=True`` the zs are returned as that eps,
        ``(z - mean)·exp(-log_sd)``, so that ``decode(conds, encode(x, conds, standardize=True)[2])``
        gives x back.
        """
        self._check_size(*x.shape[-2:])
        self._check_conds(conds, x.shape[0], *x.shape[-2:])
        log_p = x.new_zeros(x.shape[0])
        logdet = x.new_zeros(x.shape[0])
        zs = []
        for block, cond in zip(self.blocks, conds):
            x, ld, lp, z = block.encode(x, cond, standardize=standardize)
            logdet = logdet + ld
            log_p = log_p + lp
            zs.append(z)
        return log_p, logdet, zs

    def decode(self, conds: Sequence[torch.Tensor], zs: Sequence[torch.Tensor]) -> torch.Tensor:
        """(conds finest first, zs finest first, shapes of :meth:`z_shapes`) -> x (B, in, H, W) in [-1, 1].

        Unclamped. zs are the already-scaled latents (randn·τ).
        """
        if len(zs) != self.n_blocks:
            raise InputError(f"zs: expected {self.n_blocks} latents (finest first), got {len(zs)}")
        b, _, h, w = zs[0].shape
        height, width = 2 * h, 2 * w
        self._check_list("zs", zs, self.z_shapes(b, height, width))
        self._check_conds(conds, b, height, width)
        x = None
        for block, cond, z in zip(reversed(self.blocks), reversed(conds), reversed(zs)):
            x = block.decode(x, cond, z)
        return x
