"""What every motion estimator does around its network: check, scale, pad, run both directions, crop.

Contract (all estimators)::

    fflow, bflow = est(img0, img1)

``img0``, ``img1``: (B, 3, H, W) float in [0, 1], RGB. Returns F0->1 on frame 0's grid and F1->0 on
frame 1's grid, each (B, 2, H, W) float32 in pixels (channel 0 = x, +right; channel 1 = y, +down),
on the device of the inputs. The estimator runs on its own device (``est.to(device)``) and in its
own dtype (``est.to(dtype=torch.float16)``); inputs are moved there and the flows moved back.
Gradients are never recorded (``torch.no_grad``; not ``inference_mode``, so the flows can be used
in a training graph afterwards).

Inputs with 1 or 4 channels are refused with a hint rather than converted: the PerVFI generator needs
RGB frames too, so converting here alone would only move the error downstream.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import MAX_FRAME_VALUE, check_image, check_same_shape
from ..errors import InputError, PerVFIError
from ..ops.padding import pad_to_multiple


_CHANNEL_HINTS = {
    1: "grayscale input: repeat it to RGB first, e.g. x.expand(-1, 3, -1, -1)",
    4: "RGBA input: drop the alpha channel first, e.g. x[:, :3]",
}


def check_frames(img0, img1) -> None:
    """Raise :class:`InputError` unless both are (B, 3, H, W) float tensors of one shape in [0, 1].

    The value scan (one pass and one sync per image) is skipped inside :func:`~pervfi_core.checks.trusted`:
    the pipeline checks all its frames once, up front, and calls the estimator in that scope."""
    for name, x in (("img0", img0), ("img1", img1)):
        if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] in _CHANNEL_HINTS:
            raise InputError(
                f"{name}: expected 3 channels (B, 3, H, W), got {tuple(x.shape)}; {_CHANNEL_HINTS[x.shape[1]]}"
            )
        check_image(name, x, max_value=MAX_FRAME_VALUE)
    check_same_shape("img0", img0, "img1", img1)


class FlowEstimator(nn.Module):
    """Base class: validation, device/dtype handling and optional reduced-resolution estimation.

    Subclasses implement :meth:`estimate` on checked (B, 3, h, w) frames in [0, 1] already on
    :attr:`device` in :attr:`dtype`. ``max_side`` (optional): frames whose longer side exceeds it
    are downscaled (area) before estimation and the flows upscaled (bilinear) and multiplied by the
    scale factors, trading accuracy for speed and memory.
    """

    def __init__(self, *, name: str, max_side: int | None = None):
        super().__init__()
        self.name = name
        self.max_side = max_side

    def _anchor(self) -> torch.Tensor | None:
        """The first floating-point parameter or buffer: where and in which dtype the estimator runs."""
        return next((t for t in itertools.chain(self.parameters(), self.buffers()) if t.is_floating_point()), None)

    @property
    def device(self) -> torch.device:
        t = self._anchor()
        return t.device if t is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        t = self._anchor()
        return t.dtype if t is not None else torch.float32

    def estimate(self, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [0, 1] twice -> (F0->1, F1->0), each (B, 2, H, W) float32 px; see the module doc."""
        check_frames(img0, img1)
        h, w = img0.shape[-2:]
        x0, x1 = (x.to(device=self.device, dtype=self.dtype) for x in (img0, img1))
        scale = 1.0 if self.max_side is None else min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x0, x1 = (F.interpolate(x, size=size, mode="area") for x in (x0, x1))
        flows = self.estimate(x0, x1)
        if scale < 1.0:
            flows = tuple(_resize_flow(f, (h, w)) for f in flows)
        fflow, bflow = (f.to(device=img0.device, dtype=torch.float32) for f in flows)
        return fflow, bflow

    def extra_repr(self) -> str:
        return f"name={self.name!r}" + (f", max_side={self.max_side}" if self.max_side else "")


def _resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (B, 2, h, w) flow to ``size`` with its vectors rescaled to the new grid."""
    h, w = flow.shape[-2:]
    up = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    return up * up.new_tensor([size[1] / w, size[0] / h]).view(1, 2, 1, 1)


class NetworkEstimator(FlowEstimator):
    """A flow network taking images in 0..255 padded (centred, zeros) to ``size_multiple``.

    ``network(image0, image1, **call_options)`` -> flow 0->1 (B, 2, H, W). ``min_size``: smaller
    frames are padded up to it (RAFT's correlation pyramid yields NaN below 128 px). Both directions
    run as one batch (the networks are per-sample: instance norm, eval batch norm) unless
    ``bidirectional_option`` names a network flag that computes both directions itself (GMFlow's
    shared Transformer pass); the network then returns (2B, 2, H, W), forward flows first.
    """

    def __init__(self, network: nn.Module, *, name: str, size_multiple: int, min_size: int = 0,
                 call_options: dict | None = None, bidirectional_option: str | None = None,
                 max_side: int | None = None):
        super().__init__(name=name, max_side=max_side)
        self.network = network.eval()
        self.size_multiple = size_multiple
        self.min_size = min_size
        self.call_options = dict(call_options or {})
        self.bidirectional_option = bidirectional_option

    def train(self, mode: bool = True):
        super().train(mode)
        self.network.eval()  # inference only: keep batch-norm statistics frozen whatever the caller does
        return self

    def plan(self, height: int, width: int) -> tuple[int, dict]:
        """(padding multiple, network call options) for frames of this size; fixed unless overridden."""
        return self.size_multiple, self.call_options

    def estimate(self, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = img0.shape[0]
        multiple, options = self.plan(*img0.shape[-2:])
        x0, padding = pad_to_multiple(img0 * 255, multiple, mode="centred", min_size=self.min_size)
        x1, _ = pad_to_multiple(img1 * 255, multiple, mode="centred", min_size=self.min_size)
        if self.bidirectional_option:
            flows = self.network(x0, x1, **{self.bidirectional_option: True}, **options)
        else:
            flows = self.network(torch.cat((x0, x1)), torch.cat((x1, x0)), **options)
        if not bool(torch.isfinite(flows).all()):
            raise PerVFIError(f"{self.name}: the network returned non-finite flow for frames of size "
                             f"{tuple(img0.shape[-2:])}; try another estimator")
        flows = padding.crop(flows)
        return flows[:b], flows[b:]
