"""Which output frame sits where: timesteps for a multiplier or a target frame rate.

Positions are measured in input frames (input frame i sits at position i) and kept as exact
fractions, so 24 -> 60 fps or 29.97 -> 60 fps never drift. Output frame j sits at position
``j * step`` with ``step = fps_in / fps_out`` (``1 / multiplier`` for a multiplier). Output frames
run from position 0 to the last input frame (position n - 1, included when it falls on the grid):

* ``--multiplier N``: ``(n - 1) * N + 1`` frames (two inputs at x2 -> three frames);
* ``--fps F``: ``floor((n - 1) * F / fps_in) + 1`` frames (25 inputs at 24 -> 60 fps: 61 frames).

A target with ``t == 0`` is the input frame ``pair`` itself (copied bit for bit); ``0 < t < 1``
is a new frame between inputs ``pair`` and ``pair + 1``.

Bounds, checked here so the CLI, the Python API and the nodes refuse the same values before any work:
a multiplier in :data:`MULTIPLIER_RANGE` (2..64), at most :data:`MAX_TIMESTEPS` (63) explicit
timesteps per pair, and a target rate within :data:`MAX_RATE_RATIO` (64x) of the input rate, up or
down. Beyond them a run makes more than 63 new frames per input pair: almost surely a typo (``--fps
1e9``), and one that would otherwise fill the disk before anything says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..checks import check_whole
from ..errors import InputError

MULTIPLIER_RANGE = (2, 64)  # x2 adds one frame per pair; x64 already turns 24 fps into 1536 fps
MAX_TIMESTEPS = MULTIPLIER_RANGE[1] - 1  # explicit new frames per pair: as many as the largest multiplier
MAX_RATE_RATIO = 64  # output rate / input rate (and its inverse): the same bound for --fps
MAX_FPS = 100_000  # any single rate; keeps the exact fractions (and ffmpeg's time bases) sane


@dataclass(frozen=True)
class Target:
    """Output frame ``index`` at position ``pair + t`` (t in [0, 1), exact)."""

    index: int
    pair: int
    t: Fraction

    @property
    def is_input(self) -> bool:
        return self.t == 0


class Retime:
    """The output grid for a ``multiplier`` (:data:`MULTIPLIER_RANGE`) or a frame-rate change ``fps_in -> fps_out``
    (within :data:`MAX_RATE_RATIO` of each other)."""

    def __init__(self, *, multiplier: int | None = None, fps_in=None, fps_out=None):
        if (multiplier is None) == (fps_out is None):
            raise InputError("give either a multiplier or a target frame rate (fps_out), not both or neither")
        if multiplier is not None:
            self.step = Fraction(1, check_multiplier(multiplier))
        else:
            # the ratio first: for --fps 1e9 "64x the input rate" says more than the absolute bound
            fps_in, fps_out = _positive_rate("input fps", fps_in), _positive_rate("fps", fps_out, bounded=False)
            ratio = fps_out / fps_in
            if not Fraction(1, MAX_RATE_RATIO) <= ratio <= MAX_RATE_RATIO:
                raise InputError(
                    f"fps: {float(fps_out):g} fps is {float(ratio):.4g}x the input rate {float(fps_in):g} fps; the "
                    f"target rate must be within {MAX_RATE_RATIO}x of the input rate (from "
                    f"{float(fps_in / MAX_RATE_RATIO):g} to {float(fps_in * MAX_RATE_RATIO):g} fps here)")
            self.step = fps_in / _positive_rate("fps", fps_out)
        self.multiplier = multiplier

    def output_fps(self, fps_in) -> Fraction:
        """Frame rate of the output, exact."""
        return _positive_rate("input fps", fps_in) / self.step

    def targets_in_pair(self, pair: int) -> list[Target]:
        """Output frames with position in ``[pair, pair + 1)``, in order."""
        first = math.ceil(pair / self.step)
        last = math.ceil((pair + 1) / self.step) - 1
        return [Target(j, pair, j * self.step - pair) for j in range(first, last + 1)]

    def final_target(self, n_frames: int) -> Target | None:
        """The output frame exactly on the last input frame (position n - 1), if the grid hits it."""
        j = (n_frames - 1) / self.step
        if n_frames < 1 or j.denominator != 1:
            return None
        return Target(int(j), n_frames - 1, Fraction(0))

    def plan(self, n_frames: int) -> list[Target]:
        """All output frames for ``n_frames`` inputs (n >= 2)."""
        targets = [tg for i in range(n_frames - 1) for tg in self.targets_in_pair(i)]
        final = self.final_target(n_frames)
        return targets + ([final] if final is not None else [])

    def count(self, n_frames: int) -> int:
        """Number of output frames for ``n_frames`` inputs."""
        if n_frames < 2:
            return n_frames
        return math.floor((n_frames - 1) / self.step) + 1


def check_multiplier(multiplier) -> int:
    """``multiplier`` as an int, or :class:`InputError` unless it is a whole number in :data:`MULTIPLIER_RANGE`."""
    return check_whole("multiplier", multiplier, *MULTIPLIER_RANGE,
                       hint=f"{MULTIPLIER_RANGE[0]} doubles the frame rate; output frames: (N-1)*multiplier + 1")


def check_rate(name: str, value) -> Fraction:
    """A frame rate as an exact fraction, or :class:`InputError` unless it is in (0, :data:`MAX_FPS`]."""
    return _positive_rate(name, value)


def _positive_rate(name: str, value, *, bounded: bool = True) -> Fraction:
    try:
        rate = value if isinstance(value, Fraction) else Fraction(str(value)).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise InputError(f"{name}: expected a positive number such as 60 or 29.97, got {value!r}") from None
    if not 0 < rate <= (MAX_FPS if bounded else math.inf):
        raise InputError(f"{name}: expected a frame rate above 0 and at most {MAX_FPS} fps, got {value!r}")
    return rate


class ExplicitTimesteps:
    """The same timesteps ``ts`` (floats in (0, 1), increasing) between every pair of inputs."""

    def __init__(self, ts):
        try:
            values = [Fraction(str(float(t))) for t in ts]
        except (TypeError, ValueError):
            raise InputError(f"timesteps: expected a list of numbers in (0, 1), got {ts!r}") from None
        if not values or any(not 0 < t < 1 for t in values) or sorted(set(values)) != values:
            raise InputError(f"timesteps: expected increasing, distinct values in (0, 1), got {list(ts)!r}")
        if len(values) > MAX_TIMESTEPS:
            raise InputError(f"timesteps: at most {MAX_TIMESTEPS} new frames per pair (the largest multiplier, "
                             f"{MULTIPLIER_RANGE[1]}, makes that many), got {len(values)}")
        self.ts = values
        self.multiplier = None

    def targets_in_pair(self, pair: int) -> list[Target]:
        per = len(self.ts) + 1
        return [Target(pair * per + k, pair, t) for k, t in enumerate([Fraction(0), *self.ts])]

    def final_target(self, n_frames: int) -> Target | None:
        return Target((n_frames - 1) * (len(self.ts) + 1), n_frames - 1, Fraction(0)) if n_frames >= 1 else None

    def plan(self, n_frames: int) -> list[Target]:
        return [tg for i in range(n_frames - 1) for tg in self.targets_in_pair(i)] + [self.final_target(n_frames)]

    def count(self, n_frames: int) -> int:
        return (n_frames - 1) * (len(self.ts) + 1) + 1 if n_frames >= 2 else n_frames


def as_schedule(timesteps):
    """A multiplier (int), a :class:`Retime`, an :class:`ExplicitTimesteps` or a list of floats -> schedule."""
    if isinstance(timesteps, (Retime, ExplicitTimesteps)):
        return timesteps
    if isinstance(timesteps, int) and not isinstance(timesteps, bool):
        return Retime(multiplier=timesteps)
    if isinstance(timesteps, (list, tuple)):
        return ExplicitTimesteps(timesteps)
    lo, hi = MULTIPLIER_RANGE
    raise InputError(f"timesteps: expected a multiplier (int from {lo} to {hi}), a Retime or a list of floats "
                     f"in (0, 1), got {timesteps!r}")
