"""ComfyUI IMAGE/MASK <-> pervfi_core tensors.

ComfyUI passes images as ``[B, H, W, C]`` float in [0, 1] (BHWC) and masks as ``[B, H, W]``;
pervfi_core works on ``(B, 3, H, W)`` (BCHW). Conversion happens here and nowhere else, with
errors that name the node input and say how to fix the graph.
"""
from __future__ import annotations

import logging

import torch
from einops import rearrange

from pervfi_core.checks import check_image
from pervfi_core.errors import InputError

log = logging.getLogger(__name__)

# ComfyUI IMAGEs should be in [0, 1], but some nodes leave them slightly outside (upscalers overshoot
# at edges, sharpening rings): such frames are clamped here with a warning, since the graph gives no
# other way to fix them, while the Python API refuses anything outside [0, 1] (pervfi_core/checks.py).
# Beyond this range the data is of another scale (0..255, [-1, 1]): refused, clamping would hide it.
STRAY_RANGE = (-0.25, 2.0)


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def frames_from_image(image, *, name: str = "frames", min_frames: int = 1) -> torch.Tensor:
    """IMAGE ``[B, H, W, 3]`` (or a list of such batches) -> frames ``(B, 3, H, W)`` float in [0, 1].

    Raises :class:`InputError` for a MASK, RGBA or grayscale images, frames of different sizes,
    values of another scale (outside :data:`STRAY_RANGE`), or fewer than ``min_frames`` frames.
    Values slightly outside [0, 1] are clamped, with a warning.
    """
    if isinstance(image, (list, tuple)):
        parts = [frames_from_image(p, name=name) for p in image]
        if not parts:
            raise InputError(f"{name}: got an empty list of images")
        sizes = sorted({tuple(p.shape[-2:]) for p in parts})
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for h, w in sizes)
            raise InputError(
                f"{name}: all frames must have the same size, got {listed} (W x H); "
                "resize them to one size first (e.g. with an Upscale Image node)"
            )
        frames = torch.cat(parts)
    elif not isinstance(image, torch.Tensor):
        raise InputError(f"{name}: expected an IMAGE tensor [B, H, W, 3], got {_describe(image)}")
    elif image.ndim == 3:
        raise InputError(
            f"{name}: expected an IMAGE [B, H, W, 3], got {_describe(image)} — this looks like a MASK; "
            "connect an IMAGE output (or convert with a Convert Mask to Image node)"
        )
    elif image.ndim != 4:
        raise InputError(f"{name}: expected an IMAGE [B, H, W, 3], got {_describe(image)}")
    elif image.shape[-1] == 4:  # one line that names core's node: the engines blend colour only
        raise InputError(f"{name}: RGBA images; split off the alpha with core's 'Split Image with Alpha' node, "
                         "interpolate the RGB images, and join them back with 'Join Image with Alpha' if need be")
    elif image.shape[-1] != 3:
        what = {1: "a single-channel (grayscale)"}.get(int(image.shape[-1]), "a")
        raise InputError(
            f"{name}: expected RGB images with 3 channels [B, H, W, 3], got {what} image with "
            f"{image.shape[-1]} channels {tuple(image.shape)}; convert to RGB first"
        )
    else:
        frames = rearrange(image, "b h w c -> b c h w")
    low, high = STRAY_RANGE
    # the range the check scanned (one pass, no mask the size of the clip); None only inside checks.trusted()
    lo, hi = check_image(name, frames, min_value=low, max_value=high) or (0.0, 1.0)
    if lo < 0 or hi > 1:
        log.warning("%s: values from %g to %g lie outside [0, 1] (an upstream node overshoots); clamped to "
                    "[0, 1]", name, lo, hi)
        frames = frames.clamp(0, 1)  # a copy: the IMAGE is ComfyUI's (cached upstream), never changed in place
    if frames.shape[0] < min_frames:
        raise InputError(
            f"{name}: expected at least {min_frames} frames, got {frames.shape[0]}; interpolation needs "
            "a sequence (e.g. load a video, or batch two images with a Batch Images node)"
        )
    return frames.float()


def image_from_frames(frames: torch.Tensor, *, device=None) -> torch.Tensor:
    """Frames ``(B, 3, H, W)`` -> IMAGE ``[B, H, W, 3]`` float32 in [0, 1], contiguous, on ``device``."""
    image = rearrange(frames, "b c h w -> b h w c").clamp(0, 1)
    return image.to(device=device, dtype=torch.float32).contiguous()


def image_buffer(count: int, height: int, width: int, *, device=None):
    """``(IMAGE [count, H, W, 3] float32, the same memory as (count, 3, H, W))``: one output buffer the
    pipeline writes every frame into (``alloc`` of :func:`pervfi_core.pipeline.clips.interpolate_clip`),
    handed to ComfyUI as it is, without a copy."""
    image = torch.empty(count, height, width, 3, dtype=torch.float32, device=device)
    return image, rearrange(image, "b h w c -> b c h w")


def mask_from_masks(masks: torch.Tensor, *, device=None) -> torch.Tensor:
    """Masks ``(B, 1, H, W)`` -> MASK ``[B, H, W]`` float32 in [0, 1]."""
    return rearrange(masks, "b 1 h w -> b h w").clamp(0, 1).to(device=device, dtype=torch.float32).contiguous()
