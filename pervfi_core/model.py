"""PerVFI = asymmetric synergistic blending (ASB, §3.1) + conditional generator (§3.2).

Two stages, so that the expensive part is computed once and the cheap part can be re-run:

``blend(img0, img1, fflow, bflow, t) -> Blend``: feature pyramid and metric (Eq. 1-2) -> forward warp
of frame 0 and holes (Eq. 5-6) -> PAM alignment of frame 1 (Eq. 3-4) -> ADM quasi-binary blending
(Eq. 7-9) -> multi-scale fusion into the conditions c.
``decode(blend, tau, seed) -> frames``: I_t = G⁻¹(z; c) with z ~ N(0, τ²) (v00), or the deterministic
decoder (vb). Changing τ or the seed re-runs only this.

Submodule names are the official key prefixes, so official checkpoints load strictly:
``featurePyramid``, ``deformableAlign``, ``attentionMerge``, ``multiscaleFuse`` and ``condFLownet``
(v00) or ``generator`` (vb).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .asb import AttentionMerge, DeformableAlign, FeaturePyramid, forward_warp
from .checks import as_timesteps, check_flow, check_image, check_same_shape
from .engines import EngineInfo
from .errors import ArchitectureMismatchError, InputError, WeightsError
from .generator import CondFlowNet, MultiscaleFuse, VBDecoder
from .ops.padding import Padding, padding_for
from .weights.layout import detect

SIZE_MULTIPLE = 8  # three 2x levels in the generator (and the pyramid's 1/4 level)
DECODERS = {"flow": "condFLownet", "vb": "generator"}  # decoder kind -> official key prefix


#: Residual bases (``PerVFI(base=...)``): keyword arguments of the training-free engine the decoder
#: corrects. "training-free" is the engine as pervfi-own was trained on it, before motion trust;
#: "training-free-trust" is today's engine (motion trust on, the default engine's frames).
BASES = {"training-free": dict(trust_gain=0.0), "training-free-trust": {}}


@dataclass
class Blend:
    """Output of an engine's ``blend``, input of its ``decode`` (reusable for many τ / seeds).

    For :class:`PerVFI` the conditions of the generator; for the training-free engine
    (:mod:`pervfi_core.training_free`) ``conds`` = [the blended image (B, 3, H, W) in [0, 1]] and
    ``masks`` = [its fill mask], with no padding.

    conds: the fused conditions c, finest first, on the padded grid of size (Hp, Wp):
        [(B, 35, Hp/2, Wp/2), (B, 64, Hp/4, Wp/4), (B, 96, Hp/8, Wp/8)] for the official models.
    masks: ADM's quasi-binary masks M̃ in [0, 1) (1 = take frame 1), finest first, on the padded grid:
        [(B, 1, Hp, Wp), (B, 1, Hp/2, Wp/2), (B, 1, Hp/4, Wp/4)].
    size: (H, W) of the input frames; padding: what was added at the right and bottom (Hp, Wp).
    base: for models built with ``base="training-free"``, the training-free frame (B, 3, Hp, Wp) in
        [-1, 1] that the decoder's output is added to; None otherwise.
    """

    conds: list[torch.Tensor]
    masks: list[torch.Tensor]
    size: tuple[int, int]
    padding: Padding
    base: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.conds[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.conds[0].device

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.size[0] + self.padding.top + self.padding.bottom, self.size[1] + self.padding.left + self.padding.right

    def mask(self) -> torch.Tensor:
        """The finest mask cropped to the input size, (B, 1, H, W) in [0, 1)."""
        return self.padding.crop(self.masks[0])

    def to(self, device=None, dtype=None) -> "Blend":
        """A copy with every tensor on ``device`` / in ``dtype`` (e.g. to park blends on the CPU)."""
        move = lambda x: x.to(device=device, dtype=dtype)  # noqa: E731
        return replace(self, conds=[move(c) for c in self.conds], masks=[move(m) for m in self.masks],
                       base=None if self.base is None else move(self.base))

    def select(self, start: int, stop: int) -> "Blend":
        """The blends of samples ``start:stop`` of the batch (views, no copy)."""
        cut = lambda x: x[start:stop]  # noqa: E731
        return replace(self, conds=[cut(c) for c in self.conds], masks=[cut(m) for m in self.masks],
                       base=None if self.base is None else cut(self.base))

    def nbytes(self) -> int:
        extra = () if self.base is None else (self.base,)
        return sum(x.numel() * x.element_size() for x in (*self.conds, *self.masks, *extra))


class PerVFI(nn.Module):
    """PerVFI network. Hyperparameters (keyword-only) default to the official models.

    Args:
        decoder: ``"flow"`` (conditional normalizing flow, official v00) or ``"vb"`` (deterministic).
        encoder_channels: widths of the pyramid stages (the levels have 3 + c0, c1, c2 channels).
        metric_rows: widths of the Softmetric rows, full to 1/8 resolution (the first > 12: 12 image
            channels plus the error channels).
        dcn_groups: deformable offset groups per level l0, l1, l2 (each divides its level's channels).
        n_flows: flow steps K per block of the normalizing flow; flow_hidden: its coupling width.
        fuse_width: stem and bottleneck width of the fusion; fuse_branches: its HRNet branch widths.
        base: ``None`` (official) or a name of :data:`BASES`: a project extension for small models trained
            on little compute. The decoder then models the residual to the training-free engine's
            frame (:mod:`pervfi_core.training_free`, no parameters) computed from the same frames and
            flows: I_t = B + G⁻¹(z; c) (v00) or B + generator(c) (vb). For the flow this is a
            translation of x, so its log-det and the NLL (Eq. 11-12) are unchanged. The vb tail starts
            at zero, so an untrained model returns exactly the training-free frame.
    """

    def __init__(self, *, decoder: str = "flow", encoder_channels: Sequence[int] = (32, 64, 96),
                 metric_rows: Sequence[int] = (16, 32, 64, 96), dcn_groups: Sequence[int] = (7, 8, 8),
                 n_flows: int = 16, flow_hidden: int = 64, fuse_width: int = 64,
                 fuse_branches: Sequence[int] = (32, 64, 96), base: str | None = None):
        super().__init__()
        if decoder not in DECODERS:
            raise InputError(f"decoder: expected one of {tuple(DECODERS)}, got {decoder!r}")
        if base is not None and base not in BASES:
            raise InputError(f"base: expected None or one of {tuple(BASES)}, got {base!r}")
        self.decoder = decoder
        self.config = dict(decoder=decoder, encoder_channels=tuple(encoder_channels), metric_rows=tuple(metric_rows),
                           dcn_groups=tuple(dcn_groups), n_flows=n_flows, flow_hidden=flow_hidden,
                           fuse_width=fuse_width, fuse_branches=tuple(fuse_branches))
        if base is not None:  # only then: official configs keep exactly the official config keys
            self.config["base"] = base
        self.base = base
        self.info = EngineInfo(id=self.arch, architecture=self.arch, config=dict(self.config))  # loaders refine it
        self.featurePyramid = FeaturePyramid(channels=tuple(encoder_channels), metric_rows=tuple(metric_rows))
        levels = self.featurePyramid.level_channels
        self.deformableAlign = DeformableAlign(channels=levels, groups=tuple(dcn_groups))
        self.attentionMerge = AttentionMerge(channels=levels)
        self.multiscaleFuse = MultiscaleFuse(in_channels=levels, stem_channels=fuse_width,
                                             bottleneck_width=fuse_width, branch_channels=tuple(fuse_branches))
        if decoder == "flow":
            self.condFLownet = CondFlowNet(cond_channels=levels, n_blocks=len(levels), n_flows=n_flows,
                                           hidden=flow_hidden)
        else:
            self.generator = VBDecoder(cond_channels=levels)
            if base is not None:
                nn.init.zeros_(self.generator.tail.weight)
                nn.init.zeros_(self.generator.tail.bias)

    @property
    def arch(self) -> str:
        """Architecture id: ``"pervfi-v00"`` (normalizing flow) or ``"pervfi-vb"`` (fast decoder)."""
        return "pervfi-v00" if self.decoder == "flow" else "pervfi-vb"

    @property
    def stochastic(self) -> bool:
        """True when τ and the seed change the output (the normalizing-flow decoder)."""
        return self.decoder == "flow"

    @property
    def name(self) -> str:
        """What reports call this engine: the manifest id or file it was loaded from, else its architecture."""
        return self.info.id

    @property
    def size_multiple(self) -> int:
        return SIZE_MULTIPLE

    @property
    def device(self) -> torch.device:
        """Where blend() computes (the decoder may differ only in dtype)."""
        return self._param().device

    @property
    def dtype(self) -> torch.dtype:
        """The float type blend() computes in (:meth:`set_blend_dtype`)."""
        return self._param().dtype

    # Pixels (batch x H x W) per blend+decode call that the pipeline tiles larger frames down to: the
    # official v00 peaks at about 4.6 GB for 1280x720 in float32 on a CPU (bench/bench_core.py), mostly
    # the fusion's 256-channel full-resolution blocks, so 1024x576 tiles plus motion context keep a
    # 3840x2160 frame well under 8 GB.
    max_pixels = 1024 * 576

    @property
    def memory_per_pixel(self) -> int:
        """Working bytes per pixel of one blend + decode call (measured; :data:`pervfi_core.engines.MEMORY_PER_PIXEL`)."""
        from .engines import memory_per_pixel

        return memory_per_pixel(self.arch, self.config)

    def _param(self) -> torch.Tensor:
        """A parameter of the blending stage: its device and dtype are where blend() computes."""
        return next(self.featurePyramid.parameters())

    def _decoder_param(self) -> torch.Tensor:
        """A parameter of the decoder: its device and dtype are where decode()/encode() compute."""
        return next((self.condFLownet if self.decoder == "flow" else self.generator).parameters())

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
        base = None
        if self.base is not None:
            from .training_free import TrainingFreeVFI

            with torch.no_grad():  # parameter-free: nothing to learn through it; on the unpadded frames
                engine = TrainingFreeVFI(**BASES[self.base]).to(img0.device)
                base = engine(*(x.float() for x in (*images, *flows)), t)
                base = base.to(img0.dtype) * 2 - 1
            base = padding.apply(base, fill="replicate")
        return Blend(conds=self.multiscaleFuse(blended), masks=masks, size=size, padding=padding, base=base)

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
        self._require_flow("z_shapes")
        return self.condFLownet.z_shapes(blend.batch, *blend.padded_size)

    def sample_z(self, blend: Blend, tau: float = 0.3, seed: int = 0) -> list[torch.Tensor]:
        """z ~ N(0, τ²) from a private generator seeded with ``seed`` on the blend's device (the global
        RNG is untouched). On CPU, seed S gives the official latents drawn after torch.manual_seed(S):
        randn of the three shapes in order, each times τ."""
        generator = torch.Generator(device=blend.device).manual_seed(int(seed))
        return [torch.randn(shape, generator=generator, device=blend.device, dtype=torch.float32) * tau
                for shape in self.z_shapes(blend)]

    def decode(self, blend: Blend, tau: float = 0.3, seed: int = 0, z: Sequence[torch.Tensor] | None = None
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
        if blend.base is not None:
            y = y + blend.base
        return blend.padding.crop(((y + 1) / 2).clamp(0, 1))

    def encode(self, blend: Blend, gt: torch.Tensor, *, standardize: bool = True):
        """Negative log-likelihood of the ground truth frame (B, 3, H, W) in [0, 1] and its latents (v00).

        Returns (nll (B,) in bits per pixel = -(log p + log det)/(ln 2·Hp·Wp), zs finest first). With
        ``standardize=True`` (default) zs are the latents :meth:`decode` takes, so
        ``decode(blend, z=zs)`` gives ``gt`` back; ``standardize=False`` returns the official raw
        flow outputs instead."""
        self._require_flow("encode")
        check_image("gt", gt)
        if tuple(gt.shape[-2:]) != blend.size or gt.shape[0] != blend.batch:
            raise InputError(f"gt: expected shape ({blend.batch}, 3, {blend.size[0]}, {blend.size[1]}) like the "
                             f"blended frames, got {tuple(gt.shape)}")
        ref = self._decoder_param()
        blend = blend.to(device=ref.device, dtype=ref.dtype)
        x = blend.padding.apply(gt.to(blend.conds[0]), fill="replicate") * 2 - 1
        if blend.base is not None:
            x = x - blend.base  # a translation: no log-det term
        log_p, logdet, zs = self.condFLownet.encode(x, blend.conds, standardize=standardize)
        height, width = blend.padded_size
        return -(log_p + logdet) / (math.log(2) * height * width), zs

    def _require_flow(self, what: str) -> None:
        if self.decoder != "flow":
            raise InputError(f"{what} needs the normalizing-flow model (v00); this model is {self.arch}")

    def forward(self, img0, img1, fflow, bflow, t=0.5, *, tau: float = 0.3, seed: int = 0) -> torch.Tensor:
        """blend then decode: frames (B, 3, H, W) in [0, 1] at time t."""
        return self.decode(self.blend(img0, img1, fflow, bflow, t), tau=tau, seed=seed)

    # -- weights -------------------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Official key names (no ``module.`` prefix). A checkpoint of the other decoder, or of another
        network, raises :class:`ArchitectureMismatchError` naming both architectures."""
        try:
            found = detect(state_dict)[0]
        except WeightsError as exc:
            found = f"not a PerVFI checkpoint ({exc})"
        if found != self.arch:
            raise ArchitectureMismatchError(
                f"checkpoint is {found}, but this model is {self.arch}; build the model that matches the "
                f"checkpoint (build_model({'vb' if found == 'pervfi-vb' else 'v00'!r})) or pick the other file"
            )
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as exc:
            raise ArchitectureMismatchError(
                f"checkpoint is a {found} with a different configuration than this model "
                f"({self.config}): {exc}"
            ) from None
