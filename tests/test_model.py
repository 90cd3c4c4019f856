"""PerVFI model: public API behaviour on a small random config (fast; parity is in test_model_parity)."""
from __future__ import annotations

import pytest
import torch

from pervfi_core import build_model
from pervfi_core.errors import ArchitectureMismatchError, InputError
from pervfi_core.model import SIZE_MULTIPLE, PerVFI
from pervfi_core.pervfi_engine import PerVFIEngine, build as build_from_weights

SMALL = dict(encoder_channels=(8, 16, 24), metric_rows=(16, 16, 16, 16), dcn_groups=(1, 2, 2), n_steps=2,
             coupling_hidden=16, fuse_width=16, fuse_branches=(8, 16, 24))


@pytest.fixture(scope="module")
def v00():
    torch.manual_seed(0)
    return build_model("v00", **SMALL)


@pytest.fixture(scope="module")
def vb():
    torch.manual_seed(0)
    return build_model("vb", **SMALL)


def _inputs(batch=2, height=20, width=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    img0, img1 = torch.rand(batch, 3, height, width, generator=g), torch.rand(batch, 3, height, width, generator=g)
    fflow = torch.randn(batch, 2, height, width, generator=g) * 2
    return img0, img1, fflow, -fflow


def test_properties_and_submodule_names(v00, vb):
    assert isinstance(v00, PerVFI) and (v00.decoder, vb.decoder) == ("cnf", "vb")
    assert SIZE_MULTIPLE == 8 and (v00.arch, vb.arch) == ("pervfi-v00", "pervfi-vb")
    engine = PerVFIEngine(v00)  # the engine properties live in the adapter, not in the paper's network
    assert engine.stochastic and not PerVFIEngine(vb).stochastic and engine.size_multiple == 8
    assert not hasattr(v00, "stochastic") and not hasattr(v00, "info")
    prefixes = {k.split(".")[0] for k in v00.state_dict()}
    assert prefixes == {"featurePyramid", "deformableAlign", "attentionMerge", "multiscaleFuse", "condFLownet"}
    assert "generator" in {k.split(".")[0] for k in vb.state_dict()}
    assert not v00.training


@torch.no_grad()
def test_odd_size_is_padded_and_cropped(v00):
    img0, img1, fflow, bflow = _inputs(height=20, width=30)
    blend = v00.blend(img0, img1, fflow, bflow, 0.5)
    assert blend.size == (20, 30) and blend.padded_size == (24, 32) and blend.batch == 2
    assert [tuple(m.shape) for m in blend.masks] == [(2, 1, 24, 32), (2, 1, 12, 16), (2, 1, 6, 8)]
    assert [tuple(c.shape[-2:]) for c in blend.conds] == [(12, 16), (6, 8), (3, 4)]
    assert tuple(blend.mask().shape) == (2, 1, 20, 30)
    out = v00.decode(blend, tau=0.3, seed=0)
    assert tuple(out.shape) == (2, 3, 20, 30) and out.min() >= 0 and out.max() <= 1


@torch.no_grad()
def test_blend_is_reusable_and_seeded(v00):
    blend = v00.blend(*_inputs(), 0.5)
    conds_before = [c.clone() for c in blend.conds]
    state = torch.get_rng_state()
    a = v00.decode(blend, tau=0.3, seed=7)
    b = v00.decode(blend, tau=0.3, seed=7)
    c = v00.decode(blend, tau=0.3, seed=8)
    d = v00.decode(blend, tau=0.0, seed=7)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is never touched
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)
    assert all(torch.equal(x, y) for x, y in zip(conds_before, blend.conds))
    torch.testing.assert_close(v00.decode(blend, z=v00.sample_z(blend, 0.3, 7)), a, atol=0, rtol=0)


def test_sample_z_matches_global_seed_draws(v00):
    blend = v00.blend(*_inputs(), 0.5)
    zs = v00.sample_z(blend, tau=0.3, seed=1234)
    torch.manual_seed(1234)
    expected = [torch.randn(shape) * 0.3 for shape in v00.z_shapes(blend)]
    assert all(torch.equal(x, y) for x, y in zip(zs, expected))


@torch.no_grad()
def test_per_sample_time_equals_single_time(v00):
    img0, img1, fflow, bflow = _inputs()
    mixed = v00.blend(img0, img1, fflow, bflow, torch.tensor([0.5, 0.25]))
    for i, t in enumerate((0.5, 0.25)):
        single = v00.blend(img0, img1, fflow, bflow, t)
        torch.testing.assert_close(mixed.conds[0][i], single.conds[0][i], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_blend_to_parks_and_decodes(v00):
    blend = v00.blend(*_inputs(), 0.5)
    parked = blend.to(dtype=torch.float64)
    assert all(c.dtype == torch.float64 for c in (*parked.conds, *parked.masks))
    assert parked.size == blend.size and parked.padding == blend.padding and blend.conds[0].dtype == torch.float32
    assert parked.nbytes() == 2 * blend.nbytes()
    torch.testing.assert_close(v00.decode(parked, seed=3), v00.decode(blend, seed=3))  # moved back to the model


@torch.no_grad()
def test_encode_round_trip_small(v00):
    img0, img1, fflow, bflow = _inputs(height=16, width=24)
    blend = v00.blend(img0, img1, fflow, bflow, 0.5)
    gt = (img0 + img1) / 2
    nll, zs = v00.encode(blend, gt)
    assert nll.shape == (2,) and torch.isfinite(nll).all()
    torch.testing.assert_close(v00.decode(blend, z=zs), gt, atol=1e-4, rtol=0)


@torch.no_grad()
def test_vb_is_deterministic_and_has_no_encode(vb):
    blend = vb.blend(*_inputs(), 0.5)
    torch.testing.assert_close(vb.decode(blend, tau=0.9, seed=1), vb.decode(blend, tau=0.1, seed=2), atol=0, rtol=0)
    with pytest.raises(InputError, match="v00"):
        vb.encode(blend, torch.rand(2, 3, 20, 30))


@pytest.mark.parametrize("case", ["size", "channels", "dtype", "nan", "t_range", "empty", "flow_size", "z_shape"])
def test_bad_inputs_raise(v00, case):
    img0, img1, fflow, bflow = _inputs()
    t = 0.5
    if case == "size":
        img1 = img1[..., :-1]
    elif case == "channels":
        img0, img1 = img0[:, :2], img1[:, :2]
    elif case == "dtype":
        img1 = img1.double()
    elif case == "nan":
        img0 = img0.clone()
        img0[0, 0, 0, 0] = float("nan")
    elif case == "t_range":
        t = 1.5
    elif case == "empty":
        img0, img1, fflow, bflow = img0[:0], img1[:0], fflow[:0], bflow[:0]
    elif case == "flow_size":
        fflow = fflow[..., :-2]
    with pytest.raises(InputError):
        blend = v00.blend(img0, img1, fflow, bflow, t)
        if case == "z_shape":
            v00.decode(blend, z=[torch.zeros(2, 6, 4, 4)] * 3)


def test_wrong_architecture_raises(v00, vb):
    """The spec builds the network the weights describe (decoder and widths read from the shapes); a config
    carried in metadata that does not fit the weights is refused naming the configuration."""
    from pervfi_core.configs import config_metadata
    from pervfi_core.errors import WeightsError
    from pervfi_core.registry import detect

    assert build_from_weights(vb.state_dict()).network.arch == "pervfi-vb"
    assert build_from_weights(v00.state_dict()).network.config == v00.config
    other = build_model("v00", **{**SMALL, "n_steps": 3})
    with pytest.raises(ArchitectureMismatchError, match="do not fit.*n_steps"):
        build_from_weights(v00.state_dict(), config_metadata(other, "mine"))
    with pytest.raises(WeightsError, match="unrecognised"):
        detect({"encoder.weight": torch.zeros(1)})


def test_unknown_config_raises():
    with pytest.raises(InputError, match="config"):
        build_model("v99")


def test_training_free_base_starts_at_the_training_free_frame_and_round_trips():
    """base="training-free": an untrained vb model returns exactly the training-free frame (its tail
    starts at zero), at any size; the flow model's decode(encode(gt)) still gives gt back."""
    from pervfi_core.training_free import TrainingFreeVFI

    img0, img1, fflow, bflow = _inputs(height=21, width=30)
    t = torch.tensor([0.3, 0.5])
    torch.manual_seed(0)
    vb = build_model("vb", **SMALL, base="training-free")
    flow = build_model("v00", **SMALL, base="training-free")
    assert vb.config["base"] == "training-free" and "base" not in build_model("vb", **SMALL).config
    with torch.no_grad():
        expected = TrainingFreeVFI(trust_gain=0)(img0, img1, fflow, bflow, t)  # the base residual models train on
        torch.testing.assert_close(vb(img0, img1, fflow, bflow, t), expected, atol=1e-6, rtol=0)
        blend = flow.blend(img0, img1, fflow, bflow, t)
        assert blend.frame is not None and blend.nbytes() > build_model("v00", **SMALL).blend(
            img0, img1, fflow, bflow, t).nbytes()
        gt = img0 * 0.5 + img1 * 0.5
        _, zs = flow.encode(blend, gt)
        torch.testing.assert_close(flow.decode(blend, z=zs), gt, atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="base"):
        build_model("vb", base="rife")


@pytest.mark.parametrize("config", ["residual-cnf", "residual-cnf-wide"])
def test_residual_cnf_configs_start_at_the_motion_trust_frame_and_export_under_10_mb(config, tmp_path):
    """The τ-capable residual configs, the shipped narrow one and the wide one bench/device_train.sh
    trains: untrained, τ = 0 gives the training-free engine's frame (motion trust on), so training
    starts from today's default; the exported weights stay under the 10 MB a shipped file may take."""
    from pervfi_core.configs import BASES
    from pervfi_core.train.cli import export
    from pervfi_core.training_free import TrainingFreeVFI

    img0, img1, fflow, bflow = _inputs(height=24, width=40)
    model = build_model(config)
    assert model.config["base"] == "training-free-trust"
    with torch.no_grad():
        expected = TrainingFreeVFI(**BASES["training-free-trust"])(img0, img1, fflow, bflow, 0.5)
        torch.testing.assert_close(model(img0, img1, fflow, bflow, 0.5, tau=0), expected, atol=1e-6, rtol=0)
    assert export(model, config, tmp_path / "w.safetensors").stat().st_size < 10_000_000  # what --export writes
