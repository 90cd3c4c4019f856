"""Input validation for public entry points.

Checks run once, where user data enters (model.blend/decode/encode, flow estimators, pipeline);
inner modules trust their inputs. Errors are :class:`~pervfi_core.errors.InputError` with the
expected and the actual value in the message.

A public entry that calls others (the pipeline calls the estimator and the engine for every pair)
checks all its data up front, then runs inside :func:`trusted`: there the value scans (finite, range),
a pass over the data and a device-to-host sync each, are skipped; shape and dtype checks still run.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from .errors import InputError

# Frames are in [0, 1]. The API refuses anything outside, up to a float32 rounding of a colour op on
# data in [0, 1] (1 ulp at 1.0 is 1.2e-7: ``a * (1 - t) + b * t`` can land a few of them above 1).
# ComfyUI IMAGEs that stray a little further (upscaler overshoot, ringing) are clamped by the nodes
# with a warning (nodes/images.py), not here: a caller of the Python API fixes its own data.
FRAME_TOLERANCE = 1e-6
MAX_FRAME_VALUE = 1.0 + FRAME_TOLERANCE
MIN_FRAME_VALUE = -FRAME_TOLERANCE
_TRUSTED: ContextVar[bool] = ContextVar("pervfi_trusted_values", default=False)


@contextmanager
def trusted():
    """Inside: the values were checked at the public entry; value scans are skipped (module docstring).

    Per thread / task (a context variable). Enter it only in code that does not yield inside it."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def check_image(name: str, x, *, channels: int = 3, max_value: float | None = None, min_value: float | None = None,
                finite: bool = True) -> tuple[float, float] | None:
    """``x`` must be a float tensor ``(B, channels, H, W)`` with B >= 1 and finite values (in
    [``min_value``, ``max_value``] where ``max_value`` is given, e.g. :data:`MAX_FRAME_VALUE`;
    ``min_value`` defaults to :data:`MIN_FRAME_VALUE`; ``finite=False``: values not scanned).
    Returns the (minimum, maximum) the value scan found, None where values were not scanned."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(f"{name}: expected shape (B, {channels}, H, W), got {tuple(x.shape)}")
    if x.shape[1] != channels:
        hint = " (drop the alpha channel or convert grayscale to RGB first)" if channels == 3 else ""
        raise InputError(
            f"{name}: expected {channels} channels in dim 1 (B, C, H, W), got {x.shape[1]}{hint}"
        )
    if x.device.type == "meta":
        raise InputError(f"{name}: a tensor on the 'meta' device has a shape but no values; pass real data "
                         "(on cpu, cuda or mps)")
    if x.shape[0] == 0:
        raise InputError(f"{name}: empty batch (B = 0); pass at least one sample")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise InputError(f"{name}: empty image {x.shape[2]}x{x.shape[3]}")
    if not x.is_floating_point():
        raise InputError(
            f"{name}: expected a floating-point tensor (float32/float16/bfloat16) with values "
            f"in [0, 1], got {x.dtype}; convert with x.float() / 255 for 8-bit data"
        )
    return check_finite(name, x, max_value=max_value, min_value=min_value) if finite else None


def check_whole(name: str, value, lo: int, hi: int | None = None, *, hint: str = "", unit: str = "",
                hi_text: str | None = None) -> int:
    """``value`` as an int, or :class:`InputError` unless it is a whole number in [lo, hi] (hi None: no bound).

    The message: ``NAME: expected a whole number [of UNIT] from LO to HI (HINT), got VALUE``."""
    span = f">= {lo}" if hi is None else f"from {lo} to {hi_text or hi}"
    what = f"a whole number{' of ' + unit if unit else ''} {span}{f' ({hint})' if hint else ''}"
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise InputError(f"{name}: expected {what}, got {value!r}")
    number = int(value.__index__())
    if number < lo or hi is not None and number > hi:
        raise InputError(f"{name}: expected {what}, got {value!r}")
    return number


def check_engine(name: str, engine) -> None:
    """``engine`` must make frames (``blend`` and ``decode``): a motion estimator given here is named as one."""
    if hasattr(engine, "blend") and hasattr(engine, "decode"):
        return
    if callable(engine) and not hasattr(engine, "blend"):
        raise InputError(f"{name}: expected an engine (load_engine(...)), got a motion estimator "
                         f"({type(engine).__name__}); pass it as the estimator and an engine here")
    raise InputError(f"{name}: expected an engine (load_engine(...)) with blend() and decode(), got "
                     f"{type(engine).__name__}")


def check_estimator(name: str, estimator) -> None:
    """``estimator`` must be a motion estimator (called on two frames): an engine given here is named as one."""
    if estimator is None:
        return
    if hasattr(estimator, "blend") and hasattr(estimator, "decode"):
        raise InputError(f"{name}: expected a motion estimator (load_estimator(...)), got an engine "
                         f"({type(estimator).__name__}); pass it as the engine and an estimator here")
    if not callable(estimator):
        raise InputError(f"{name}: expected a motion estimator (load_estimator(...)), got {type(estimator).__name__}")


def check_finite(name: str, x: torch.Tensor, *, max_value: float | None = None,
                 min_value: float | None = None) -> tuple[float, float] | None:
    """Every value finite (and, with ``max_value``, in [``min_value`` (default :data:`MIN_FRAME_VALUE`),
    ``max_value``]): one sync; skipped inside :func:`trusted`.

    The scan is the maximum and the minimum (a NaN propagates into both, +Inf is the maximum, -Inf the
    minimum): no temporary the size of ``x`` (a mask of ``~isfinite(x)`` summed as int64 took 2.5 times
    ``x``, 1.7 GB for a 600-frame 448x252 clip, bench/results/comfyui-rss.md). Bad values are counted only
    for the error. Returns the (minimum, maximum) found, None where nothing was scanned."""
    if _TRUSTED.get() or x.numel() == 0:  # nothing to scan (amax of nothing is undefined)
        return None
    high, low = torch.stack([x.detach().amax().double(), x.detach().amin().double()]).tolist()
    if not (math.isfinite(high) and math.isfinite(low)):
        parts = x.detach().reshape(1) if x.ndim == 0 else x.detach()  # counted item by item: no copy of x
        n_bad = sum(int((~torch.isfinite(part)).sum()) for part in parts)
        raise InputError(f"{name}: contains {n_bad} NaN/Inf values; every value must be finite")
    if max_value is not None and high > max_value:
        hint = "divide 8-bit data by 255" if high > 2 else "clamp them with x.clamp(0, 1)"
        raise InputError(f"{name}: expected values in [0, 1], got a maximum of {high:g}; {hint}")
    if max_value is not None and low < (MIN_FRAME_VALUE if min_value is None else min_value):
        hint = "map [-1, 1] data with (x + 1) / 2" if low < -0.25 else "clamp them with x.clamp(0, 1)"
        raise InputError(f"{name}: expected values in [0, 1], got a minimum of {low:g}; {hint}")
    return low, high


def check_flow(name: str, flow, like: torch.Tensor, *, finite: bool = True) -> None:
    """``flow`` must be ``(B, 2, H, W)`` in pixels on the grid of ``like`` ``(B, C, H, W)``; ``finite=False``
    leaves the values alone (softmax splatting skips non-finite vectors by definition)."""
    check_image(name, flow, channels=2, finite=finite)
    if flow.shape[0] != like.shape[0] or flow.shape[2:] != like.shape[2:]:
        raise InputError(
            f"{name}: expected shape ({like.shape[0]}, 2, {like.shape[2]}, {like.shape[3]}) to match "
            f"the frames, got {tuple(flow.shape)}; was the flow computed for another clip or size?"
        )


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise InputError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def as_timesteps(t, batch: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalise ``t`` (a float or a ``(B,)`` tensor) to a ``(B,)`` tensor with values in [0, 1]."""
    if isinstance(t, torch.Tensor):
        if t.ndim == 0:
            t = t.reshape(1).expand(batch)
        if t.ndim != 1 or t.shape[0] != batch:
            raise InputError(f"t: expected a float or a tensor of shape ({batch},), got {tuple(t.shape)}")
        tt = t.to(device=device, dtype=dtype)
    else:
        try:
            value = float(t)
        except (TypeError, ValueError):
            raise InputError(f"t: expected a float in [0, 1] or a ({batch},) tensor, got {t!r}") from None
        tt = torch.full((batch,), value, device=device, dtype=dtype)
    if not bool(torch.isfinite(tt).all()) or bool(((tt < 0) | (tt > 1)).any()):
        raise InputError(f"t: every timestep must lie in [0, 1], got {tt.tolist()}")
    return tt
