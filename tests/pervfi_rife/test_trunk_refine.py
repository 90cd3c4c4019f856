"""Refined IFNet blocks in pervfi-rife's head file: applied to a copy of the trunk they were trained on, never to
another trunk; the fine-tune trains only them and repeats step for step. Random weights throughout."""
import copy

import pytest
import torch

from pervfi_core.flow.rife import IFNet
from pervfi_core.pervfi_rife import engine as rife_engine
from pervfi_core.pervfi_rife.engine import Head, PerVFIRife
from pervfi_core.pervfi_rife.trunk import RIFETrunk, rife_frame, trunk_digest, trunk_output, with_refined_blocks
from pervfi_core.train.trunk_refine import TripletSampler, write_refined


def _ifnet(seed: int) -> IFNet:
    torch.manual_seed(seed)
    return IFNet().eval()


def _refined_state(net: IFNet, blocks=("block3", "block4")) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(9)
    return {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in net.state_dict().items()
            if k.split(".")[0] in blocks}


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(1, 3, 70, 90, generator=g)
    return base[..., 3:63, 3:83], base[..., :60, :80]


def _reference(net: IFNet, refined) -> IFNet:
    """A whole IFNet with the refined blocks loaded: what the refined path must compute."""
    ref = copy.deepcopy(net)
    ref.load_state_dict({**ref.state_dict(), **refined})
    return ref


def test_refined_blocks_run_for_moving_pairs_and_leave_the_shared_trunk_alone(pair):
    net = _ifnet(0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    refined = _refined_state(net)
    x0, x1 = (torch.nn.functional.pad(x, (0, 48, 0, 4), mode="replicate") for x in pair)  # 64 x 128
    always = with_refined_blocks(net, refined, trunk_digest(net, {"block3", "block4"}), gate_px=0.0)
    never = with_refined_blocks(net, refined, None, gate_px=float("inf"))
    assert always.network is net and all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():
        own, new = net(x0, x1, 0.5, features=True), _reference(net, refined)(x0, x1, 0.5, features=True)
        assert all(torch.equal(a, b) for a, b in zip(always(x0, x1, 0.5, features=True), new))
        assert all(torch.equal(a, b) for a, b in zip(never(x0, x1, 0.5, features=True), own))
        assert not torch.equal(own[0], new[0])
        # a batch of a moving and a still pair: each gets its own blocks, as if run alone
        batch = torch.cat([x0, x1]), torch.cat([x1, x1])
        flow = _coarse(net, *batch)[0]
        median = (flow[:, :2].norm(dim=1) + flow[:, 2:4].norm(dim=1)).flatten(1).median(dim=1).values
        assert median[0] > median[1]  # random weights: still the moved pair moves more than the still one
        gate = with_refined_blocks(net, refined, None, gate_px=float(median.mean()))
        assert gate.moving(flow).tolist() == [True, False]
        flows = gate(*batch)[0]
        torch.testing.assert_close(flows[:1], new[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(flows[1:], net(x1, x1)[0], rtol=1e-4, atol=1e-4)


def _coarse(net: IFNet, img0, img1):
    inputs, state = net.inputs(img0, img1, 0.5), None
    for i in range(3):
        state = net.step(getattr(net, f"block{i}"), i, inputs, state)
    return state


def test_refined_blocks_refuse_another_trunk_and_partial_blocks():
    net, other = _ifnet(0), _ifnet(1)
    refined = _refined_state(net)
    digest = trunk_digest(net, {"block3", "block4"})
    assert trunk_digest(other, {"block3", "block4"}) != digest
    assert with_refined_blocks(other, refined, digest) is None
    # the digest ignores the refined blocks themselves: the same trunk with other finest blocks still matches
    assert trunk_digest(_reference(net, refined), {"block3", "block4"}) == digest
    partial = dict(list(refined.items())[1:])
    with pytest.raises(KeyError, match="missing"):
        with_refined_blocks(net, partial, None)


def test_head_file_with_refined_blocks_builds_the_engine(tmp_path, pair, caplog):
    from pervfi_core import weights
    from pervfi_core.train.pervfi_rife import export

    net = _ifnet(0)
    head = Head(width=16, blocks=1, hidden=8, couplings=1)
    path = export(head, tmp_path / "head.safetensors", 5)
    refined = _refined_state(net)
    write_refined(path, {**net.state_dict(), **refined}, {"block3", "block4"}, net, 40)
    loaded = weights.load(path, arch="pervfi-rife", download=False)
    assert loaded.metadata["pervfi_rife_refined_steps"] == "40" and loaded.metadata["trained_steps"] == "5"

    class Estimator:  # what load_estimator("rife") gives the builder
        def __init__(self, network):
            self.network = network

    engine = rife_engine._build(loaded.state_dict, loaded.metadata, estimator=Estimator(net))
    expected = PerVFIRife(RIFETrunk(with_refined_blocks(net, refined, None)), head).eval()
    assert torch.equal(engine(*pair, tau=0.2, seed=3), expected(*pair, tau=0.2, seed=3))
    with caplog.at_level("WARNING", logger="pervfi_core.pervfi_rife.engine"):
        fallback = rife_engine._build(loaded.state_dict, loaded.metadata, estimator=Estimator(_ifnet(1)))
    assert "not the one its refined blocks were trained on" in caplog.text
    plain = PerVFIRife(RIFETrunk(_ifnet(1)), head).eval()
    assert torch.equal(fallback(*pair, tau=0.0), plain(*pair, tau=0.0))


def test_fine_tune_trains_only_the_chosen_blocks_and_samples_repeatably():
    net = _ifnet(0).requires_grad_(False)
    for p in net.block4.parameters():
        p.requires_grad_(True)
    x0, x1 = torch.rand(2, 1, 3, 64, 64).unbind(0)
    rife_frame(trunk_output(net, x0, x1)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.block4.parameters() if p.dim() > 1)
    assert all(p.grad is None for p in net.block3.parameters())
    clips = [(torch.rand(9, 3, 40, 48) * 255).to(torch.uint8)]
    a, b = (TripletSampler(clips, None, crop=32, synthetic_share=0.0, seed=s) for s in (5, 5))
    first = [a() for _ in range(4)]
    assert all(torch.equal(x, b()) for x in first) and first[0].shape == (3, 3, 32, 32)
    assert not torch.equal(TripletSampler(clips, None, crop=32, synthetic_share=0.0, seed=6)(), first[0])
