"""One engine contract (pervfi_core.engines.Engine) and one loader for the CLI and the nodes."""
from __future__ import annotations

import pytest
import torch

from pervfi_core import build_engine, weights
from pervfi_core.engine import Blend, Engine, EngineInfo
from pervfi_core.engines import DEFAULT, engine_choices, estimator_checkpoints, load_engine, load_estimator
from pervfi_core.errors import ArchitectureMismatchError

TRAINING_FREE = "training-free"


@pytest.mark.parametrize("spec", [DEFAULT, TRAINING_FREE])
def test_engines_implement_the_contract(spec, device):
    engine = load_engine(spec, device=device)
    assert isinstance(engine, Engine) and isinstance(engine.info, EngineInfo)
    assert engine.device.type == device.type and engine.dtype == torch.float32
    assert engine.stochastic is (engine.name == "pervfi-rife") and engine.size_multiple in (1, 8)  # the default: τ-capable
    img = torch.rand(3, 3, 20, 28, device=device)
    flow = torch.zeros(3, 2, 20, 28, device=device)
    b = engine.blend(img, img, flow, flow, torch.tensor([0.25, 0.5, 0.75], device=device))
    assert isinstance(b, Blend) and b.batch == 3 and b.select(1, 2).batch == 1 and b.mask().shape == (3, 1, 20, 28)
    y = engine.decode(b.select(0, 1), tau=0.0, seed=0)
    assert y.shape == (1, 3, 20, 28) and torch.allclose(y, engine.decode(b)[:1], atol=1e-5)


def test_the_descriptor_says_what_was_loaded():
    info = load_engine("pervfi-own").info
    entry = weights.default_manifest().get("pervfi-own")
    assert info.id == "pervfi-own" and info.architecture == "pervfi-vb" and info.sha256 == entry.sha256
    assert info.source.endswith(entry.filename) and info.trained_step == 1400
    assert info.config["base"] == "training-free"
    built = build_engine("vb")  # built in memory: named after its architecture, no file
    assert built.name == "pervfi-vb" and built.info.source is None and built.max_pixels == 1024 * 576
    assert load_engine(TRAINING_FREE).info.architecture == TRAINING_FREE


def test_one_catalog_for_the_cli_and_the_loader_nodes():
    choices = engine_choices()
    assert choices[:2] == [DEFAULT, TRAINING_FREE] and {"pervfi-own", "pervfi-v00", "pervfi-vb"} <= set(choices)
    assert estimator_checkpoints()[0] == DEFAULT and "raft-sintel" in estimator_checkpoints()


def test_estimator_checkpoints_must_match_the_estimator(tmp_path):
    from pervfi_core.flow.raft import RAFT
    from safetensors.torch import save_file

    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in RAFT(small=True).state_dict().items()}, str(path))
    assert load_estimator(str(path)).name == "raft-small"  # by path: the architecture picks the estimator
    assert load_estimator("raft-small", checkpoint=str(path)).name == "raft-small"
    with pytest.raises(ArchitectureMismatchError, match="not raft"):
        load_estimator("raft", checkpoint=str(path))
    with pytest.raises(ArchitectureMismatchError, match="belong in --flow"):
        load_engine(str(path))
