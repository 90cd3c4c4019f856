"""Parity of the generator with the official PerVFI code (fixtures: random weights, official keys)."""
from __future__ import annotations

import math

import pytest
import torch

from pervfi_core.generator import CondFlowNet, MultiscaleFuse, VBDecoder

ATOL = 1e-4  # the README's suggested tolerance for PerVFI tensors


def _close(actual, expected, *, atol=ATOL, rtol=0.0, what=""):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


@pytest.fixture(scope="module")
def v00(v00_weights, under):
    fuse = MultiscaleFuse().eval()
    fuse.load_state_dict(under(v00_weights, "multiscaleFuse."))
    flow = CondFlowNet().eval()
    flow.load_state_dict(under(v00_weights, "condFLownet."))
    return fuse, flow


@pytest.fixture(scope="module")
def vb(vb_weights, under):
    dec = VBDecoder().eval()
    dec.load_state_dict(under(vb_weights, "generator."))
    return dec


def _conds(fx):
    return [fx[f"fuse.cond_{lv}"] for lv in range(3)]


def _zs(inputs):
    return [inputs[f"zs.{lv}"] for lv in range(3)]


@pytest.mark.parametrize(
    "module, arch, prefix",
    [
        (MultiscaleFuse, "pervfi_v00", "multiscaleFuse."),
        (CondFlowNet, "pervfi_v00", "condFLownet."),
        (VBDecoder, "pervfi_vb", "generator."),
    ],
)
def test_official_key_layout(module, arch, prefix, official_keys, layout):
    """Every official key (name, shape, dtype) exists and nothing else does."""
    assert layout(module()) == official_keys(arch, prefix)


def test_fuse_matches_official(v00, load_parity):
    fx = load_parity("pervfi_v00_t0.5")
    smasks = [fx["out.smasks.2"], fx["out.smasks.1"], fx["out.smasks.0"]]  # file index 0 = level 2
    blended = [
        fx[f"pyr.warped0_l{lv}"] * (1 - smasks[lv]) + fx[f"pam.out_l{lv}"] * smasks[lv] for lv in range(3)
    ]  # ADM output, Eq. (9)
    with torch.no_grad():
        conds = v00[0](blended)
    for lv, (got, want) in enumerate(zip(conds, _conds(fx))):
        _close(got, want, what=f"cond_{lv}")


@pytest.mark.parametrize("t", ["0.5", "0.25"])
def test_flow_decode_matches_official(v00, load_parity, t):
    fx, inputs = load_parity(f"pervfi_v00_t{t}"), load_parity("pervfi_inputs")
    with torch.no_grad():
        y = v00[1].decode(_conds(fx), _zs(inputs))
    if "flow.decode_out" in fx:
        _close(y, fx["flow.decode_out"], what="flow.decode_out")
    _close((y + 1) / 2, fx["out.pred"], what="out.pred")


def test_flow_encode_matches_official(v00, load_parity):
    fx, inputs = load_parity("pervfi_v00_t0.5"), load_parity("pervfi_inputs")
    enc = load_parity("pervfi_v00_encode_t0.5")
    with torch.no_grad():
        log_p, logdet, zs = v00[1].encode(inputs["gt"] * 2 - 1, _conds(fx))
    _close(log_p, enc["log_p_raw"], atol=0.0, rtol=1e-5, what="log_p_raw")
    _close(logdet, enc["logdet_raw"], atol=0.0, rtol=1e-5, what="logdet_raw")
    for lv, z in enumerate(zs):
        _close(z, enc[f"zs_enc.{lv}"], what=f"zs_enc.{lv}")
    # Eq. (11)-(12) in eval mode: bits per pixel, no dequantisation term
    h, w = inputs["gt"].shape[-2:]
    nll = -(log_p + logdet) / (math.log(2) * h * w)
    _close(nll, enc["nll"], what="nll")


def test_flow_encode_decode_round_trip_official_weights(v00, load_parity):
    """Decoding the standardised encoding of the ground truth gives it back; the official zs
    (flow outputs, not prior-standardised) do not, since decode maps its input through the priors."""
    fx, inputs = load_parity("pervfi_v00_t0.5"), load_parity("pervfi_inputs")
    x = inputs["gt"] * 2 - 1
    with torch.no_grad():
        _, _, eps = v00[1].encode(x, _conds(fx), standardize=True)
        back = v00[1].decode(_conds(fx), eps)
        _, _, zs = v00[1].encode(x, _conds(fx))
        not_back = v00[1].decode(_conds(fx), zs)
    _close(back, x, what="decode(encode(gt, standardize=True))")
    assert (not_back - x).abs().max() > 1e-2  # the random priors are far from N(0, 1)


def test_z_shapes_match_official(v00, load_parity):
    inputs = load_parity("pervfi_inputs")
    assert v00[1].z_shapes(2, 64, 96) == [tuple(z.shape) for z in _zs(inputs)]


@pytest.mark.parametrize("t", ["0.5", "0.25"])
def test_vb_decoder_matches_official(vb, load_parity, t):
    fx = load_parity(f"pervfi_vb_t{t}")
    with torch.no_grad():
        y = vb(_conds(fx))
    _close(y, fx["vb.generator_out"], what="vb.generator_out")
    _close((y + 1) / 2, fx["out.pred"], what="out.pred")
