import json
import math

import pytest
import torch

from pervfi_core import build_model
from pervfi_core.train.data import SyntheticTriplets
from pervfi_core.train.loop import TrainConfig, train
from pervfi_core.train.losses import dequantize, latent_like, pervfi_loss

TINY = dict(encoder_channels=(13, 16, 16), metric_rows=(16, 8, 8, 8), dcn_groups=(2, 2, 2), n_steps=2,
            coupling_hidden=8, fuse_width=8, fuse_branches=(8, 8, 8))


def _photos():
    g = torch.Generator().manual_seed(0)
    return [torch.nn.functional.interpolate(torch.rand(1, 3, 24, 24, generator=g), size=(96, 96), mode="bilinear")[0]
            for _ in range(3)]


def _zero_flows(batch, indices):
    b, _, h, w = batch["img0"].shape
    z = torch.zeros(b, 2, h, w, device=batch["img0"].device)
    return z, z


def _model(decoder="v00"):
    torch.manual_seed(123)
    return build_model(decoder, **TINY)


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    ds = SyntheticTriplets(_photos(), length=2, size=(32, 32), max_shift=3.0)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("img0", "gt", "img1", "t")}
    model = _model().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        return pervfi_loss(model, batch, _zero_flows(batch, None), perceptual=None,
                           generator=torch.Generator().manual_seed(5))[0]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())


def test_vb_loss_is_l1_plus_perceptual():
    ds = SyntheticTriplets(_photos(), length=1, size=(16, 16))
    batch = {k: ds[0][k][None] for k in ("img0", "gt", "img1", "t")}
    model = _model("vb")
    perc = lambda a, b: (a - b).pow(2).mean((1, 2, 3))  # noqa: E731
    loss, logs = pervfi_loss(model, batch, _zero_flows(batch, None), perceptual=perc, mu=0.5)
    assert abs(float(loss.detach()) - (logs["l1"] + 0.5 * logs["perceptual"])) < 1e-6


def test_matched_latents_have_the_encoded_statistics():
    zs = [torch.randn(2, 6, 40, 40) * 0.5 + 1.0, torch.randn(2, 12, 20, 20) * 0.5 + 1.0]
    out = latent_like(zs, torch.Generator().manual_seed(0))
    flat = torch.cat([z.flatten(1) for z in out], 1)
    assert [z.shape for z in out] == [z.shape for z in zs]
    assert torch.allclose(flat.mean(1), torch.ones(2), atol=0.02)
    assert torch.allclose(flat.std(1), torch.full((2,), 0.5), atol=0.02)


@pytest.mark.parametrize("decoder", ["v00", "vb"])  # vb: the ADM training noise reaches the loss at once
def test_resume_reproduces_the_next_step_exactly(tmp_path, decoder):
    ds = SyntheticTriplets(_photos(), length=6, size=(16, 16), max_shift=2.0)
    cfg = TrainConfig(steps=3, batch_size=2, val_fraction=0.2, val_every=100, ckpt_every=1, lr=1e-3)
    straight = train(_model(decoder), ds, cfg, tmp_path / "a", flows=_zero_flows)
    cfg_first = TrainConfig(**{**cfg.__dict__, "steps": 2})
    train(_model(decoder), ds, cfg_first, tmp_path / "b", flows=_zero_flows)
    torch.manual_seed(999)  # whatever the caller's RNG state, the checkpoint restores it
    resumed = train(_model(decoder), ds, cfg, tmp_path / "b", flows=_zero_flows)  # picks up last.pt at step 2
    assert [r["step"] for r in resumed] == [3]
    assert resumed[0]["loss"] == straight[2]["loss"]
    assert resumed[0]["val_psnr"] == straight[2]["val_psnr"]
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]


def test_loss_nll_equals_the_analytic_value_of_an_identity_flow():
    """Fresh flow layers (zero couplings and priors, ActNorm at loc 0 / log-scale 0, orthogonal 1x1
    convs) preserve norms, so the continuous NLL of x = 2(gt + u) - 1 is D/2·ln 2π + ½‖x‖² nats, and the
    logged discrete NLL adds the bin volume (Eq. 12): 3·log2(256/2) bits per pixel."""
    model = _model()
    for name, buf in model.condFLownet.named_buffers():
        if name.endswith("initialized"):
            buf.fill_(1)
    ds = SyntheticTriplets(_photos(), length=2, size=(16, 24), max_shift=2.0)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) * (0.98 if k == "gt" else 1) for k in ("img0", "gt", "img1", "t")}
    _, logs = pervfi_loss(model, batch, _zero_flows(batch, None), perceptual=None, generator=torch.Generator().manual_seed(3))
    x = dequantize(batch["gt"], torch.Generator().manual_seed(3)) * 2 - 1  # the same noise draw
    nats = x[0].numel() / 2 * math.log(2 * math.pi) + 0.5 * (x**2).sum(dim=(1, 2, 3))
    expected = nats / (math.log(2) * 16 * 24) + 3 * math.log2(128)
    assert abs(logs["nll_bits"] - float(expected.mean())) < 1e-3


def test_the_anchor_term_adds_the_l1_of_the_tau_zero_frame():
    """The optional anchor (a project extension): loss + λ·L1(decode at τ = 0, gt), with gradients."""
    ds = SyntheticTriplets(_photos(), length=2, size=(32, 32), max_shift=3.0)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("img0", "gt", "img1", "t")}
    model = _model()
    flows = _zero_flows(batch, None)

    def loss(anchor):
        return pervfi_loss(model, batch, flows, perceptual=None, generator=torch.Generator().manual_seed(5),
                           anchor=anchor)

    plain, logs0 = loss(0.0)
    anchored, logs = loss(2.0)
    with torch.no_grad():
        l1 = float((model.decode(model.blend(batch["img0"], batch["img1"], *flows, batch["t"]), tau=0.0)
                    - batch["gt"]).abs().mean())
    assert "anchor_l1" not in logs0 and abs(logs["anchor_l1"] - l1) < 1e-6
    assert abs(float(anchored.detach()) - float(plain.detach()) - 2.0 * l1) < 1e-4
    anchored.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.condFLownet.parameters())


def test_the_anchor_perceptual_part_adds_its_weighted_distance_of_the_tau_zero_frame():
    """anchor_mu > 0: the anchor term becomes λ·(L1 + μ_a·perceptual) of the τ = 0 frame."""
    ds = SyntheticTriplets(_photos(), length=2, size=(32, 32), max_shift=3.0)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("img0", "gt", "img1", "t")}
    model = _model()
    flows = _zero_flows(batch, None)
    calls = []

    def squared(pred, gt):  # a stand-in perceptual distance, (B,)
        calls.append(pred.shape)
        return (pred - gt).pow(2).mean(dim=(1, 2, 3))

    def loss(anchor_mu):
        return pervfi_loss(model, batch, flows, perceptual=squared, mu=0.0, anchor=2.0, anchor_mu=anchor_mu,
                           generator=torch.Generator().manual_seed(5))

    plain, logs0 = loss(0.0)
    assert not calls and "anchor_perceptual" not in logs0  # μ = 0 and μ_a = 0: the distance is never called
    weighted, logs = loss(3.0)
    with torch.no_grad():
        frame = model.decode(model.blend(batch["img0"], batch["img1"], *flows, batch["t"]), tau=0.0)
        d = float((frame - batch["gt"]).pow(2).mean())
    assert len(calls) == 1 and abs(logs["anchor_perceptual"] - d) < 1e-6
    assert abs(float(weighted.detach()) - float(plain.detach()) - 2.0 * 3.0 * d) < 1e-4
