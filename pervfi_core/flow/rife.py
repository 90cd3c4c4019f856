"""RIFE 4.25/4.26's IFNet as a motion estimator for PerVFI's asymmetric blending.

RIFE (Huang et al., ECCV 2022; the Practical-RIFE 4.25/4.26 releases that ComfyUI users keep in
``models/frame_interpolation``) predicts, for one time t, the *intermediate* flows F_t->0 and
F_t->1, coarse to fine over five blocks (scales 16, 8, 4, 2, 1), from both frames and a small
learned feature head. PerVFI's ASB needs bidirectional flows F0->1 and F1->0 instead. Run once at
t = 0.5, linear motion through t gives, for the pixel y of the middle frame, the motion
F_t->1(y) − F_t->0(y) of the frame-0 point y + F_t->0(y). Forward-splatting that vector to where it
belongs (softmax splatting's "avg", holes filled from their neighbours) puts F0->1 on frame 0's
grid, and F1->0 likewise on frame 1's:

    F0->1 = splat_avg(F_t->1 − F_t->0, by F_t->0),      F1->0 = splat_avg(F_t->0 − F_t->1, by F_t->1).

Splatting measured better for the training-free engine than reading F0->1 ≈ F_t->1 − F_t->0 on the
middle frame's grid, and better than DIS (bench/bench_motion.py; BENCHMARKS.md, "What the figures
decide"). At t = 0 or 1 the network's mask ignores the other frame and its flows carry no motion, so
only t = 0.5 is used.

The network code is the project's own, written to the published checkpoint layout (key names and
shapes, ``weights_manifest.json`` id ``rife-pypi``); training-only tensors of that file (the
distillation ``teacher`` block and the ``caltime`` head) are not used at inference and are dropped.
Frames are padded (replicated borders) to a multiple of 64 px: the coarsest block works at 1/64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.holes import fill_holes
from ..ops.softsplat import EPSILON, softsplat
from ..ops.warp import backward_warp
from ..specs import Architecture, EstimatorSpec
from .base import FlowEstimator

#: Block widths of the 4.25/4.26 release; block i works at 1/SCALES[i] of the frame, then /4 inside.
WIDTHS = (192, 128, 96, 64, 32)
SCALES = (16, 8, 4, 2, 1)
HEAD_CHANNELS = 4
#: Output channels of a block: 4 flow (t->0, t->1), 1 mask logit, 8 features for the next block.
_BLOCK_OUT = 13
#: Checkpoint prefixes used only while training RIFE.
TRAINING_ONLY = ("teacher.", "caltime.")


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2))


class _ResConv(nn.Module):
    """x + beta·conv(x), then LeakyReLU: a residual 3x3 convolution with a learned per-channel gain."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x):
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class _Head(nn.Module):
    """Per-frame features (4 channels, full resolution) that the blocks compare after warping."""

    def __init__(self):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, HEAD_CHANNELS, 4, 2, 1)

    def forward(self, x):
        for conv in (self.cnn0, self.cnn1, self.cnn2):
            x = F.leaky_relu(conv(x), 0.2)
        return self.cnn3(x)


class _Block(nn.Module):
    """One coarse-to-fine step: at 1/scale, predict (a correction of) the flows, the mask and features."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2), _conv(c // 2, c))  # down 4x
        self.convblock = nn.Sequential(*(_ResConv(c) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * _BLOCK_OUT, 4, 2, 1), nn.PixelShuffle(2))  # up 4x

    def forward(self, x, flow, scale: int):
        def resize(y, factor):
            return F.interpolate(y, scale_factor=factor, mode="bilinear", align_corners=False)

        x = resize(x, 1 / scale)
        if flow is not None:
            x = torch.cat([x, resize(flow, 1 / scale) / scale], 1)
        out = resize(self.lastconv(self.convblock(self.conv0(x))), scale)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class IFNet(nn.Module):
    """RIFE 4.25/4.26's IFNet (inference part). ``forward(img0, img1, t)`` on frames in [0, 1] whose
    sides are multiples of 64, ``t`` a float or (B,) -> (flows (B, 4, H, W): F_t->0 then F_t->1 in px,
    mask (B, 1, H, W): RIFE's weight of warped frame 0); ``features=True`` appends the last block's
    8 feature channels (B, 8, H, W) (what :mod:`pervfi_core.pervfi_rife.trunk` conditions on)."""

    def __init__(self):
        super().__init__()
        first = 2 * 3 + 2 * HEAD_CHANNELS + 1  # both frames, both features, t
        later = 2 * 3 + 2 * HEAD_CHANNELS + 1 + 1 + (_BLOCK_OUT - 5) + 4  # + mask, features, flows
        for i, c in enumerate(WIDTHS):
            self.add_module(f"block{i}", _Block(first if i == 0 else later, c))
        self.encode = _Head()

    def inputs(self, img0, img1, t: float | torch.Tensor = 0.5) -> tuple[torch.Tensor, ...]:
        """What every block sees besides the running estimate: both frames, their features, the time map."""
        b, _, h, w = img0.shape
        tmap = (t.to(img0).view(-1, 1, 1, 1) if torch.is_tensor(t) else img0.new_tensor(float(t))).expand(b, 1, h, w)
        return img0, img1, self.encode(img0), self.encode(img1), tmap

    @staticmethod
    def step(block: nn.Module, i: int, inputs, state):
        """Block ``i`` (at 1/SCALES[i]) on the inputs and the running (flow, mask logit, features), None before
        the first block: the next running estimate."""
        img0, img1, f0, f1, tmap = inputs
        if state is None:
            return block(torch.cat([img0, img1, f0, f1, tmap], 1), None, SCALES[i])
        flow, mask, feat = state
        w0, w1 = (backward_warp(x, flow[:, k:k + 2], padding="border")
                  for x, k in ((torch.cat([img0, f0], 1), 0), (torch.cat([img1, f1], 1), 2)))
        delta, mask, feat = block(torch.cat([w0[:, :3], w1[:, :3], w0[:, 3:], w1[:, 3:], tmap, mask, feat], 1),
                                  flow, SCALES[i])
        return flow + delta, mask, feat

    @staticmethod
    def finish(state, features: bool):
        flow, mask, feat = state
        return (flow, torch.sigmoid(mask), feat) if features else (flow, torch.sigmoid(mask))

    def forward(self, img0, img1, t: float | torch.Tensor = 0.5, *, features: bool = False):
        inputs, state = self.inputs(img0, img1, t), None
        for i in range(len(SCALES)):
            state = self.step(getattr(self, f"block{i}"), i, inputs, state)
        return self.finish(state, features)


class RIFEEstimator(FlowEstimator):
    """IFNet behind the estimator contract: bidirectional flows from one pass at t = 0.5 (module doc)."""

    multiple = 64

    def __init__(self, network: IFNet, *, name: str = "rife", max_side: int | None = None):
        super().__init__(name=name, max_side=max_side)
        self.network = network.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.network.eval()
        return self

    def estimate(self, img0, img1):
        h, w = img0.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        x0, x1 = (F.pad(x, (0, pw, 0, ph), mode="replicate") for x in (img0, img1))
        flows, _ = self.network(x0, x1, 0.5)
        flow_t0, flow_t1 = flows[:, :2, :h, :w].float(), flows[:, 2:4, :h, :w].float()
        return _splat_to_source(flow_t1 - flow_t0, flow_t0), _splat_to_source(flow_t0 - flow_t1, flow_t1)


def _splat_to_source(motion, flow_ts):
    """``motion`` (B, 2, H, W) given on the middle frame's grid, moved onto the source frame's grid
    along ``flow_ts`` (middle -> source), averaged where several land; holes filled from neighbours."""
    # one splat of (motion, 1): its last channel is the density that both averages and finds the holes
    summed = softsplat(torch.cat([motion, torch.ones_like(motion[:, :1])], 1), flow_ts, None, "sum")
    density = summed[:, 2:]
    return fill_holes(summed[:, :2] / (density + EPSILON), (density > 0.5).to(motion.dtype))  # = "avg" mode


# ------------------------------------------------------------------------------ registry entry
def _build(state_dict=None) -> RIFEEstimator:
    net = IFNet()
    net.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(TRAINING_ONLY)}, strict=True)
    return RIFEEstimator(net)


ARCHITECTURE = Architecture("rife", lambda sd: "encode.cnn0.weight" in sd and "block0.convblock.0.beta" in sd,
                            lambda sd: {})  # IFNet has one layout (the training-only tensors are dropped)
# Not measured yet: charged like GMFlow (the safe side).
SPEC = EstimatorSpec("rife", "RIFE 4.25/4.26 IFNet at t = 0.5 (pretrained weights from PyPI, or ComfyUI's rife4xx.pth)",
                     _build, memory=(5672, 0.0), architecture=ARCHITECTURE, default_weights="rife-pypi")
