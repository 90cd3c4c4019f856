"""The estimator wrapper: checks, padding, both directions in one batch, cropping, devices, dtypes."""
import pytest
import torch
from torch import nn

from pervfi_core.errors import InputError
from pervfi_core.engines import load_estimator
from pervfi_core.flow import build_estimator
from pervfi_core.flow.base import NetworkEstimator


class PositionNet(nn.Module):
    """Records its inputs; returns, as 'flow', the pixel position (x, y) in the padded image
    plus the mean of image2 (to tell the directions apart)."""

    def forward(self, image1, image2, **kw):
        self.seen = (image1.clone(), image2.clone(), kw)
        b, _, h, w = image1.shape
        ys, xs = torch.meshgrid(torch.arange(h, dtype=image1.dtype), torch.arange(w, dtype=image1.dtype), indexing="ij")
        pos = torch.stack([xs, ys]).expand(b, 2, h, w)
        return pos + image2.mean(dim=(1, 2, 3)).view(b, 1, 1, 1) * 0


def _estimator(**kw):
    net = PositionNet()
    return NetworkEstimator(net, name="fake", **kw), net


@pytest.mark.parametrize("size", [(37, 53), (5, 7), (128, 136)])
def test_pads_centred_and_crops_back(size):
    est, net = _estimator(size_multiple=8, min_size=128)
    img0, img1 = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    fflow, bflow = est(img0, img1)
    assert fflow.shape == bflow.shape == (2, 2, *size)
    x0, x1, _ = net.seen
    ph, pw = x0.shape[-2:]
    assert ph % 8 == 0 and pw % 8 == 0 and ph >= 128 and pw >= 128
    top, left = (ph - size[0]) // 2, (pw - size[1]) // 2
    assert fflow[0, 0, 0, 0] == left and fflow[0, 1, 0, 0] == top  # crop taken at the centred offset
    # one batch: (img0, img1) then (img1, img0), scaled to 0..255, zero padding
    torch.testing.assert_close(x0[:2, :, top : top + size[0], left : left + size[1]], img0 * 255)
    torch.testing.assert_close(x0[2:, :, top : top + size[0], left : left + size[1]], img1 * 255)
    torch.testing.assert_close(x1[:2], x0[2:])
    if top:
        assert x0[..., :top, :].abs().sum() == 0


def test_bidirectional_option_is_used_instead_of_batching():
    class Both(PositionNet):
        def forward(self, image1, image2, *, bidirectional=False):
            assert bidirectional and image1.shape[0] == 1
            return torch.cat([torch.ones(1, 2, *image1.shape[-2:]), -torch.ones(1, 2, *image1.shape[-2:])])

    est = NetworkEstimator(Both(), name="both", size_multiple=16, bidirectional_option="bidirectional")
    fflow, bflow = est(torch.rand(1, 3, 20, 30), torch.rand(1, 3, 20, 30))
    assert (fflow == 1).all() and (bflow == -1).all() and fflow.shape == (1, 2, 20, 30)


def test_max_side_estimates_smaller_and_rescales_the_flow():
    class Const(nn.Module):
        def forward(self, a, b):
            self.size = a.shape[-2:]
            return torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).expand(a.shape[0], 2, *a.shape[-2:])

    net = Const()
    est = NetworkEstimator(net, name="c", size_multiple=1, max_side=48)
    fflow, _ = est(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96))
    assert tuple(net.size) == (32, 48) and fflow.shape == (1, 2, 64, 96)
    torch.testing.assert_close(fflow[0, :, 10, 10], torch.tensor([2.0, 4.0]))


@pytest.mark.parametrize("channels, hint", [(1, "grayscale"), (4, "alpha"), (2, "3 channels")])
def test_channel_errors_say_how_to_convert(channels, hint):
    est, _ = _estimator(size_multiple=8)
    with pytest.raises(InputError, match=hint):
        est(torch.rand(1, channels, 16, 16), torch.rand(1, channels, 16, 16))


def test_other_input_errors():
    est, _ = _estimator(size_multiple=8)
    with pytest.raises(InputError, match="divide 8-bit data by 255"):
        est(torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 3, 16, 16) * 255)
    with pytest.raises(InputError, match="same shape"):
        est(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 24))
    with pytest.raises(InputError, match="floating-point"):
        est(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def test_dtype_handling():
    est, net = _estimator(size_multiple=8)
    est.network.register_buffer("anchor", torch.zeros(1))  # gives the estimator a dtype/device
    est = est.to(torch.float64)
    fflow, _ = est(torch.rand(1, 3, 16, 16, dtype=torch.float16), torch.rand(1, 3, 16, 16, dtype=torch.float16))
    assert net.seen[0].dtype == torch.float64 and fflow.dtype == torch.float32


def test_gmflow_estimator_matches_official_infer_on_124x180(parity_dir, load_parity):
    """The official infer(): x255, centred zero padding to 16 ((6,6,2,2) -> 128x192), two calls, crop."""
    ref = load_parity("gmflow_outputs")
    inp = load_parity("flow_inputs")
    est = load_estimator("gmflow", checkpoint=str(parity_dir / "weights" / "gmflow.pth"))
    assert est.name == "gmflow"
    fflow, bflow = est(inp["img0"][..., :124, :180], inp["img1"][..., :124, :180])
    torch.testing.assert_close(fflow, ref["infer124x180.fflow"], atol=2e-2, rtol=0)
    torch.testing.assert_close(bflow, ref["infer124x180.bflow"], atol=2e-2, rtol=0)


def test_raft_small_estimator_matches_official_infer_on_124x180(parity_dir, load_parity):
    ref = load_parity("raft_small_outputs")
    inp = load_parity("flow_inputs")
    est = load_estimator("raft-small", checkpoint=str(parity_dir / "weights" / "raft_small.pth"))
    fflow, bflow = est(inp["img0"][..., :124, :180], inp["img1"][..., :124, :180])
    torch.testing.assert_close(fflow, ref["infer124x180.fflow"], atol=1e-3, rtol=0)
    torch.testing.assert_close(bflow, ref["infer124x180.bflow"], atol=1e-3, rtol=0)


@pytest.mark.parametrize("name, size", [("gmflow", (9, 13)), ("gmflow-refine", (21, 35)), ("raft-small", (20, 30))])
def test_tiny_frames_give_finite_flow(name, size):
    from pervfi_core.flow.gmflow import build_gmflow
    from pervfi_core.flow.raft import RAFT

    net = RAFT(small=True) if name == "raft-small" else build_gmflow(name)
    est = build_estimator(name, weights=net.state_dict())
    fflow, bflow = est(torch.rand(1, 3, *size), torch.rand(1, 3, *size))
    assert fflow.shape == (1, 2, *size) and torch.isfinite(fflow).all() and torch.isfinite(bflow).all()


def test_gmflow_refine_plan_follows_the_frame_size():
    from pervfi_core.flow.gmflow import build_gmflow
    from pervfi_core.flow.gmflow_estimator import GMFlowEstimator

    est = GMFlowEstimator(build_gmflow("gmflow-refine"), name="gmflow-refine")
    assert est.plan(480, 640) == (32, {"attn_splits": (2, 8)})
    assert est.plan(300, 400) == (16, {"attn_splits": (2, 4)})
    assert est.plan(100, 150) == (16, {"attn_splits": (2, 2)})
    single = GMFlowEstimator(build_gmflow("gmflow"), name="gmflow")
    assert single.plan(480, 640) == (16, {})  # the official single-scale call is never changed


def test_gmflow_refuses_bfloat16():
    from pervfi_core.flow.gmflow import build_gmflow
    from pervfi_core.flow.gmflow_estimator import GMFlowEstimator

    est = GMFlowEstimator(build_gmflow("gmflow"), name="gmflow").to(torch.bfloat16)
    with pytest.raises(InputError, match="float16"):
        est(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
