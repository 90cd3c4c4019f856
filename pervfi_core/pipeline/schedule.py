"""Which output frame sits where: timesteps for a multiplier or a target frame rate.

Positions are measured in input frames (input frame i sits at position i) and kept as exact
fractions, so 24 -> 60 fps or 29.97 -> 60 fps never drift. Output frame j sits at position
``j * step`` with ``step = fps_in / fps_out`` (``1 / multiplier`` for a multiplier). Output frames
run from position 0 to the last input frame (position n - 1, included when it falls on the grid):

* ``--multiplier N``: ``(n - 1) * N + 1`` frames (two inputs at x2 -> three frames);
* ``--fps F``: ``floor((n - 1) * F / fps_in) + 1`` frames (25 inputs at 24 -> 60 fps: 61 frames).

A target with ``t == 0`` is the input frame ``pair`` itself (copied bit for bit); ``0 < t < 1``
is a new frame between inputs ``pair`` and ``pair + 1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError


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
    """The output grid for a ``multiplier`` (integer >= 2) or a frame-rate change ``fps_in -> fps_out``."""

    def __init__(self, *, multiplier: int | None = None, fps_in=None, fps_out=None):
        if (multiplier is None) == (fps_out is None):
            raise InputError("give either a multiplier or a target frame rate (fps_out), not both or neither")
        if multiplier is not None:
            if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
                raise InputError(f"multiplier: expected an integer >= 1 (2 doubles the frame rate), got {multiplier!r}")
            self.step = Fraction(1, multiplier)
        else:
            fps_in, fps_out = _positive_rate("input fps", fps_in), _positive_rate("fps", fps_out)
            self.step = fps_in / fps_out
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


def _positive_rate(name: str, value) -> Fraction:
    try:
        rate = value if isinstance(value, Fraction) else Fraction(str(value)).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError):
        raise InputError(f"{name}: expected a positive number such as 60 or 29.97, got {value!r}") from None
    if rate <= 0:
        raise InputError(f"{name}: expected a positive frame rate, got {value!r}")
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
    raise InputError(f"timesteps: expected a multiplier (int >= 1), a Retime or a list of floats in (0, 1), got {timesteps!r}")
