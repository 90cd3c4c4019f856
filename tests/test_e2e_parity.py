"""End to end against the official ``raft+pervfi`` pipeline (e2e_raft_pervfi_124x180 fixture).

The official closure pads the frames with zeros at the right and bottom to a multiple of 8, runs
RAFT on the padded frames, draws the latents with heat 0.3 after ``torch.manual_seed(2024)``, decodes
and crops. Our pieces, chained the same way, must give the same frame.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pervfi_core import build_model
from pervfi_core.flow import build_estimator


def test_raft_plus_pervfi_reproduces_the_official_pipeline(parity_dir, load_parity):
    fx = load_parity("e2e_raft_pervfi_124x180")
    img0, img1 = fx["img0"], fx["img1"]
    pad = (0, (-img0.shape[-1]) % 8, 0, (-img0.shape[-2]) % 8)  # right/bottom zeros, as the closure does
    p0, p1 = F.pad(img0, pad), F.pad(img1, pad)
    assert torch.equal(p0, fx["img0_padded"]) and torch.equal(p1, fx["img1_padded"])

    est = build_estimator("raft", weights=load_file(str(parity_dir / "weights" / "raft.safetensors")))
    with torch.no_grad():
        fflow, bflow = est(p0, p1)
    assert (fflow - fx["fflow_padded"]).abs().max() <= 1e-3
    assert (bflow - fx["bflow_padded"]).abs().max() <= 1e-3

    model = build_model("v00")
    model.load_state_dict(load_file(str(parity_dir / "weights" / "pervfi_v00.safetensors")))
    with torch.no_grad():
        blend = model.blend(p0, p1, fflow, bflow, 0.5)
        zs = model.sample_z(blend, tau=0.3, seed=2024)
        for ours, official in zip(zs, (fx["zs.0"], fx["zs.1"], fx["zs.2"])):
            assert torch.equal(ours, official)  # same seed -> the official latents, bit for bit
        pred = model.decode(blend, tau=0.3, seed=2024)[..., : img0.shape[-2], : img0.shape[-1]]
    assert (pred - fx["pred"]).abs().max() <= 1e-3
