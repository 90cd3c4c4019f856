"""The motion trunk of pervfi-rife: RIFE 4.25/4.26's IFNet run at the target time t, frozen.

PerVFI (paper §3.1) starts from flows of a pretrained estimator. Here the estimator is RIFE's IFNet
(:mod:`pervfi_core.flow.rife`, the project's own code for the published 4.25/4.26 layout), run at t
itself: it gives the intermediate flows F_t->0, F_t->1 directly (no splatting needed), its own blend
mask and the last block's features. Backward-warping both frames along them gives the two frames at
time t that the asymmetric blend (:mod:`.blend`) combines; RIFE's own frame is
``w0·m + w1·(1 − m)`` (:func:`rife_frame`), the full synthesis of RIFE 4.25 (the benchmarks' anchor).

Frames are padded (replicated borders) to a multiple of 64 px (the coarsest block works at 1/64) and
every output is cropped back.

Refined blocks: the two finest IFNet blocks (scales 2 and 1: the last flow correction and RIFE's mask) have
copies fine-tuned for perception (:mod:`pervfi_core.train.trunk_refine`), shipped in pervfi-rife's head file
under ``trunk.``. :class:`RefinedIFNet` uses them for a frame pair whose coarse motion is global (a median of
at least ``GLOBAL_MOTION_PX`` between the frames: the camera moves), RIFE's own blocks otherwise: on
../shared/validation the refined blocks were better on camera motion and worse on near-static and local-motion
pairs (weights/PERVFI_RIFE.md). They were trained on one trunk (``rife-pypi``): :func:`with_refined_blocks`
applies them only to a trunk whose other weights are that trunk's (a digest in the file's metadata), never to
another release's coarse motion.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..flow.rife import SCALES, IFNet
from ..ops.warp import backward_warp

MULTIPLE = 64
#: Key prefix of refined IFNet blocks in pervfi-rife's head file; metadata key of the digest of the trunk they fit.
REFINED_PREFIX = "trunk."
META_TRUNK_DIGEST = "pervfi_rife_trunk_digest"
#: Median motion between the frames (px, |F_t->0| + |F_t->1| after the coarse blocks) from which a pair counts as
#: global motion and takes the refined blocks: the validation set's own line between camera and local motion.
GLOBAL_MOTION_PX = 4.0
SAMPLES = 4096


@dataclass
class TrunkOutput:
    """What the trunk gives for one batch, all on the input grid (B, ·, H, W).

    warped0/warped1: frames 0 and 1 backward-warped to time t, (B, 3, H, W) in [0, 1];
    flow_t0/flow_t1: F_t->0, F_t->1 in px (channel 0 = x); mask: RIFE's weight of warped0, (B, 1, H, W)
    in (0, 1); features: the last IFNet block's 8 feature channels (B, 8, H, W), unbounded.
    """

    warped0: torch.Tensor
    warped1: torch.Tensor
    flow_t0: torch.Tensor
    flow_t1: torch.Tensor
    mask: torch.Tensor
    features: torch.Tensor

    def map(self, fn) -> "TrunkOutput":
        """A copy with ``fn`` applied to every tensor (move, cast, crop, select)."""
        return TrunkOutput(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})


def rife_frame(out: TrunkOutput) -> torch.Tensor:
    """RIFE 4.25/4.26's own interpolated frame (B, 3, H, W): its mask blends both warped frames."""
    return out.warped0 * out.mask + out.warped1 * (1 - out.mask)


class RIFETrunk(nn.Module):
    """Frozen IFNet at time t. ``forward(img0, img1, t)``: frames (B, 3, H, W) in [0, 1], t a float or
    (B,) -> :class:`TrunkOutput` on the input grid. Always in eval mode, no gradients to its weights."""

    def __init__(self, network: IFNet):
        super().__init__()
        self.network = network.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float | torch.Tensor = 0.5) -> TrunkOutput:
        h, w = img0.shape[-2:]
        pad = (0, -w % MULTIPLE, 0, -h % MULTIPLE)
        x0, x1 = (F.pad(x, pad, mode="replicate") for x in (img0, img1))
        return trunk_output(self.network, x0, x1, t).map(lambda x: x[..., :h, :w])


def trunk_output(network: nn.Module, x0: torch.Tensor, x1: torch.Tensor, t: float | torch.Tensor = 0.5
                 ) -> TrunkOutput:
    """An IFNet at t on frames whose sides are multiples of 64, both frames backward-warped along its flows; what
    :class:`RIFETrunk` gives (without its padding) and what the trunk's fine-tune trains through."""
    flows, mask, feat = network(x0, x1, t, features=True)
    flow_t0, flow_t1 = flows[:, :2], flows[:, 2:4]
    return TrunkOutput(warped0=backward_warp(x0, flow_t0, padding="border"),
                       warped1=backward_warp(x1, flow_t1, padding="border"),
                       flow_t0=flow_t0, flow_t1=flow_t1, mask=mask, features=feat)


def _block_of(key: str) -> str:
    return key.split(".", 1)[0]


def trunk_digest(network: IFNet, refined_blocks) -> str:
    """sha256 of the IFNet's weights outside ``refined_blocks`` (float32 bytes, keys sorted): which trunk a set of
    refined blocks was trained on."""
    h = hashlib.sha256()
    for key, value in sorted(network.state_dict().items()):
        if _block_of(key) not in refined_blocks:
            h.update(key.encode())
            h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class RefinedIFNet(nn.Module):
    """An IFNet whose finest blocks are replaced by ``refined`` (``{"block3": module, ...}``) for the pairs of a
    batch with global motion (median coarse motion >= ``gate_px``); the others, and every coarser block, run the
    shared ``network`` itself. Same call and outputs as :class:`~pervfi_core.flow.rife.IFNet`."""

    def __init__(self, network: IFNet, refined: dict[str, nn.Module], *, gate_px: float = GLOBAL_MOTION_PX):
        super().__init__()
        self.network, self.refined, self.gate_px = network, nn.ModuleDict(refined), gate_px
        self.first = min(int(name[len("block"):]) for name in refined)

    def moving(self, flow: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the pairs whose median motion |F_t->0| + |F_t->1| reaches ``gate_px``, read on a grid of
        about 4096 points (the coarse flow is smooth; a median over every pixel costs half the trunk's time)."""
        h, w = flow.shape[-2:]
        step = max(1, int((h * w / SAMPLES) ** 0.5))
        sub = flow[..., step // 2::step, step // 2::step]
        magnitude = sub[:, :2].norm(dim=1) + sub[:, 2:4].norm(dim=1)
        return magnitude.flatten(1).median(dim=1).values >= self.gate_px

    def forward(self, img0, img1, t: float | torch.Tensor = 0.5, *, features: bool = False):
        net = self.network
        inputs, state = net.inputs(img0, img1, t), None
        for i in range(self.first):
            state = net.step(getattr(net, f"block{i}"), i, inputs, state)

        def finest(refined: bool):
            s = state
            for i in range(self.first, len(SCALES)):
                name = f"block{i}"
                s = net.step(self.refined[name] if refined and name in self.refined else getattr(net, name), i,
                             inputs, s)
            return s

        moving = self.moving(state[0])
        if bool(moving.all()) or not bool(moving.any()):
            return net.finish(finest(bool(moving.all())), features)
        pick = moving.view(-1, 1, 1, 1)  # a batch of both kinds: both, then each pair its own
        both = zip(finest(True), finest(False))
        return net.finish(tuple(torch.where(pick, a, b) for a, b in both), features)


def with_refined_blocks(network: IFNet, refined: dict[str, torch.Tensor], digest: str | None, *,
                        gate_px: float = GLOBAL_MOTION_PX) -> RefinedIFNet | None:
    """``network`` with the ``refined`` block weights (IFNet keys, e.g. ``block4.conv0.0.0.weight``; every key of
    each block they touch) as a :class:`RefinedIFNet`; None when ``digest`` says they were trained on another
    trunk. ``network`` itself is shared, not changed (the estimator may be used elsewhere)."""
    blocks = sorted({_block_of(k) for k in refined})
    if digest is not None and trunk_digest(network, set(blocks)) != digest:
        return None
    modules = {name: copy.deepcopy(getattr(network, name)) for name in blocks}
    for name, module in modules.items():
        state = module.state_dict()
        given = {k[len(name) + 1:]: v for k, v in refined.items() if _block_of(k) == name}
        if set(given) != set(state):
            raise KeyError(f"refined IFNet {name}: keys missing {sorted(set(state) - set(given))[:3]}, "
                           f"unexpected {sorted(set(given) - set(state))[:3]}")
        module.load_state_dict({k: v.to(state[k]) for k, v in given.items()})
    return RefinedIFNet(network, modules, gate_px=gate_px)
