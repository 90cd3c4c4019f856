"""softsplat: official kernel semantics (parity cases) and behaviour."""
from __future__ import annotations

import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.ops.softsplat import SoftSplat, softsplat

HAND_CASES = ["int_shift", "frac", "collision", "oob"]


def _metric_for(cases, case, mode):
    if mode.startswith("soft"):
        return cases[f"{case}.metric"]
    if mode.startswith("linear"):
        return cases[f"{case}.metric_linear"]
    return None


@pytest.mark.parametrize("case", HAND_CASES)
def test_hand_cases_sum_exact(load_parity, case):
    cases = load_parity("softsplat_cases")
    out = softsplat(cases[f"{case}.in"], cases[f"{case}.flow"], None, "sum")
    torch.testing.assert_close(out, cases[f"{case}.sum"], atol=0, rtol=0)


def test_collision_avg(load_parity):
    cases = load_parity("softsplat_cases")
    out = softsplat(cases["collision.in"], cases["collision.flow"], None, "avg")
    torch.testing.assert_close(out, cases["collision.avg"], atol=0, rtol=0)


def test_every_stored_mode(load_parity):
    cases = load_parity("softsplat_cases")
    keys = [k for k in cases if k.startswith(("rand.out.", "holes.out."))]
    assert len(keys) >= 10
    for key in keys:
        case, _, mode = key.split(".", 2)
        out = softsplat(cases[f"{case}.in"], cases[f"{case}.flow"], _metric_for(cases, case, mode), mode)
        # the fixtures sum in float64, we sum in float32: 1.2e-7 measured
        torch.testing.assert_close(out, cases[key], atol=1e-6, rtol=1e-6, msg=key)


def test_holes_stay_zero(load_parity):
    cases = load_parity("softsplat_cases")
    out = softsplat(cases["holes.in"], cases["holes.flow"], cases["holes.metric"], "soft")
    unreached = cases["holes.out.soft"].abs().sum(dim=(0, 1, 2)) == 0
    assert unreached.any()
    assert (out[..., unreached] == 0).all()


def test_non_finite_flow_source_is_skipped():
    torch.manual_seed(1)
    x = torch.rand(1, 2, 5, 6)
    flow = torch.rand(1, 2, 5, 6) * 2 - 1
    bad = flow.clone()
    bad[0, 0, 2, 3] = float("nan")
    bad[0, 1, 1, 1] = float("inf")
    expected_x = x.clone()
    expected_x[..., 2, 3] = 0
    expected_x[..., 1, 1] = 0
    clean = flow.clone()
    clean[0, :, 2, 3] = 0
    clean[0, :, 1, 1] = 0
    out = softsplat(x, bad, None, "sum")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, softsplat(expected_x, clean, None, "sum"))


def test_out_of_image_corners_dropped_others_kept():
    x = torch.ones(1, 1, 3, 3)
    flow = torch.zeros(1, 2, 3, 3)
    flow[0, 0] = 1.5  # every source moves 1.5 px right: last column leaves, others split
    out = softsplat(x, flow, None, "sum")
    torch.testing.assert_close(out[0, 0, :, 0], torch.zeros(3))
    torch.testing.assert_close(out[0, 0, :, 1], torch.full((3,), 0.5))
    torch.testing.assert_close(out[0, 0, :, 2], torch.full((3,), 1.0))  # 0.5 from col 0 + 0.5 from col 1


def test_avg_suffix_quirk_uses_last_channel():
    torch.manual_seed(2)
    x = torch.rand(2, 3, 4, 5) + 0.5
    flow = torch.randn(2, 2, 4, 5)
    out = softsplat(x, flow, None, "avg-addeps")
    raw = softsplat(x, flow, None, "sum")
    assert out.shape == (2, 2, 4, 5)
    torch.testing.assert_close(out, raw[:, :2] / (raw[:, 2:] + 1e-7))
    assert softsplat(x, flow, None, "avg").shape == x.shape


def test_function_and_module_agree():
    torch.manual_seed(3)
    x, flow, metric = torch.randn(2, 4, 6, 7), torch.randn(2, 2, 6, 7) * 2, torch.randn(2, 1, 6, 7)
    for mode in ("soft", "linear-zeroeps"):
        torch.testing.assert_close(SoftSplat(mode=mode)(x, flow, metric), softsplat(x, flow, metric, mode))
    torch.testing.assert_close(SoftSplat(mode="sum")(x, flow), softsplat(x, flow))


@pytest.mark.parametrize("batch", [1, 2])
def test_batch_samples_independent(batch):
    torch.manual_seed(4)
    x, flow, metric = torch.randn(batch, 3, 5, 6), torch.randn(batch, 2, 5, 6) * 2, torch.randn(batch, 1, 5, 6)
    out = softsplat(x, flow, metric, "soft")
    for i in range(batch):
        torch.testing.assert_close(out[i : i + 1], softsplat(x[i : i + 1], flow[i : i + 1], metric[i : i + 1], "soft"))


def test_bad_inputs_raise():
    x, flow = torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 4)
    with pytest.raises(InputError, match="empty batch"):
        softsplat(x[:0], flow[:0])
    with pytest.raises(InputError, match="unknown mode"):
        softsplat(x, flow, None, "max")
    with pytest.raises(InputError, match="needs a metric"):
        softsplat(x, flow, None, "soft")
    with pytest.raises(InputError, match="takes no metric"):
        softsplat(x, flow, torch.zeros(1, 1, 4, 4), "sum")
    with pytest.raises(InputError, match=r"softsplat flow: expected shape \(1, 2, 4, 4\)"):
        softsplat(x, torch.zeros(1, 2, 4, 5))


def test_bfloat16_close_to_float32():
    torch.manual_seed(5)
    x, flow, metric = torch.rand(1, 3, 8, 8), torch.randn(1, 2, 8, 8), torch.randn(1, 1, 8, 8)
    ref = softsplat(x, flow, metric, "soft")
    out = softsplat(x.bfloat16(), flow.bfloat16(), metric.bfloat16(), "soft")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


def test_gradcheck_float64():
    torch.manual_seed(6)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # keep landing points away from integers, where the bilinear weights have kinks
    flow = (torch.randint(-2, 3, (1, 2, 4, 5)) + 0.2 + 0.6 * torch.rand(1, 2, 4, 5)).double().requires_grad_()
    metric = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, f, m: softsplat(a, f, m, "soft"), (x, flow, metric))
    assert torch.autograd.gradcheck(lambda a, f: softsplat(a, f, None, "sum"), (x, flow))
