"""RAFT optical flow (Teed & Deng, "RAFT: Recurrent All-Pairs Field Transforms for Optical Flow", ECCV 2020).

One of PerVFI's motion estimators (the paper's default pairing is RAFT + PerVFI). The network, §3:

1. feature encoder ``fnet`` on both images (one batch; instance norm, so per sample) and context
   encoder ``cnet`` on image 1 -> 1/8-resolution features (:mod:`.raft_extractor`);
2. all-pairs correlation pyramid, Eq. (1), looked up around the current estimate, Eq. (2)-(3)
   (:mod:`.raft_corr`);
3. ``iters`` recurrent updates of the 1/8-resolution flow with a convolutional GRU, Eq. (4)
   (:mod:`.raft_update`);
4. upsampling to full resolution: learned convex combination (RAFT large) or 8 × bilinear
   (RAFT-small).

Module and parameter names follow the official checkpoints (``raft-sintel.pth``, ``raft-small.pth``
once the ``module.`` prefix is stripped), so they load with ``load_state_dict(strict=True)``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..checks import check_image, check_same_shape
from ..errors import InputError
from ..specs import Architecture, EstimatorSpec
from .base import NetworkEstimator
from .raft_corr import CorrBlock
from .raft_extractor import BasicEncoder, SmallEncoder
from .raft_update import BasicUpdateBlock, SmallUpdateBlock


#: The network works at 1/8 resolution: inputs must be multiples of this.
DOWNSAMPLE = 8
#: Below 16 cells at 1/8 the coarsest correlation level (1/64) is 1 px wide and the lookup's
#: coordinate normalisation divides by zero: the official code returns NaN there.
MIN_CELLS = 16


def coords_grid(batch: int, height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates (B, 2, H, W), channel 0 = x (column), channel 1 = y (row)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys]).expand(batch, 2, height, width)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor, *, factor: int = 8) -> torch.Tensor:
    """§3.3 "Upsampling": each fine pixel is a convex combination of its 3×3 coarse neighbours.

    ``flow`` (B, 2, h, w) in coarse pixels; ``mask`` (B, 9·f², h, w) logits, channel k·f² + i·f + j
    weighting neighbour k (row-major 3×3) for fine pixel (f·y + i, f·x + j).
    Returns (B, 2, f·h, f·w) in fine pixels.
    """
    h, w = flow.shape[-2:]
    weights = rearrange(mask, "b (k i j) h w -> b 1 k i j h w", k=9, i=factor, j=factor).softmax(dim=2)
    neighbours = F.unfold(factor * flow, kernel_size=3, padding=1)  # (B, 2·9, h·w), zero outside
    neighbours = rearrange(neighbours, "b (c k) (h w) -> b c k 1 1 h w", c=2, k=9, h=h, w=w)
    fine = (weights * neighbours).sum(dim=2)  # (B, 2, f, f, h, w)
    return rearrange(fine, "b c i j h w -> b c (h i) (w j)")


def bilinear_upsample(flow: torch.Tensor, *, factor: int = 8) -> torch.Tensor:
    """(B, 2, h, w) coarse pixels -> (B, 2, f·h, f·w) fine pixels; bilinear, align_corners=True."""
    h, w = flow.shape[-2:]
    return factor * F.interpolate(flow, size=(factor * h, factor * w), mode="bilinear", align_corners=True)


class RAFT(nn.Module):
    """RAFT (``small=False``: 5.26 M parameters) or RAFT-small (``small=True``: 0.99 M).

    Call ``model(image1, image2, iters=12)`` in eval mode (the context encoder of RAFT large has
    BatchNorm and must use its running statistics):

    * ``image1``, ``image2``: (B, 3, H, W), RGB, values in 0..255 (not [0, 1]), float; H and W
      multiples of 8 and at least 128 (pad first; the caller crops the flow back).
    * returns the flow from image 1 to image 2, (B, 2, H, W) in pixels on image 1's grid (float32,
      or float64 for a float64 model; correlation and coordinates never drop below float32),
      channel 0 = x (+right), channel 1 = y (+down).

    Every operation is per sample, so both directions of a pair can run in one call:
    ``model(cat[I0, I1], cat[I1, I0])`` returns ``cat[F0->1, F1->0]``, identical to two calls.

    Memory is dominated by the all-pairs correlation volume: (H·W/64)² values per sample, about
    4/3 of that with the pyramid, float32 — 123 MB per sample at 640×480, 5.7 GB at 1920×1088
    (see :func:`correlation_bytes`).
    """

    def __init__(self, *, small: bool = False):
        super().__init__()
        self.small = small
        self.hidden_dim = 96 if small else 128
        self.context_dim = 64 if small else 128
        self.corr = CorrBlock(levels=4, radius=3 if small else 4)
        if small:
            self.fnet = SmallEncoder(out_channels=128, norm="instance")
            self.cnet = SmallEncoder(out_channels=self.hidden_dim + self.context_dim, norm="none")
            self.update_block = SmallUpdateBlock(
                corr_planes=self.corr.planes, hidden_dim=self.hidden_dim, context_dim=self.context_dim
            )
        else:
            self.fnet = BasicEncoder(out_channels=256, norm="instance")
            self.cnet = BasicEncoder(out_channels=self.hidden_dim + self.context_dim, norm="batch")
            self.update_block = BasicUpdateBlock(
                corr_planes=self.corr.planes,
                hidden_dim=self.hidden_dim,
                context_dim=self.context_dim,
                factor=DOWNSAMPLE,
            )

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, *, iters: int = 12) -> torch.Tensor:
        """Flow image1 -> image2, (B, 2, H, W) px; see the class docstring for the input contract."""
        return self._run(image1, image2, iters=iters, record=None)

    def trace(self, image1: torch.Tensor, image2: torch.Tensor, *, iters: int = 12) -> dict[str, torch.Tensor]:
        """Debugging/parity aid: the forward pass with its intermediates, named like the parity fixtures.

        Keys: ``fnet.fmap1``, ``fnet.fmap2``, ``cnet.out`` (before the hidden/context split),
        ``iter0.corr``, ``iter{k}.delta_flow``, ``flow_lowres`` (1/8 grid), ``up_mask_last``
        (RAFT large: the 0.25-scaled mask of the last iteration) and ``flow`` (= ``forward``).
        """
        record: dict[str, torch.Tensor] = {}
        record["flow"] = self._run(image1, image2, iters=iters, record=record)
        return record

    def _run(self, image1, image2, *, iters: int, record: dict | None) -> torch.Tensor:
        self._check_inputs(image1, image2, iters)
        image1 = 2 * (image1 / 255) - 1
        image2 = 2 * (image2 / 255) - 1
        fmap1, fmap2 = self.fnet(torch.cat([image1, image2])).chunk(2)  # one batch: per-sample norm
        # Correlation and coordinates stay in >= float32 when the network runs in half precision.
        exact = torch.promote_types(fmap1.dtype, torch.float32)
        pyramid = self.corr.pyramid(fmap1.to(exact), fmap2.to(exact))
        context = self.cnet(image1)
        net, inp = context.split([self.hidden_dim, self.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        b, _, h, w = fmap1.shape
        coords0 = coords_grid(b, h, w, device=fmap1.device, dtype=exact)
        coords1 = coords0.clone()
        for k in range(iters):
            coords1 = coords1.detach()  # as in training: no gradient through the lookup positions
            corr = self.corr(pyramid, coords1)
            flow = coords1 - coords0
            net, mask, delta = self.update_block(net, inp, corr.to(net.dtype), flow.to(net.dtype))
            coords1 = coords1 + delta.to(exact)
            if record is not None:
                if k == 0:
                    record["iter0.corr"] = corr
                record[f"iter{k}.delta_flow"] = delta
        flow = coords1 - coords0
        if record is not None:
            record.update({"fnet.fmap1": fmap1, "fnet.fmap2": fmap2, "cnet.out": context, "flow_lowres": flow})
            if mask is not None:
                record["up_mask_last"] = mask
        if mask is None:
            return bilinear_upsample(flow, factor=DOWNSAMPLE)
        return convex_upsample(flow, mask.to(exact), factor=DOWNSAMPLE)

    @staticmethod
    def _check_inputs(image1, image2, iters) -> None:
        check_image("image1", image1)
        check_image("image2", image2)
        check_same_shape("image1", image1, "image2", image2)
        if not isinstance(iters, int) or iters < 1:
            raise InputError(f"iters: expected a positive int (12 is the usual value), got {iters!r}")
        height, width = image1.shape[-2:]
        if height % DOWNSAMPLE or width % DOWNSAMPLE:
            raise InputError(
                f"RAFT: expected height and width divisible by {DOWNSAMPLE}, got {height}x{width}; "
                f"pad the images first (pervfi_core.ops.padding.pad_to_multiple) and crop the flow back"
            )
        min_size = DOWNSAMPLE * MIN_CELLS
        if height < min_size or width < min_size:
            raise InputError(
                f"RAFT: expected the padded input to be at least {min_size} px each way (H/8 and W/8 >= "
                f"{MIN_CELLS}; smaller inputs make the coarsest correlation level 1 px and the flow NaN), got "
                f"{height}x{width}; pad up to >= {min_size} px (pad_to_multiple(..., min_size={min_size})) "
                f"and crop the flow back"
            )


def correlation_bytes(height: int, width: int, *, batch: int = 1, levels: int = 4, bytes_per_value: int = 4) -> int:
    """Bytes of RAFT's correlation pyramid for a (padded) ``height`` × ``width`` input and ``batch`` samples."""
    cells = (height // DOWNSAMPLE) * (width // DOWNSAMPLE)
    per_level = [cells * (height // DOWNSAMPLE >> lvl) * (width // DOWNSAMPLE >> lvl) for lvl in range(levels)]
    return batch * sum(per_level) * bytes_per_value


# ------------------------------------------------------------------------------ registry entries
def _is_raft(sd) -> bool:
    return "update_block.flow_head.conv1.weight" in sd and "fnet.conv1.weight" in sd


def _is_small(sd) -> bool:
    return "update_block.gru.convz.weight" in sd  # the small update block has one GRU, the full one two


def _build(small: bool):
    def build(state_dict=None):
        net = RAFT(small=small)
        net.load_state_dict(state_dict, strict=True)
        return NetworkEstimator(net.eval(), name="raft-small" if small else "raft", size_multiple=8,
                                min_size=8 * MIN_CELLS, call_options={"iters": 12})
    return build


# Working memory a·px + b·px² (the all-pairs correlation volume is quadratic), fitted through 256x448 and
# 512x896 with random weights (bench/memory_per_pixel.py).
SPEC = EstimatorSpec("raft", "RAFT (Sintel weights)", _build(False), memory=(1259, 0.00165),
                     architecture=Architecture("raft", lambda sd: _is_raft(sd) and not _is_small(sd),
                                               lambda sd: {"small": False}),
                     default_weights="raft-sintel")
SMALL_SPEC = EstimatorSpec("raft-small", "RAFT-small", _build(True), memory=(429, 0.0033),
                           architecture=Architecture("raft-small", lambda sd: _is_raft(sd) and _is_small(sd),
                                                     lambda sd: {"small": True}),
                           default_weights="raft-small")
