"""ASB stages one by one against the official fixtures (inputs taken from the fixtures themselves).

Tolerances: 10x the official float32-vs-float64 (or splat summation-order) noise from
tolerances.json; binary masks identical.
"""
from __future__ import annotations

import pytest
import torch

from pervfi_core.asb import AttentionMerge, DeformableAlign, FeaturePyramid, forward_warp

LEVELS = range(3)


def _close(actual, expected, tol, name):
    err = (actual - expected).abs().max().item()
    assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module")
def inputs(load_parity):
    return load_parity("pervfi_inputs")


def test_pyramid_and_softmetric(load_parity, inputs, sub_state_dict, fp64_tolerance):
    ref = load_parity("pervfi_v00_t0.5")
    pyramid = FeaturePyramid().eval()
    pyramid.load_state_dict(sub_state_dict("v00", "featurePyramid."))
    assert pyramid.level_channels == (35, 64, 96)
    with torch.no_grad():
        enc0, enc1, z01, z10 = pyramid(inputs["img0"] * 2 - 1, inputs["img1"] * 2 - 1, inputs["fflow"], inputs["bflow"])
    for level in LEVELS:
        for i, enc in ((0, enc0), (1, enc1)):
            name = f"pyr.enc{i}_l{level}"
            _close(enc[level], ref[name], fp64_tolerance("pervfi_v00_t0.5", name), name)
    for z, name in ((z01, "pyr.softmetric_raw_01"), (z10, "pyr.softmetric_raw_10")):
        _close(z, ref[name], fp64_tolerance("pervfi_v00_t0.5", name), name)


@pytest.mark.parametrize("t", [0.5, 0.25])
def test_forward_warp_and_holes(load_parity, inputs, fp64_tolerance, t):
    file = f"pervfi_v00_t{t}"
    ref, full = load_parity(file), load_parity("pervfi_v00_t0.5")  # the encoder output does not depend on t
    warped = forward_warp([full[f"pyr.enc0_l{lv}"] for lv in LEVELS], inputs["fflow"], inputs["bflow"],
                          ref["pyr.softmetric_raw_01"], ref["pyr.softmetric_raw_10"], torch.full((2,), t))
    _close(warped.flow_t1, ref["pyr.Ft2"], fp64_tolerance(file, "pyr.Ft2"), "pyr.Ft2")
    for level in LEVELS:
        for actual, name in ((warped.flows_0t[level], f"pyr.F1t_l{level}"),
                             (warped.metrics[level], f"pyr.splat_metric_l{level}")):
            _close(actual, ref[name], fp64_tolerance(file, name), name)
        assert torch.equal(warped.holes[level], ref[f"pyr.bmask_l{level}"]), f"bmask_l{level}"
        if f"pyr.warped0_l{level}" in ref:
            name = f"pyr.warped0_l{level}"
            _close(warped.features[level], ref[name], fp64_tolerance(file, name), name)
    assert warped.holes[0].sum() > 0  # the fixture has holes: the test is not vacuous


def test_forward_warp_per_sample_time(load_parity, inputs):
    """A (B,) t with different values equals two single-t calls."""
    full = load_parity("pervfi_v00_t0.5")
    enc0 = [full[f"pyr.enc0_l{lv}"] for lv in LEVELS]
    args = (inputs["fflow"], inputs["bflow"], full["pyr.softmetric_raw_01"], full["pyr.softmetric_raw_10"])
    mixed = forward_warp(enc0, *args, torch.tensor([0.5, 0.25]))
    for i, t in enumerate((0.5, 0.25)):
        single = forward_warp(enc0, *args, torch.full((2,), t))
        torch.testing.assert_close(mixed.features[0][i], single.features[0][i])
        torch.testing.assert_close(mixed.flow_t1[i], single.flow_t1[i])


def test_pam_levels_and_dcn(load_parity, sub_state_dict, fp64_tolerance):
    ref = load_parity("pervfi_v00_t0.5")
    pam = DeformableAlign().eval()
    pam.load_state_dict(sub_state_dict("v00", "deformableAlign."))
    captured = {}
    for level in LEVELS:  # capture the DCN outputs (before feat_conv) with hooks
        pam.deform_conv[f"l{level}"].register_forward_hook(lambda m, i, o, lv=level: captured.__setitem__(lv, o))
    pam.deform_conv["l2"].conv_offset.register_forward_hook(lambda m, i, o: captured.__setitem__("raw", o))
    with torch.no_grad():
        out = pam([ref[f"pyr.warped0_l{lv}"] for lv in LEVELS], [ref[f"pyr.enc1_l{lv}"] for lv in LEVELS],
                  [ref[f"pyr.bmask_l{lv}"] for lv in LEVELS], ref["pyr.Ft2"])
    _close(captured["raw"], ref["pam.dcn_offset_raw_l2"], fp64_tolerance("pervfi_v00_t0.5", "pam.dcn_offset_raw_l2"),
           "pam.dcn_offset_raw_l2")
    for level in LEVELS:
        for actual, name in ((captured[level], f"pam.dcn_out_l{level}"), (out[level], f"pam.out_l{level}")):
            _close(actual, ref[name], fp64_tolerance("pervfi_v00_t0.5", name), name)


def test_adm_masks_and_blend(load_parity, sub_state_dict, fp64_tolerance):
    ref = load_parity("pervfi_v00_t0.5")
    adm = AttentionMerge().eval()
    adm.load_state_dict(sub_state_dict("v00", "attentionMerge."))
    warped0 = [ref[f"pyr.warped0_l{lv}"] for lv in LEVELS]
    aligned = [ref[f"pam.out_l{lv}"] for lv in LEVELS]
    holes = [ref[f"pyr.bmask_l{lv}"] for lv in LEVELS]
    state = torch.get_rng_state()
    with torch.no_grad():
        blended, masks = adm(warped0, aligned, holes)
    assert torch.equal(state, torch.get_rng_state())  # eval: no noise, no RNG draw
    for level in LEVELS:
        name = f"out.smasks.{2 - level}"  # the official list is coarsest first
        _close(masks[level], ref[name], fp64_tolerance("pervfi_v00_t0.5", name), name)
        expected = warped0[level] * (1 - ref[name]) + aligned[level] * ref[name]  # Eq. (9)
        torch.testing.assert_close(blended[level], expected, atol=1e-5, rtol=0)
        assert masks[level].max() > 0.3  # holes at every level at t=0.5


def test_adm_mask_zero_without_holes_and_noise_in_train():
    torch.manual_seed(0)
    adm = AttentionMerge(channels=(4, 6, 8))
    feats0 = [torch.randn(1, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate((4, 6, 8))]
    feats1 = [torch.randn_like(f) for f in feats0]
    holes = [torch.zeros_like(f[:, :1]) for f in feats0]
    adm.eval()
    blended, masks = adm(feats0, feats1, holes)
    for f0, b, m in zip(feats0, blended, masks):
        assert (m == 0).all()
        assert torch.equal(b, f0)  # frame 0 passes unchanged where no hole is near
    adm.train()
    _, noisy = adm(feats0, feats1, holes)
    assert all((m != 0).any() and m.abs().max() <= 0.005 for m in noisy)
