"""PerVFI = asymmetric synergistic blending (ASB, §3.1) + conditional generator (§3.2).

Two stages, so that the expensive part is computed once and the cheap part can be re-run:

``blend(img0, img1, fflow, bflow, t) -> Blend``: feature pyramid and metric (Eq. 1-2) -> forward warp
of frame 0 and holes (Eq. 5-6) -> PAM alignment of frame 1 (Eq. 3-4) -> ADM quasi-binary blending
(Eq. 7-9) -> multi-scale fusion into the conditions c.
``decode(blend, tau, seed) -> frames``: I_t = G⁻¹(z; c) with z ~ N(0, τ²) (v00), or the deterministic
decoder (vb). Changing τ or the seed re-runs only this.

Submodule names are the official key prefixes, so official checkpoints load strictly:
``featurePyramid``, ``deformableAlign``, ``attentionMerge``, ``multiscaleFuse`` and ``condFLownet``
(v00) or ``generator`` (vb). In the project's own names "flow" is the optical flow only; the conditional
normalizing flow is the decoder, kind ``"cnf"`` (configs written before the rename load through
:data:`pervfi_core.configs.RENAMED`). This module is the network only: how it is run as an engine (name, memory,
τ handling) is :mod:`pervfi_core.pervfi_engine`; :data:`ARCHITECTURE` recognises its checkpoints and
reads its constructor arguments from tensor shapes.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from .asb import AttentionMerge, DeformableAlign, FeaturePyramid, forward_warp
from .checks import as_timesteps, check_flow, check_image, check_same_shape
from .engine import DEFAULT_TAU, Blend
from .errors import InputError
from .generator import CondFlowNet, MultiscaleFuse, VBDecoder
from .ops.padding import padding_for
from .specs import Architecture, shape_of

SIZE_MULTIPLE = 8  # three 2x levels in the generator (and the pyramid's 1/4 level)
DECODERS = {"cnf": "condFLownet", "vb": "generator"}  # decoder kind -> official key prefix


class PerVFI(nn.Module):
    """PerVFI network. Hyperparameters (keyword-only) default to the official models.

    Args:
        decoder: ``"cnf"`` (the conditional normalizing flow, official v00) or ``"vb"`` (deterministic).
        encoder_channels: widths of the pyramid stages (the levels have 3 + c0, c1, c2 channels).
        metric_rows: widths of the Softmetric rows, full to 1/8 resolution (the first > 12: 12 image
            channels plus the error channels).
        dcn_groups: deformable offset groups per level l0, l1, l2 (each divides its level's channels).
        n_steps: Glow steps K per block of the normalizing flow; coupling_hidden: the width of their
            affine-coupling networks.
        fuse_width: stem and bottleneck width of the fusion; fuse_branches: its HRNet branch widths.
        base: ``None`` (official) or an engine whose frame the decoder corrects (a project extension for
            small models trained on little compute; :mod:`pervfi_core.configs` builds it): the decoder then
            models the residual to that frame, computed from the same frames and flows: I_t = B + G⁻¹(z; c)
            (v00) or B + generator(c) (vb). For the flow this is a translation of x, so its log-det and the
            NLL (Eq. 11-12) are unchanged. The vb tail starts at zero, so an untrained model returns exactly
            the base frame.
    """

    def __init__(self, *, decoder: str = "cnf", encoder_channels: Sequence[int] = (32, 64, 96),
                 metric_rows: Sequence[int] = (16, 32, 64, 96), dcn_groups: Sequence[int] = (7, 8, 8),
                 n_steps: int = 16, coupling_hidden: int = 64, fuse_width: int = 64,
                 fuse_branches: Sequence[int] = (32, 64, 96), base: nn.Module | None = None):
        super().__init__()
        if decoder not in DECODERS:
            raise InputError(f"decoder: expected one of {tuple(DECODERS)}, got {decoder!r}")
        self.decoder = decoder
        self.config = dict(decoder=decoder, encoder_channels=tuple(encoder_channels), metric_rows=tuple(metric_rows),
                           dcn_groups=tuple(dcn_groups), n_steps=n_steps, coupling_hidden=coupling_hidden,
                           fuse_width=fuse_width, fuse_branches=tuple(fuse_branches))
        self.base = base  # parameter-free: no state-dict keys of its own
        self.featurePyramid = FeaturePyramid(channels=tuple(encoder_channels), metric_rows=tuple(metric_rows))
        levels = self.featurePyramid.level_channels
        self.deformableAlign = DeformableAlign(channels=levels, groups=tuple(dcn_groups))
        self.attentionMerge = AttentionMerge(channels=levels)
        self.multiscaleFuse = MultiscaleFuse(in_channels=levels, stem_channels=fuse_width,
                                             bottleneck_width=fuse_width, branch_channels=tuple(fuse_branches))
        if decoder == "cnf":
            self.condFLownet = CondFlowNet(cond_channels=levels, n_blocks=len(levels), n_steps=n_steps,
                                           hidden=coupling_hidden)
        else:
            self.generator = VBDecoder(cond_channels=levels)
            if base is not None:
                nn.init.zeros_(self.generator.tail.weight)
                nn.init.zeros_(self.generator.tail.bias)

    @property
    def arch(self) -> str:
        """Architecture id: ``"pervfi-v00"`` (normalizing flow) or ``"pervfi-vb"`` (fast decoder)."""
        return "pervfi-v00" if self.decoder == "cnf" else "pervfi-vb"

    @property
    def device(self) -> torch.device:
        """Where blend() computes (the decoder may differ only in dtype)."""
        return self._param().device

    @property
    def dtype(self) -> torch.dtype:
        """The float type blend() computes in (:meth:`set_blend_dtype`)."""
        return self._param().dtype

    def _param(self) -> torch.Tensor:
        """A parameter of the blending stage: its device and dtype are where blend() computes."""
        return next(self.featurePyramid.parameters())

    def _decoder_param(self) -> torch.Tensor:
        """A parameter of the decoder: its device and dtype are where decode()/encode() compute."""
        return next((self.condFLownet if self.decoder == "cnf" else self.generator).parameters())

    def set_blend_dtype(self, dtype: torch.dtype) -> "PerVFI":
        """Run blend() (ASB + fusion) in ``dtype`` (e.g. bfloat16) and keep the decoder as it is (float32:
        the normalizing flow inverts matrices and exponentiates). Returns self."""
        for module in (self.featurePyramid, self.deformableAlign, self.attentionMerge, self.multiscaleFuse):
            module.to(dtype)
        return self

    # -- stage 1 -------------------------------------------------------------------------------
    def blend(self, img0: torch.Tensor, img1: torch.Tensor, fflow: torch.Tensor, bflow: torch.Tensor,
              t=0.5) -> Blend:
        """ASB + fusion. Frames (B, 3, H, W) in [0, 1]; fflow = F0->1 on frame 0's grid and bflow =
        F1->0 on frame 1's grid, (B, 2, H, W) in pixels (channel 0 = x); t a float or (B,) in [0, 1].
        Any H, W: frames and flows are replicate-padded at the right/bottom to multiples of 8."""
        images, flows, t = self._prepare(img0, img1, fflow, bflow, t)
        size = tuple(img0.shape[-2:])
        padding = padding_for(size, SIZE_MULTIPLE, mode="bottom_right")
        img0, img1, fflow, bflow = (padding.apply(x, fill="replicate") for x in (*images, *flows))
        enc0, enc1, metric01, metric10 = self.featurePyramid(img0 * 2 - 1, img1 * 2 - 1, fflow, bflow)  # Eq. (2)
        warped = forward_warp(enc0, fflow, bflow, metric01, metric10, t)  # Eq. (1), (5)-(6)
        del enc0  # drop full-resolution features as soon as they are used (peak memory)
        aligned = self.deformableAlign(warped.features, enc1, warped.holes, warped.flow_t1)  # Eq. (3)-(4)
        del enc1
        blended, masks = self.attentionMerge(warped.features, aligned, warped.holes)  # Eq. (7)-(9)
        del warped, aligned
        frame = None
        if self.base is not None:
            with torch.no_grad():  # parameter-free: nothing to learn through it; on the unpadded frames
                inputs = (x.float() for x in (*images, *flows))
                frame = padding.apply(self.base.decode(self.base.blend(*inputs, t)).to(img0.dtype), fill="replicate")
        return Blend(conds=self.multiscaleFuse(blended), masks=masks, size=size, padding=padding, frame=frame)

    def _prepare(self, img0, img1, fflow, bflow, t):
        check_image("img0", img0)
        check_image("img1", img1)
        check_same_shape("img0", img0, "img1", img1)
        if img0.dtype != img1.dtype:
            raise InputError(f"img0 and img1 must have the same dtype, got {img0.dtype} and {img1.dtype}")
        check_flow("fflow", fflow, img0)
        check_flow("bflow", bflow, img0)
        ref = self._param()
        t = as_timesteps(t, img0.shape[0], device=ref.device, dtype=torch.float32)
        move = lambda x: x.to(device=ref.device, dtype=ref.dtype)  # noqa: E731
        return (move(img0), move(img1)), (move(fflow), move(bflow)), t

    # -- stage 2 -------------------------------------------------------------------------------
    def z_shapes(self, blend: Blend) -> list[tuple[int, ...]]:
        """Latent shapes for this blend, finest first: (B, 6, Hp/2, Wp/2), (B, 12, Hp/4, Wp/4), (B, 48, Hp/8, Wp/8)."""
        self._require_cnf("z_shapes")
        return self.condFLownet.z_shapes(blend.batch, *blend.padded_size)

    def sample_z(self, blend: Blend, tau: float = DEFAULT_TAU, seed: int = 0) -> list[torch.Tensor]:
        """z ~ N(0, τ²) from a private generator seeded with ``seed`` on the blend's device (the global
        RNG is untouched). On CPU, seed S gives the official latents drawn after torch.manual_seed(S):
        randn of the three shapes in order, each times τ."""
        generator = torch.Generator(device=blend.device).manual_seed(int(seed))
        return [torch.randn(shape, generator=generator, device=blend.device, dtype=torch.float32) * tau
                for shape in self.z_shapes(blend)]

    def decode(self, blend: Blend, tau: float = DEFAULT_TAU, seed: int = 0, z: Sequence[torch.Tensor] | None = None
               ) -> torch.Tensor:
        """Frames at time t, (B, 3, H, W) clamped to [0, 1]. v00: z given explicitly (shapes of
        :meth:`z_shapes`, already scaled by τ) or drawn by :meth:`sample_z` on the model's device (a
        blend parked elsewhere is moved there first); vb ignores tau, seed, z."""
        ref = self._decoder_param()
        blend = blend.to(device=ref.device, dtype=ref.dtype)  # no copy when already there
        conds = blend.conds
        if self.decoder == "vb":
            y = self.generator(conds)
        else:
            zs = self.sample_z(blend, tau, seed) if z is None else list(z)
            shapes = [tuple(s) for s in self.z_shapes(blend)]
            if [tuple(x.shape) for x in zs] != shapes:
                raise InputError(f"z: expected latents of shapes {shapes}, got {[tuple(x.shape) for x in zs]}")
            y = self.condFLownet.decode(conds, [x.to(conds[0]) for x in zs])
        if blend.frame is not None:
            y = y + (blend.frame * 2 - 1)
        return blend.padding.crop(((y + 1) / 2).clamp(0, 1))

    def encode(self, blend: Blend, gt: torch.Tensor, *, standardize: bool = True):
        """Negative log-likelihood of the ground truth frame (B, 3, H, W) in [0, 1] and its latents (v00).

        Returns (nll (B,) in bits per pixel = -(log p + log det)/(ln 2·Hp·Wp), zs finest first). With
        ``standardize=True`` (default) zs are the latents :meth:`decode` takes, so
        ``decode(blend, z=zs)`` gives ``gt`` back; ``standardize=False`` returns the official raw
        flow outputs instead."""
        self._require_cnf("encode")
        check_image("gt", gt)
        if tuple(gt.shape[-2:]) != blend.size or gt.shape[0] != blend.batch:
            raise InputError(f"gt: expected shape ({blend.batch}, 3, {blend.size[0]}, {blend.size[1]}) like the "
                             f"blended frames, got {tuple(gt.shape)}")
        ref = self._decoder_param()
        blend = blend.to(device=ref.device, dtype=ref.dtype)
        x = blend.padding.apply(gt.to(blend.conds[0]), fill="replicate") * 2 - 1
        if blend.frame is not None:
            x = x - (blend.frame * 2 - 1)  # a translation: no log-det term
        log_p, logdet, zs = self.condFLownet.encode(x, blend.conds, standardize=standardize)
        height, width = blend.padded_size
        return -(log_p + logdet) / (math.log(2) * height * width), zs

    def _require_cnf(self, what: str) -> None:
        if self.decoder != "cnf":
            raise InputError(f"{what} needs the normalizing-flow model (v00); this model is {self.arch}")

    def forward(self, img0, img1, fflow, bflow, t=0.5, *, tau: float = DEFAULT_TAU, seed: int = 0) -> torch.Tensor:
        """blend then decode: frames (B, 3, H, W) in [0, 1] at time t."""
        return self.decode(self.blend(img0, img1, fflow, bflow, t), tau=tau, seed=seed)


# ------------------------------------------------------------------------------ checkpoints
def _count(keys, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := rx.match(k))})


def _is_pervfi(sd) -> bool:
    return "featurePyramid.netEncode.netOne.0.weight" in sd


def config_from_shapes(sd) -> dict:
    """:class:`PerVFI`'s keyword arguments read from a state dict's tensor shapes (``base`` is not in
    the weights: the training CLI's metadata carries it)."""
    shape = lambda key: shape_of(sd[key])  # noqa: E731
    cnf = any(k.startswith("condFLownet.") for k in sd)
    rows = _count(sd, r"featurePyramid\.netSoftmetric\.(\d+)x0 - \1x1\.")
    cfg = dict(
        decoder="cnf" if cnf else "vb",
        encoder_channels=tuple(shape(f"featurePyramid.netEncode.net{n}.0.weight")[0] for n in ("One", "Two", "Thr")),
        metric_rows=tuple(shape(f"featurePyramid.netSoftmetric.{r}x0 - {r}x1.netMain.1.weight")[0] for r in range(rows)),
        dcn_groups=tuple(shape(f"deformableAlign.deform_conv.l{lv}.conv_offset.weight")[0] // 27 for lv in range(3)),
        fuse_width=shape("multiscaleFuse.stems.0.0.weight")[0],
        fuse_branches=tuple(shape(f"multiscaleFuse.final_layers.{i}.weight")[1] for i in range(3)),
    )
    if cnf:
        cfg.update(n_steps=_count(sd, r"condFLownet\.blocks\.0\.flows\.(\d+)\."),
                   coupling_hidden=shape("condFLownet.blocks.0.flows.0.coupling.affine.tail.0.weight")[0])
    return cfg


#: The two official layouts: v00 (normalizing-flow decoder) and vb (deterministic decoder).
ARCHITECTURE_V00 = Architecture("pervfi-v00", lambda sd: _is_pervfi(sd) and any(k.startswith("condFLownet.") for k in sd),
                                config_from_shapes)
ARCHITECTURE_VB = Architecture("pervfi-vb", lambda sd: _is_pervfi(sd) and "generator.tail.weight" in sd,
                               config_from_shapes)
