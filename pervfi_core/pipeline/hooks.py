"""Host hooks for the pipeline: device placement, progress, interruption, cache, out-of-memory fallback.

Every default is plain stand-alone behaviour; ComfyUI's versions (its device manager, progress bar,
``throw_exception_if_processing_interrupted``, ``soft_empty_cache``) are plugged in by the nodes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import PerVFIError

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

    def note(self, message: str, *, once: bool = False) -> None:
        """Say something the user should know (a retry, a capped budget): log it and keep it in ``log``.
        ``once``: skip a message this run has already noted."""
        if once and message in self.log:
            return
        self.log.append(message)
        logger.warning("%s", message)

    def report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(done, total)
