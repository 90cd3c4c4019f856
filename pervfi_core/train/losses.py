"""PerVFI's training objective (paper §3.2, Eq. 11–15).

* v00 (normalizing flow): L = NLL(G(I_t; c)) + μ·L_perc(G⁻¹(z'; c), I_t), μ = 0.2, where z' is drawn
  from a Gaussian with the mean and variance of the encoded ground truth (Eq. 13–15), so the
  perceptual term trains the decoder on latents that resemble real ones.
* vb (deterministic decoder): L = L1 + μ·L_perc.
* A project extension for the normalizing-flow decoder, off by default (``anchor`` λ > 0):
  + λ·(L1(G⁻¹(0; c), I_t) + μ_a·L_perc(G⁻¹(0; c), I_t)), μ_a = ``anchor_mu`` (default 0: L1 only).
  The paper's objective never trains the τ = 0 frame itself; with a small training budget it drifts
  from the residual model's base, and this term holds it to the ground truth; its perceptual part
  trains the τ = 0 frame on what the benchmarks measure, not only on pixel error.

The NLL uses uniform dequantisation (Eq. 11–12): 8-bit frames get U(0, 1/256) noise, and the
discrete log-likelihood of a bin is the density times the bin volume, so ``D·ln(256/2)`` nats are
added for D values in the model's [-1, 1] domain (bin width 2/256). The constant does not change
gradients; it makes the reported NLL comparable to bits per pixel of the discrete data.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dequantize(gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. (11): x + u, u ~ U(0, 1/256), on 8-bit frames (B, 3, H, W) in [0, 1]."""
    noise = torch.rand(gt.shape, generator=generator, device=gt.device, dtype=gt.dtype)
    return gt + noise / 256.0


def dequantized_nll_bits(nll_continuous_bits: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Eq. (12): add the bin volume, ``channels·log2(256/2)`` bits per pixel, to the model's NLL.

    ``nll_continuous_bits`` is ``-(log p + log det)/(ln 2·H·W)`` as the model's ``encode`` returns it.
    """
    return nll_continuous_bits + channels * math.log2(256 / 2)


def latent_like(zs: list[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Eq. (13–15): z' ~ N(mean, var) with the per-sample mean and variance of all encoded z values."""
    flat = torch.cat([z.flatten(1) for z in zs], dim=1)  # (B, total)
    mean = flat.mean(1).detach()
    std = flat.var(1, unbiased=True).sqrt().detach()
    out = []
    for z in zs:
        eps = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        shape = (-1,) + (1,) * (z.ndim - 1)
        out.append(mean.view(shape) + std.view(shape) * eps)
    return out


def pervfi_loss(model, batch: dict, flows: tuple[torch.Tensor, torch.Tensor], *, perceptual: PerceptualFn | None,
                mu: float = 0.2, generator: torch.Generator | None = None, anchor: float = 0.0,
                anchor_mu: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch and its parts (floats, for logging).

    ``batch``: ``img0``, ``gt``, ``img1`` (B, 3, H, W) in [0, 1], ``t`` (B,); ``flows``: F0→1, F1→0 px.
    """
    fflow, bflow = flows
    blend = model.blend(batch["img0"], batch["img1"], fflow, bflow, batch["t"])
    logs: dict[str, float] = {}
    if model.decoder == "cnf":  # the normalizing flow: NLL (Eq. 11-12); the vb decoder: L1
        nll, zs = model.encode(blend, dequantize(batch["gt"], generator).clamp(0, 1))
        loss = nll.mean()
        logs["nll_bits"] = float(dequantized_nll_bits(nll.detach()).mean())
        if perceptual is not None and mu > 0:
            pred = model.decode(blend, z=latent_like(zs, generator))
            perc = perceptual(pred, batch["gt"]).mean()
            loss = loss + mu * perc
            logs["perceptual"] = float(perc.detach())
        if anchor > 0:
            frame = model.decode(blend, tau=0.0)
            loss = loss + anchor * l1_perceptual(frame, batch["gt"], perceptual, anchor_mu, logs, prefix="anchor_")
    else:
        loss = l1_perceptual(model.decode(blend), batch["gt"], perceptual, mu, logs)
    logs["loss"] = float(loss.detach())
    return loss, logs


def l1_perceptual(pred: torch.Tensor, gt: torch.Tensor, perceptual: PerceptualFn | None, mu: float,
                  logs: dict[str, float], *, prefix: str = "") -> torch.Tensor:
    """L1 + μ·L_perc of ``pred`` against ``gt`` (B, 3, H, W) in [0, 1], the perceptual term only with a
    ``perceptual`` and μ > 0; both parts logged as ``{prefix}l1`` and ``{prefix}perceptual``."""
    l1 = (pred - gt).abs().mean()
    logs[f"{prefix}l1"] = float(l1.detach())
    if perceptual is None or mu <= 0:
        return l1
    perc = perceptual(pred, gt).mean()
    logs[f"{prefix}perceptual"] = float(perc.detach())
    return l1 + mu * perc
