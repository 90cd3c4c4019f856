"""GMFlow against the official implementation's outputs (random weights, official keys)."""
import json

import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.flow.gmflow import GMFlow, build_gmflow
from pervfi_core.flow.gmflow_matching import local_matching_flow
from pervfi_core.flow.gmflow_transformer import merge_windows, split_windows

FLOW_ATOL = 2e-2  # px; the official float32 path itself differs from float64 by 3.7e-3


@pytest.fixture(scope="module")
def gmflow(parity_dir):
    net = build_gmflow("gmflow").eval()
    ckpt = torch.load(parity_dir / "weights" / "gmflow.pth", weights_only=True)
    net.load_state_dict(ckpt["model"], strict=True)
    return net


def test_keys_match_official_layout(parity_dir):
    expected = json.loads((parity_dir / "weights" / "keys_gmflow.json").read_text())
    sd = build_gmflow("gmflow").state_dict()
    assert list(sd) == list(expected)
    assert {k: [list(v.shape), "float32"] for k, v in sd.items()} == expected


def test_refine_config_layout():
    sd = build_gmflow("gmflow-refine").state_dict()
    assert len(sd) == 124 and sum(v.numel() for v in sd.values()) == 4_716_720
    assert sd["backbone.trident_conv.weight"].shape == (128, 128, 3, 3)
    assert sd["upsampler.2.weight"].shape == (144, 256, 1, 1)


def test_forward_intermediates_and_flows(gmflow, load_parity):
    inp, ref = load_parity("flow_inputs"), load_parity("gmflow_outputs")
    with torch.no_grad():
        rec = gmflow.trace(inp["img0"] * 255, inp["img1"] * 255)  # the plain one-direction path
        both = gmflow(inp["img0"] * 255, inp["img1"] * 255, bidirectional=True)  # the shared pass
    for key in ("backbone.out", "transformer.feature0", "transformer.feature1"):
        torch.testing.assert_close(rec[key], ref[f"fwd.{key}"], atol=1e-3, rtol=1e-4)
    for key in ("flow_lowres_matching", "flow_lowres_propagated"):
        torch.testing.assert_close(rec[key], ref[f"fwd.{key}"], atol=FLOW_ATOL / 8, rtol=0)
    torch.testing.assert_close(rec["flow"], ref["fwd.flow"], atol=FLOW_ATOL, rtol=0)
    # bidirectional=True must equal two separate official calls, (img0, img1) and (img1, img0)
    torch.testing.assert_close(both[:2], ref["fwd.flow"], atol=FLOW_ATOL, rtol=0)
    torch.testing.assert_close(both[2:], ref["bwd.flow"], atol=FLOW_ATOL, rtol=0)


def test_refine_bidirectional_equals_two_calls():
    torch.manual_seed(0)
    net = GMFlow(num_scales=2, upsample_factor=4, num_transformer_layers=1, attn_splits=(2, 2),
                 corr_radius=(-1, 2), prop_radius=(-1, 1)).eval()
    a, b = torch.rand(1, 3, 32, 64) * 255, torch.rand(1, 3, 32, 64) * 255
    with torch.no_grad():
        both = net(a, b, bidirectional=True)
        torch.testing.assert_close(both[:1], net(a, b), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(both[1:], net(b, a), atol=1e-4, rtol=1e-4)


def test_windows_round_trip_and_order():
    x = torch.arange(2 * 4 * 6).float().view(2, 4, 6, 1)
    win = split_windows(x, 2)
    assert win.shape == (8, 2, 3, 1)
    assert torch.equal(win[1, :, :, 0], x[0, :2, 3:, 0])  # window (row 0, col 1) of sample 0
    assert torch.equal(merge_windows(win, 2), x)


def test_local_matching_recovers_an_integer_shift():
    # features that are one-hot per position: the best local match is exact
    f1 = torch.randn(1, 16, 8, 10) * 10
    f0 = torch.roll(f1, shifts=(-1, 2), dims=(2, 3))  # f0(y, x) = f1(y + 1, x - 2): flow (dx, dy) = (-2, +1)
    flow = local_matching_flow(f0, f1, 2)
    inner = flow[..., 1:-2, 2:-2]
    torch.testing.assert_close(inner[:, 0], torch.full_like(inner[:, 0], -2.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(inner[:, 1], torch.full_like(inner[:, 1], 1.0), atol=1e-3, rtol=0)


def test_size_multiple_and_bad_options():
    assert build_gmflow("gmflow").size_multiple == 16
    assert build_gmflow("gmflow-refine").size_multiple == 32
    with pytest.raises(InputError):
        build_gmflow("gmflow-huge")
    with pytest.raises(InputError):
        build_gmflow("gmflow")(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), attn_splits=[2, 8])
