"""The engine contract: what the pipeline runs, and nothing else (no network is imported here).

An *engine* makes new frames from two frames in two steps (paper Fig. 2):

``blend(img0, img1, fflow, bflow, t) -> Blend``
    the expensive, reusable part: motion, asymmetric blending (ASB, §3.1) and whatever the decoder
    is conditioned on;
``decode(blend, tau, seed) -> frames``
    the part τ and the seed act on (§3.2), re-run alone when only they change.

Each engine carries an :class:`EngineInfo` (what was loaded, from where; spandrel's
``ModelDescriptor`` in spirit). Engines are listed in :mod:`pervfi_core.registry` (one spec each,
:class:`pervfi_core.specs.EngineSpec`) and loaded by :mod:`pervfi_core.engines`; this module is the floor
every engine and the pipeline stand on. Adding an engine: CONTRIBUTING.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import torch

from .ops.padding import Padding

#: The default sampling temperature of a run and of every stochastic decoder: the τ that is best in DISTS (and
#: within 0.00001 of the best LPIPS-alex, τ 0's) for the default engine on real footage
#: (bench/results/validation.md: τ 0 … 1). τ = 0 is deterministic.
DEFAULT_TAU = 0.1


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is and where it came from.

    id: manifest id, file name or engine name (what reports show); architecture: the registry name of
    its kind (``pervfi-v00``, ``pervfi-vb``, ``training-free``, ...); config: its hyperparameters;
    source: the file loaded (None when built in memory); sha256: its hash when the manifest pins one;
    trained_step: the training step recorded by the training CLI's export (None for official weights).
    """

    id: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    sha256: str | None = None
    trained_step: int | None = None


@dataclass
class Blend:
    """What ``blend`` hands to ``decode`` (reusable for many τ / seeds), on a padded grid (Hp, Wp).

    conds: what a learned decoder is conditioned on, each engine's own list (PerVFI: the fused conditions c,
        finest first, [(B, 35, Hp/2, Wp/2), (B, 64, Hp/4, Wp/4), (B, 96, Hp/8, Wp/8)] for the official widths;
        pervfi-rife: c and its envelope); empty for an engine whose decoder needs none.
    masks: the blending masks M̃ in [0, 1] (1 = take frame 1 / the filling frame), finest first, (B, 1, ·, ·).
    size: (H, W) of the input frames; padding: what was added to reach (Hp, Wp).
    frame: a frame the blend already made, (B, 3, Hp, Wp) in [0, 1]: the output of an image-space engine,
        or the base a residual decoder adds its correction to; None when the decoder makes the whole frame.
    """

    conds: list[torch.Tensor]
    masks: list[torch.Tensor]
    size: tuple[int, int]
    padding: Padding
    frame: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return (self.conds[0] if self.conds else self.masks[0]).shape[0]

    @property
    def device(self) -> torch.device:
        return (self.conds[0] if self.conds else self.masks[0]).device

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.size[0] + self.padding.top + self.padding.bottom, self.size[1] + self.padding.left + self.padding.right

    def mask(self) -> torch.Tensor:
        """The finest mask cropped to the input size, (B, 1, H, W) in [0, 1]."""
        return self.padding.crop(self.masks[0])

    def _map(self, fn) -> "Blend":
        return replace(self, conds=[fn(c) for c in self.conds], masks=[fn(m) for m in self.masks],
                       frame=None if self.frame is None else fn(self.frame))

    def to(self, device=None, dtype=None) -> "Blend":
        """A copy with every tensor on ``device`` / in ``dtype`` (e.g. to park blends on the CPU)."""
        return self._map(lambda x: x.to(device=device, dtype=dtype))

    def select(self, start: int, stop: int) -> "Blend":
        """The blends of samples ``start:stop`` of the batch (views, no copy)."""
        return self._map(lambda x: x[start:stop])

    def nbytes(self) -> int:
        extra = () if self.frame is None else (self.frame,)
        return sum(x.numel() * x.element_size() for x in (*self.conds, *self.masks, *extra))


@runtime_checkable
class Engine(Protocol):
    """The contract between the pipeline and a frame generator.

    ``blend(img0, img1, fflow, bflow, t) -> Blend``: frames (B,3,H,W) in [0,1] (the pipeline checks them
    once, engines trust them), F0->1 on frame 0's grid and F1->0 on frame 1's, (B,2,H,W) in pixels
    (None for an engine that does not need motion), ``t`` (B,) in [0,1].
    ``decode(blend, tau, seed) -> (B,3,H,W)`` in [0,1].

    ``stochastic``: whether τ and the seed change the output. ``needs_motion``: whether the pipeline must
    estimate optical flow for it (False: the engine finds its own motion inside ``blend``).
    ``max_pixels``: the most pixels (batch x H x W) one call should see (None: no limit of its own).
    ``size_multiple``: the grid it pads to internally. ``device``/``dtype``: where and in which float
    type ``blend`` computes. ``memory_per_pixel``: bytes of working memory one blend + decode call needs
    per pixel it sees (batch x H x W), float32, measured (bench/memory_per_pixel.py).
    """

    info: EngineInfo

    @property
    def name(self) -> str: ...

    @property
    def stochastic(self) -> bool: ...

    @property
    def needs_motion(self) -> bool: ...

    @property
    def max_pixels(self) -> int | None: ...

    @property
    def size_multiple(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def memory_per_pixel(self) -> int: ...

    def blend(self, img0, img1, fflow, bflow, t) -> Blend: ...

    def decode(self, blend: Blend, tau: float = ..., seed: int = ...) -> torch.Tensor: ...
