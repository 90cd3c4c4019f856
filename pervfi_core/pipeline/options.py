"""The options of a run, each default defined once, each value checked once.

The command line, the Python API and the nodes build one :class:`Options`; invalid values raise
:class:`~pervfi_core.errors.InputError` when it is built, before any work starts, with the same
message everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from ..checks import check_whole
from ..engine import DEFAULT_TAU  # noqa: F401  (re-exported: the options and the CLI read it here)
from ..errors import InputError

TAU_RANGE = (0.0, 1.0)  # 0: the most probable frame; 1: samples of the full learned distribution
DEFAULT_SEED = 0
MAX_SEED = 2 ** 64 - 1  # torch.Generator seeds are unsigned 64-bit; per-frame noise: frame j uses (seed + j) mod 2**64
# How the latents of successive new frames relate. "shared": every new frame decodes the same latent
# (seed), so static regions stay still; "per-frame": frame j draws its own (seed + j), independent
# samples that flicker in static regions at τ > 0 (bench/results/tau.md measures both).
NOISE_MODES = ("shared", "per-frame")
DEFAULT_NOISE = "shared"
DEFAULT_SCENE_THRESHOLD = 0.25  # between the cuts and the hardest non-cuts of bikes and Megamind (pipeline/scenes.py)
DEFAULT_BATCH = 4  # new frames per engine call
FLOW_MAX_PIXELS = 1920 * 1088  # larger frames: motion estimated on a downscaled copy (speed, memory)
BLEND_MAX_PIXELS = 1920 * 1088  # pixels per blend/decode call (batch x H x W) unless the engine allows fewer


@dataclass(frozen=True)
class Options:
    """How new frames are made.

    tau: sampling temperature τ of a stochastic engine, in :data:`TAU_RANGE` (ignored by deterministic
        engines). seed: the seed of the latent. noise: :data:`NOISE_MODES`; "shared" (default) decodes
        every new frame from the latent of ``seed``, "per-frame" frame j from ``(seed + j) mod 2**64``.
    scene_threshold: a pair whose scene-change score (pipeline/scenes.py, in [0, 1]) exceeds it is a
        cut and is never blended; 0 turns detection off. batch_size: new frames per engine call.
    flow_max_pixels: frames above it get their motion estimated on a downscaled copy (None: never).
    blend_max_pixels: pixels per blend/decode call (batch x H x W); larger frames are tiled. None (the
        default): the engine's own budget (``Engine.max_pixels``), at most :data:`BLEND_MAX_PIXELS`. A
        value above the engine's own budget is lowered to it, and the log says so.
    """

    tau: float = DEFAULT_TAU
    seed: int = DEFAULT_SEED
    noise: str = DEFAULT_NOISE
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD
    batch_size: int = DEFAULT_BATCH
    flow_max_pixels: int | None = FLOW_MAX_PIXELS
    blend_max_pixels: int | None = None

    def __post_init__(self):
        check_tau(self.tau)
        check_whole("seed", self.seed, 0, MAX_SEED, hi_text="2**64-1")
        if self.noise not in NOISE_MODES:
            raise InputError(f"noise: expected one of {NOISE_MODES} (default {DEFAULT_NOISE!r}: the same latent for "
                             f"every new frame, steady in static regions), got {self.noise!r}")
        threshold = _number("scene threshold", self.scene_threshold)
        if not 0 <= threshold <= 1:
            raise InputError(f"scene threshold: expected a value in [0, 1] (0 = no scene detection, "
                             f"default {DEFAULT_SCENE_THRESHOLD}), got {self.scene_threshold!r}")
        check_whole("batch size", self.batch_size, 1, 4096)
        for name in ("flow_max_pixels", "blend_max_pixels"):
            value = getattr(self, name)
            if value is not None:
                check_whole(name.replace("_", " "), value, 64 * 64, unit="pixels", hint="e.g. 2088960 for 1920x1088")

    def seed_for(self, index: int) -> int:
        """The seed of output frame ``index``."""
        if self.noise == "shared":
            return int(self.seed)
        return (int(self.seed) + int(index)) % (MAX_SEED + 1)


def check_tau(tau) -> float:
    """τ as a float, or :class:`InputError` unless it is a finite number in :data:`TAU_RANGE`."""
    value = _number("tau", tau)
    lo, hi = TAU_RANGE
    if not lo <= value <= hi:
        raise InputError(f"tau: expected a temperature in [{lo:g}, {hi:g}] (default {DEFAULT_TAU}), got {tau!r}")
    return value


def make_options(options: Options | None = None, **overrides) -> Options:
    """``options`` (default :class:`Options`) with keyword ``overrides``; an unknown name is an InputError."""
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown option(s) {unknown}; expected some of {sorted(known)}")
    base = options if options is not None else Options()
    return replace(base, **overrides) if overrides else base


def _number(name: str, value) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    return number
