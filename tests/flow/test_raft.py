"""RAFT / RAFT-small: official key layout, parity with the official outputs, batching, input errors.

The parity numbers come from the official RAFT code with random weights (``../shared/fixtures/parity``,
see its README, "Flow estimators"); tests that need them skip when the folder is absent.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pervfi_core.errors import InputError
from pervfi_core.flow.raft import RAFT, convex_upsample, correlation_bytes
from pervfi_core.flow.raft_corr import CorrBlock, corr_lookup, correlation_pyramid

VARIANTS = {"raft": False, "raft_small": True}
FLOW_ATOL = 1e-3  # px, the README's suggested tolerance for RAFT flows


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, parity_dir):
    """(name, model with the fixture weights loaded strictly, fixture outputs)."""
    name = request.param
    model = RAFT(small=VARIANTS[name]).eval()
    model.load_state_dict(load_file(str(parity_dir / "weights" / f"{name}.safetensors")), strict=True)
    return name, model, load_file(str(parity_dir / f"{name}_outputs.safetensors"))


@pytest.fixture(scope="module")
def images(parity_dir):
    """The fixture pair (2, 3, 128, 192) scaled to 0..255 as the official call did."""
    inputs = load_file(str(parity_dir / "flow_inputs.safetensors"))
    return inputs["img0"] * 255, inputs["img1"] * 255


def intermediate_atol(tolerances, name: str, key: str) -> float:
    """10× the measured float32-vs-float64 noise of the official code, at least 1e-4."""
    noise = tolerances[f"{name}_outputs.safetensors"][key].get("fp64_max_abs", 0.0)
    return max(10 * noise, 1e-4)


@pytest.mark.parametrize("name, small", list(VARIANTS.items()))
def test_state_dict_layout_is_official(parity_dir, name, small):
    expected = json.loads((parity_dir / "weights" / f"keys_{name}.json").read_text())
    state = RAFT(small=small).state_dict()
    assert list(state) == list(expected)  # same keys, same (official) order
    for key, (shape, dtype) in expected.items():
        assert list(state[key].shape) == shape, key
        assert str(state[key].dtype) == f"torch.{dtype}", key


def test_strided_block_norm_is_aliased():
    cnet = RAFT(small=False).cnet
    for stage in (cnet.layer2, cnet.layer3):
        assert stage[0].norm3 is stage[0].downsample[1]


@pytest.fixture(scope="module")
def traced(variant, images):
    """``model.trace`` of the fixture pair (forward direction), computed once per variant."""
    with torch.no_grad():
        return variant[1].trace(*images, iters=12)


def test_forward_intermediates_match_official(variant, traced, tolerances):
    name, _, expected = variant
    got = traced
    keys = [k for k in expected if k.startswith("fwd.")]
    assert len(keys) == (19 if name == "raft" else 18)  # every stored intermediate is compared
    assert set(got) == {k.removeprefix("fwd.") for k in keys}
    for key in keys:
        atol = FLOW_ATOL if key == "fwd.flow" else intermediate_atol(tolerances, name, key)
        torch.testing.assert_close(got[key.removeprefix("fwd.")], expected[key], atol=atol, rtol=0, msg=key)


def test_batched_directions_match_two_calls_and_official(variant, traced, images):
    _, model, expected = variant
    img0, img1 = images
    with torch.no_grad():
        both = model(torch.cat([img0, img1]), torch.cat([img1, img0]), iters=12)
        bwd = model(img1, img0, iters=12)
    fwd = traced["flow"]  # the plain forward call with record-keeping
    torch.testing.assert_close(both, torch.cat([fwd, bwd]), atol=1e-4, rtol=0)
    torch.testing.assert_close(both[:2], expected["fwd.flow"], atol=FLOW_ATOL, rtol=0)
    torch.testing.assert_close(both[2:], expected["bwd.flow"], atol=FLOW_ATOL, rtol=0)


def test_float64_model_is_within_official_float32_noise(parity_dir, images, tolerances):
    """In float64 the flow sits within the official float32-vs-float64 distance of the fixture.

    RAFT-small only: RAFT large in float64 takes ~10 s on a CPU; both share this code path.
    """
    noise = tolerances["raft_small_outputs.safetensors"]["fwd.flow"]["fp64_max_abs"]
    expected = load_file(str(parity_dir / "raft_small_outputs.safetensors"))["fwd.flow"]
    model = RAFT(small=True).eval().double()
    model.load_state_dict(load_file(str(parity_dir / "weights" / "raft_small.safetensors")), strict=True)
    with torch.no_grad():
        flow = model(images[0].double(), images[1].double(), iters=12)
    assert flow.dtype == torch.float64
    assert (flow - expected.double()).abs().max() <= 2 * noise


def test_infer_closure_with_centred_zero_padding(variant, parity_dir):
    """The official flow infer() on 124x180: centred zero padding to 128x184, two calls, crop."""
    _, model, expected = variant
    inputs = load_file(str(parity_dir / "flow_inputs.safetensors"))
    img0, img1 = (inputs[k][..., :124, :180] * 255 for k in ("img0", "img1"))
    pad = (2, 2, 2, 2)  # left, right, top, bottom
    with torch.no_grad():
        fflow = model(F.pad(img0, pad), F.pad(img1, pad))[..., 2:-2, 2:-2]
        bflow = model(F.pad(img1, pad), F.pad(img0, pad))[..., 2:-2, 2:-2]
    torch.testing.assert_close(fflow, expected["infer124x180.fflow"], atol=FLOW_ATOL, rtol=0)
    torch.testing.assert_close(bflow, expected["infer124x180.bflow"], atol=FLOW_ATOL, rtol=0)


def test_official_pth_container_loads_after_stripping_module_prefix(parity_dir, images):
    checkpoint = torch.load(parity_dir / "weights" / "raft_small.pth", map_location="cpu", weights_only=True)
    assert all(key.startswith("module.") for key in checkpoint)
    state = {key.replace("module.", "", 1): value for key, value in checkpoint.items()}
    reference = load_file(str(parity_dir / "weights" / "raft_small.safetensors"))
    assert state.keys() == reference.keys()
    for key, value in state.items():
        assert torch.equal(value, reference[key]), key
    from_pth, from_safetensors = RAFT(small=True).eval(), RAFT(small=True).eval()
    from_pth.load_state_dict(state, strict=True)
    from_safetensors.load_state_dict(reference, strict=True)
    with torch.no_grad():
        assert torch.equal(from_pth(*images, iters=3), from_safetensors(*images, iters=3))


def test_corr_lookup_window_has_x_as_slow_index():
    torch.manual_seed(0)
    radius, h, w = 2, 6, 7
    fmap1, fmap2 = torch.randn(1, 8, h, w), torch.randn(1, 8, h, w)
    pyramid = correlation_pyramid(fmap1, fmap2, levels=1)
    volume = pyramid[0].reshape(h, w, h, w)  # [y1, x1, y2, x2]
    coords = torch.zeros(1, 2, h, w)
    coords[:, 0], coords[:, 1] = 3.0, 2.0  # every pixel looks around (x, y) = (3, 2)
    out = corr_lookup(pyramid, coords, radius=radius)
    assert out.shape == (1, (2 * radius + 1) ** 2, h, w)
    side = 2 * radius + 1
    for i in range(side):
        for j in range(side):
            x, y = 3 + i - radius, 2 + j - radius
            inside = 0 <= x < w and 0 <= y < h
            want = volume[:, :, y, x] if inside else torch.zeros(h, w)
            torch.testing.assert_close(out[0, i * side + j], want, atol=1e-5, rtol=1e-5)


def test_corr_block_module_agrees_with_functions():
    torch.manual_seed(0)
    fmap1, fmap2 = torch.randn(2, 16, 16, 16), torch.randn(2, 16, 16, 16)
    coords = torch.rand(2, 2, 16, 16) * 15
    block = CorrBlock(levels=4, radius=3)
    assert block.planes == 4 * 7**2
    pyramid = block.pyramid(fmap1, fmap2)
    assert torch.equal(block(pyramid, coords), corr_lookup(correlation_pyramid(fmap1, fmap2, levels=4), coords, radius=3))


def test_convex_upsample_with_one_hot_centre_weights_replicates_the_coarse_flow():
    torch.manual_seed(0)
    flow = torch.randn(2, 2, 3, 4)
    logits = torch.full((2, 9, 8, 8, 3, 4), -1e4)
    logits[:, 4] = 0.0  # neighbour 4 = the centre of the 3x3 window
    up = convex_upsample(flow, logits.reshape(2, 9 * 64, 3, 4))
    expected = 8 * flow.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
    torch.testing.assert_close(up, expected)


def test_correlation_bytes_matches_the_documented_sizes():
    assert correlation_bytes(480, 640) == 4 * 4800 * (4800 + 1200 + 300 + 70)  # pooling floors odd sizes
    assert round(correlation_bytes(1088, 1920) / 1e9, 1) == 5.7


@pytest.mark.parametrize(
    "height, width, match",
    [(120, 192, "at least 128"), (128, 120, "at least 128"), (64, 96, "at least 128"), (130, 192, "divisible by 8")],
)
def test_bad_sizes_raise_input_error(height, width, match):
    model = RAFT(small=True).eval()
    image = torch.zeros(1, 3, height, width)
    with pytest.raises(InputError, match=match):
        model(image, image)


def test_mismatched_images_and_bad_iters_raise_input_error():
    model = RAFT(small=True).eval()
    with pytest.raises(InputError, match="same shape"):
        model(torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 136))
    with pytest.raises(InputError, match="iters"):
        model(torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128), iters=0)
