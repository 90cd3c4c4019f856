"""The default engine and the project's own trained weights (pervfi-own, shipped in weights/, offline)."""
from __future__ import annotations

import hashlib

import torch

from pervfi_core import weights
from pervfi_core.metrics import psnr
from pervfi_core.model import PerVFI
from pervfi_core.engines import DEFAULT_MODEL, load_model
from pervfi_core.training_free import TrainingFreeVFI
from pervfi_core.weights.manifest import default_manifest


def _pair(height=48, width=64):
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(height + 8, width + 8),
                                           mode="bicubic", align_corners=False).clamp(0, 1)
    img0, img1 = base[..., :height, :width], base[..., 4:, 4:][..., :height, :width]
    flow = torch.zeros(1, 2, height, width)
    flow[:, :] = -4.0  # frame 1 is frame 0 moved up-left by 4 px
    return img0, img1, flow, -flow


def test_default_is_the_training_free_engine_and_the_trained_model_loads_offline():
    assert isinstance(load_model(None), TrainingFreeVFI) and DEFAULT_MODEL == "training-free"
    assert isinstance(load_model("default"), TrainingFreeVFI) and load_model(None).trust_gain > 0
    entry = default_manifest().get("pervfi-own")
    path = weights.resolve("pervfi-own", download=False)  # embedded: never downloaded
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    model = load_model("pervfi-own")
    assert isinstance(model, PerVFI) and model.name == "pervfi-own" and not model.training
    assert model.config["base"] == "training-free" and not model.stochastic


def test_pervfi_own_adds_a_small_learned_correction_to_the_frame_it_was_trained_on():
    img0, img1, fflow, bflow = _pair()
    with torch.no_grad():
        ours = load_model("pervfi-own")(img0, img1, fflow, bflow, 0.5)
        base = TrainingFreeVFI(trust_gain=0)(img0, img1, fflow, bflow, 0.5)  # its training base: no motion trust
    diff = (ours - base).abs()
    assert diff.max() > 1e-3  # trained: not the zero-initialised residual
    assert float(psnr(ours, base)) > 30  # a correction, not a different picture
