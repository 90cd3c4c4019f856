"""Host hooks for the pipeline: device placement, progress, interruption, cache, out-of-memory fallback.

Every default is plain stand-alone behaviour; ComfyUI's versions (its device manager, progress bar,
``throw_exception_if_processing_interrupted``, ``soft_empty_cache``) are plugged in by the nodes.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .errors import PerVFIError

logger = logging.getLogger(__name__)


def _no_interrupt() -> None:
    return None


def _empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures (``torch.OutOfMemoryError`` or the usual messages)."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or "failed to allocate" in text
        or isinstance(exc, MemoryError))


class OutOfMemory(PerVFIError, MemoryError):
    """Raised when even the smallest batch and tile did not fit."""


@dataclass
class Hooks:
    """How the pipeline talks to its host.

    device, dtype: where and in which float type frames are processed (None: CPU, float32); models
        are placed by the caller. park_device: where blends wait between blend and decode (CPU by
        default, so a long clip does not fill GPU memory).
    progress(done, total): called after each frame pair (total None when unknown).
    check_interrupt(): called at least once per pair; raise to stop (KeyboardInterrupt works too).
    empty_cache(): frees cached accelerator memory after an out-of-memory error.
    is_oom(exc): whether an exception is an out-of-memory error (then the work is retried in
        smaller batches, then in smaller tiles).
    """

    device: torch.device | str | None = None
    dtype: torch.dtype = torch.float32
    park_device: torch.device | str | None = "cpu"
    progress: Callable[[int, int | None], None] | None = None
    check_interrupt: Callable[[], None] = _no_interrupt
    empty_cache: Callable[[], None] = _empty_cache
    is_oom: Callable[[BaseException], bool] = is_out_of_memory
    log: list = field(default_factory=list)  # human-readable notes (OOM retries, scene cuts)

    def place(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device or "cpu", dtype=self.dtype)

    def park(self, obj):
        """Move a tensor or Blend to ``park_device`` (no-op when None)."""
        return obj if self.park_device is None else obj.to(device=self.park_device)

    def report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(done, total)


def run_batched(fn: Callable[[int, int], list], n: int, batch_size: int, hooks: Hooks) -> list:
    """``fn(start, stop)`` over ``range(n)`` in batches; on out-of-memory, halve the batch and retry.

    Returns the concatenated lists. Raises :class:`OutOfMemory` if a batch of one does not fit.
    """
    out, start, size = [], 0, max(1, batch_size)
    while start < n:
        stop = min(n, start + size)
        try:
            out.extend(fn(start, stop))
        except Exception as exc:  # noqa: BLE001 — only OOM is handled, the rest re-raised
            if not hooks.is_oom(exc):
                raise
            hooks.empty_cache()
            if size == 1:
                raise OutOfMemory(f"out of memory even for one frame at a time: {exc}") from exc
            size = max(1, size // 2)
            hooks.log.append(f"out of memory: retrying with batches of {size}")
            logger.warning("out of memory: retrying with batches of %d", size)
            continue
        start = stop
    return out


def tile_boxes(height: int, width: int, tile: int, margin: int) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Split an image into tiles of at most ``tile`` px (core) with ``margin`` px of context.

    Returns ``[(outer, inner)]`` where ``outer = (y0, y1, x0, x1)`` is the region to process and
    ``inner`` the core to keep, in the outer region's coordinates. Cores cover the image exactly once.
    """
    def spans(n: int) -> list[tuple[int, int]]:
        k = max(1, math.ceil(n / tile))
        edges = [round(i * n / k) for i in range(k + 1)]
        return list(zip(edges[:-1], edges[1:]))

    boxes = []
    for cy0, cy1 in spans(height):
        for cx0, cx1 in spans(width):
            y0, y1 = max(0, cy0 - margin), min(height, cy1 + margin)
            x0, x1 = max(0, cx0 - margin), min(width, cx1 + margin)
            boxes.append(((y0, y1, x0, x1), (cy0 - y0, cy1 - y0, cx0 - x0, cx1 - x0)))
    return boxes


def paste_cores(pieces, size: tuple[int, int]) -> torch.Tensor:
    """Stitch ``(outer, inner, y)`` pieces of :func:`tile_boxes` (``y`` computed on the outer region,
    (B,C,h,w)) into one (B,C,H,W) tensor of ``size`` = (H, W), keeping each piece's core. ``pieces``
    may be a generator: each ``y`` can be freed once pasted."""
    out = None
    for (y0, _, x0, _), (iy0, iy1, ix0, ix1), y in pieces:
        core = y[..., iy0:iy1, ix0:ix1]
        if out is None:
            out = core.new_empty(core.shape[0], core.shape[1], *size)
        out[..., y0 + iy0:y0 + iy1, x0 + ix0:x0 + ix1] = core
    return out


def run_tiled(fn: Callable[[Sequence[torch.Tensor]], torch.Tensor], inputs: Sequence[torch.Tensor], *,
              tile: int, margin: int, hooks: Hooks) -> torch.Tensor:
    """Apply ``fn`` to spatial tiles of ``inputs`` (all (B,C,H,W) on one grid) and stitch the cores.

    ``fn`` maps the list of cropped inputs to one (B,C',h,w) tensor on the same grid. With a margin
    larger than the motion, tiles see every pixel that moves into their core.
    """
    h, w = inputs[0].shape[-2:]

    def pieces():
        for outer, inner in tile_boxes(h, w, tile, margin):
            hooks.check_interrupt()
            y0, y1, x0, x1 = outer
            yield outer, inner, fn([x[..., y0:y1, x0:x1] for x in inputs])

    return paste_cores(pieces(), (h, w))
