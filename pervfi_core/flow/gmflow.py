"""GMFlow optical flow (Xu et al., "GMFlow: Learning Optical Flow via Global Matching", CVPR 2022).

One of PerVFI's motion estimators. Per scale (coarse to fine):

1. CNN features of both images at 1/8 (and 1/4 for the refinement scale) (:mod:`.gmflow_backbone`);
2. position encoding + Transformer with self/cross attention in split windows
   (:mod:`.gmflow_transformer`);
3. flow as the soft-argmax of the feature correlation (softmax matching), global or local
   (:mod:`.gmflow_matching`); at the refinement scale the frame-1 features are first warped by the
   upsampled coarse flow and the matched flow is a residual;
4. flow propagation by self-attention on frame-0 features;
5. learned convex upsampling to full resolution (the RAFT upsampler, factor ``upsample_factor``).

Two configurations (:data:`CONFIGS`): ``"gmflow"``, the official single-scale model PerVFI uses
(global matching at 1/8, ``attn_splits=(2,)``, images padded to multiples of 16), and
``"gmflow-refine"``, the two-scale model (1/8 global, then 1/4 local with radius 4, window
propagation radius 1, ``attn_splits=(2, 8)``, multiples of 32). Parameter names follow the
official checkpoints (``{"model": state_dict}`` containers, unwrapped).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..specs import Architecture, shape_of
from .gmflow_backbone import CNNEncoder
from ..ops.warp import backward_warp
from .gmflow_matching import FeatureFlowAttention, global_matching_flow, local_matching_flow
from .gmflow_transformer import FeatureTransformer, add_position
from .raft import convex_upsample

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Constructor arguments of the two supported configurations.
CONFIGS = {
    "gmflow": dict(num_scales=1, upsample_factor=8, attn_splits=(2,), corr_radius=(-1,), prop_radius=(-1,)),
    "gmflow-refine": dict(num_scales=2, upsample_factor=4, attn_splits=(2, 8), corr_radius=(-1, 4),
                          prop_radius=(-1, 1)),
}


class GMFlow(nn.Module):
    """GMFlow network. ``forward(image0, image1)`` with images (B, 3, H, W) in 0..255, H and W
    multiples of :attr:`size_multiple` -> flow 0->1 (B, 2, H, W) in pixels, channel 0 = x.

    ``attn_splits``, ``corr_radius`` and ``prop_radius`` (one entry per scale, coarse first; radius
    -1 = global) are the defaults of the per-call options of the same names.
    """

    def __init__(
        self,
        *,
        feature_channels: int = 128,
        num_scales: int = 1,
        upsample_factor: int = 8,
        num_transformer_layers: int = 6,
        ffn_dim_expansion: int = 4,
        attn_splits: tuple[int, ...] = (2,),
        corr_radius: tuple[int, ...] = (-1,),
        prop_radius: tuple[int, ...] = (-1,),
    ):
        super().__init__()
        self.num_scales = num_scales
        self.upsample_factor = upsample_factor
        self.defaults = dict(attn_splits=tuple(attn_splits), corr_radius=tuple(corr_radius),
                             prop_radius=tuple(prop_radius))
        self.backbone = CNNEncoder(output_dim=feature_channels, num_scales=num_scales)
        self.transformer = FeatureTransformer(
            num_layers=num_transformer_layers, d_model=feature_channels, ffn_dim_expansion=ffn_dim_expansion
        )
        self.feature_flow_attn = FeatureFlowAttention(in_channels=feature_channels)
        self.upsampler = nn.Sequential(
            nn.Conv2d(2 + feature_channels, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 9 * upsample_factor**2, 1),
        )

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (feature stride × window splits, for every scale)."""
        return self.size_multiple_for(self.defaults["attn_splits"])

    def size_multiple_for(self, attn_splits) -> int:
        """The size multiple needed with per-scale window splits ``attn_splits`` (coarse first)."""
        strides = [self.upsample_factor * 2 ** (self.num_scales - 1 - i) for i in range(self.num_scales)]
        return math.lcm(*(s * n for s, n in zip(strides, attn_splits)))

    def forward(self, image0: torch.Tensor, image1: torch.Tensor, *, bidirectional: bool = False,
                **options) -> torch.Tensor:
        """Flow image0 -> image1, (B, 2, H, W) px. ``bidirectional=True`` returns (2B, 2, H, W):
        the flows 0->1 then 1->0, sharing the CNN and (at the first scale) the Transformer work."""
        return self._run(image0, image1, bidirectional=bidirectional, record=None, **options)

    def trace(self, image0: torch.Tensor, image1: torch.Tensor, **options) -> dict[str, torch.Tensor]:
        """Like :meth:`forward`, returning intermediates: ``backbone.out``, ``transformer.feature0/1``,
        ``flow_lowres_matching``, ``flow_lowres_propagated`` (of the last scale) and ``flow``."""
        record: dict[str, torch.Tensor] = {}
        record["flow"] = self._run(image0, image1, bidirectional=False, record=record, **options)
        return record

    def _run(self, image0, image1, *, bidirectional, record, attn_splits=None, corr_radius=None, prop_radius=None):
        splits = tuple(attn_splits or self.defaults["attn_splits"])
        corr = tuple(corr_radius or self.defaults["corr_radius"])
        prop = tuple(prop_radius or self.defaults["prop_radius"])
        if not len(splits) == len(corr) == len(prop) == self.num_scales:
            raise InputError(f"attn_splits/corr_radius/prop_radius need {self.num_scales} entries each, "
                             f"got {splits}, {corr}, {prop}")
        mean = image0.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = image0.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        features = self.backbone((torch.cat((image0, image1)) / 255 - mean) / std)[::-1]  # coarse first
        if record is not None:
            record["backbone.out"] = features[-1]
        flow = None
        for scale, feature in enumerate(features):
            f0, f1 = feature.chunk(2)
            if bidirectional and scale > 0:
                f0, f1 = torch.cat((f0, f1)), torch.cat((f1, f0))
            if flow is not None:  # refinement: match against frame-1 features warped by the coarse flow
                flow = 2 * F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True)
                f1 = backward_warp(f1, flow)
            f0, f1 = self.transformer(*add_position(f0, f1, splits[scale]), splits=splits[scale])
            if bidirectional and scale == 0:
                f0, f1 = torch.cat((f0, f1)), torch.cat((f1, f0))
            if corr[scale] < 0:  # softmax matching
                match = global_matching_flow(f0, f1)
            else:
                match = local_matching_flow(f0, f1, corr[scale])
            flow = match if flow is None else flow + match
            if record is not None:
                record.update({"transformer.feature0": f0, "transformer.feature1": f1, "flow_lowres_matching": flow})
            flow = self.feature_flow_attn(f0, flow, radius=prop[scale])  # flow propagation
            if record is not None:
                record["flow_lowres_propagated"] = flow
        mask = self.upsampler(torch.cat((flow, f0), dim=1))
        return convex_upsample(flow, mask, factor=self.upsample_factor)


def build_gmflow(config: str = "gmflow") -> GMFlow:
    """``GMFlow(**CONFIGS[config])``; ``config`` is ``"gmflow"`` or ``"gmflow-refine"``."""
    if config not in CONFIGS:
        raise InputError(f"unknown GMFlow config {config!r}; expected one of {sorted(CONFIGS)}")
    return GMFlow(**CONFIGS[config])


# ------------------------------------------------------------------------------ checkpoints
def _count(keys, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := rx.match(k))})


def _is_gmflow(sd) -> bool:
    return "backbone.conv1.weight" in sd and "transformer.layers.0.self_attn.q_proj.weight" in sd


def config_from_shapes(sd) -> dict:
    """:class:`GMFlow`'s keyword arguments: widths and depths from the shapes, the per-call defaults of the
    configuration with that many scales (:data:`CONFIGS`)."""
    scales = 2 if "backbone.trident_conv.weight" in sd else 1
    c = shape_of(sd["backbone.conv2.weight"])[0]
    return {**CONFIGS["gmflow-refine" if scales == 2 else "gmflow"], "feature_channels": c,
            "upsample_factor": math.isqrt(shape_of(sd["upsampler.2.weight"])[0] // 9),  # 9·factor² convex weights
            "num_transformer_layers": _count(sd, r"transformer\.layers\.(\d+)\."),
            "ffn_dim_expansion": shape_of(sd["transformer.layers.0.cross_attn_ffn.mlp.0.weight"])[0] // (2 * c)}


ARCHITECTURE = Architecture("gmflow", lambda sd: _is_gmflow(sd) and "backbone.trident_conv.weight" not in sd,
                            config_from_shapes)
ARCHITECTURE_REFINE = Architecture("gmflow-refine", lambda sd: _is_gmflow(sd) and "backbone.trident_conv.weight" in sd,
                                   config_from_shapes)
