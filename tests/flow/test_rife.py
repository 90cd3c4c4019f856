"""RIFE 4.25/4.26's IFNet as a motion estimator: layout, conversion to bidirectional flows, pretrained accuracy.

The pretrained checks need the package index (or the file already in the cache); they skip with the
reason otherwise.
"""
import pytest
import torch

from pervfi_core.errors import ArchitectureMismatchError, PerVFIError
from pervfi_core.flow import build_estimator
from pervfi_core.flow.rife import IFNet, RIFEEstimator, _splat_to_source
from pervfi_core.engines import load_estimator
from pervfi_core.registry import detect


def test_layout_is_detected_with_its_widths():
    arch, cfg = detect(IFNet().state_dict())
    assert arch == "rife"
    assert cfg == {}  # IFNet has one layout: nothing to read from the shapes


def test_a_constant_motion_lands_on_the_source_grid_unchanged():
    # middle-frame motion m everywhere; the frame-0 point of middle pixel y is y - m/2
    motion = torch.zeros(1, 2, 24, 32)
    motion[:, 0], motion[:, 1] = 4.0, -2.0
    out = _splat_to_source(motion, -motion / 2)
    torch.testing.assert_close(out, motion)


def test_splatting_moves_a_moving_patch_to_where_it_started():
    # a 6x6 patch moving +8 px in x over a still background, seen by the middle frame at columns 20-25:
    # on frame 0's grid its motion starts 4 px further left (columns 16-21), and the middle frame's
    # leading columns 24-25 hold background again
    motion = torch.zeros(1, 2, 32, 48)
    motion[:, 0, 10:16, 20:26] = 8.0
    out = _splat_to_source(motion, -motion / 2)[0, 0]
    torch.testing.assert_close(out[10:16, 20:22], torch.full((6, 2), 8.0))
    assert float(out[10:16, 24:].abs().max()) == 0.0 and float(out[:10].abs().max()) == 0.0
    # where patch and still background both land (the background it hides in frame 0) they are averaged
    torch.testing.assert_close(out[10:16, 16:20], torch.full((6, 4), 4.0))


def test_estimator_contract_on_any_size():
    est = RIFEEstimator(IFNet())
    f, b = est(torch.rand(2, 3, 37, 50), torch.rand(2, 3, 37, 50))
    assert f.shape == b.shape == (2, 2, 37, 50) and f.dtype == torch.float32
    assert bool(torch.isfinite(f).all() and torch.isfinite(b).all())


def test_other_weights_are_refused():
    from pervfi_core.flow.raft import RAFT

    with pytest.raises(ArchitectureMismatchError):
        build_estimator("rife", weights=RAFT(small=True).state_dict())


@pytest.fixture(scope="module")
def pretrained():
    try:
        return load_estimator("rife")
    except PerVFIError as err:
        pytest.skip(f"pretrained RIFE weights unavailable: {err}")


def test_pretrained_recovers_known_motion(pretrained, pair):
    fflow, bflow = pretrained(pair["img0"][None], pair["img1"][None])
    zero = pair["flow01"].norm(dim=0).mean()
    epe_f = (fflow[0] - pair["flow01"]).norm(dim=0).mean()
    epe_b = (bflow[0] - pair["flow10"]).norm(dim=0).mean()
    assert zero > 5
    assert epe_f < 0.25 * zero and epe_b < 0.25 * zero, (float(epe_f), float(epe_b), float(zero))


def test_pretrained_training_only_parts_are_dropped(pretrained):
    keys = pretrained.network.state_dict()
    assert not any(k.startswith(("teacher.", "caltime.")) for k in keys)
