"""checks.check_finite: every bad value found, and no temporary the size of the frames (a clip's frames
are checked whole at the pipeline's entry)."""
from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from pervfi_core.checks import MAX_FRAME_VALUE, check_finite
from pervfi_core.errors import InputError


def frames_bhwc_viewed_as_bchw() -> torch.Tensor:
    """(6, 3, 32, 48) in [0, 1], not contiguous: ComfyUI's [B, H, W, 3] seen as BCHW, as the nodes pass it."""
    return torch.rand(6, 32, 48, 3).permute(0, 3, 1, 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_non_finite_value_is_found_and_counted(bad):
    x = frames_bhwc_viewed_as_bchw().clone()
    x[1, 2, 3, 4] = x[5, 0, 31, 47] = bad
    with pytest.raises(InputError, match="contains 2 NaN/Inf values"):
        check_finite("frames", x, max_value=MAX_FRAME_VALUE)
    with pytest.raises(InputError, match="contains 2 NaN/Inf values"):
        check_finite("frames", x)  # no range given: still scanned
    with pytest.raises(InputError, match="contains 1 NaN/Inf values"):
        check_finite("frames", x[1].half())


def test_values_out_of_range_name_the_extreme():
    x = frames_bhwc_viewed_as_bchw()
    check_finite("frames", x, max_value=MAX_FRAME_VALUE)
    with pytest.raises(InputError, match="maximum of 255"):
        check_finite("frames", torch.cat([x, torch.full_like(x[:1], 255.0)]), max_value=MAX_FRAME_VALUE)
    with pytest.raises(InputError, match="minimum of -1"):
        check_finite("frames", torch.cat([x, torch.full_like(x[:1], -1.0)]), max_value=MAX_FRAME_VALUE)
    check_finite("frames", x * 255)  # no range given: only finiteness


def test_the_scan_allocates_no_copy_of_the_frames():
    x = frames_bhwc_viewed_as_bchw()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        check_finite("frames", x, max_value=MAX_FRAME_VALUE)
    biggest = max((e.cpu_memory_usage for e in prof.events()), default=0)
    assert biggest < x.numel() // 8, f"the scan allocated {biggest} bytes for a {x.numel() * 4}-byte tensor"
