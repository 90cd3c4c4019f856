"""Damaged and look-alike weights: NaN/Inf refused, published file names held to their sha256, the
unwritable cache folder named with what to set, and the manifest found in a checkout or an installed wheel."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pervfi_core import weights
from pervfi_core.cache import CacheDirError, cache_dir, ensure_dir
from pervfi_core.errors import WeightsError
from pervfi_core.weights import manifest as manifest_mod
from pervfi_core.weights.checkpoint import check_finite

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "weights" / "pervfi_own.safetensors"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensors_are_named(dtype, bad):
    sd = {"a.weight": torch.ones(3, dtype=dtype), "b.weight": torch.tensor([1.0, bad], dtype=dtype),
          "steps": torch.tensor([5])}
    with pytest.raises(WeightsError, match=r"mine.safetensors: 1 tensor\(s\) hold NaN or Inf values \(b.weight\)"):
        check_finite(sd, "mine.safetensors")
    check_finite({k: v for k, v in sd.items() if k != "b.weight"}, "mine.safetensors")  # finite: no error


def test_many_bad_tensors_are_summarised():
    sd = {f"layer{i}.weight": torch.full((2,), float("nan")) for i in range(9)}
    with pytest.raises(WeightsError, match=r"9 tensor\(s\) .* and 3 more"):
        check_finite(sd, "x")


def test_nan_in_a_users_own_weights_file_is_refused_at_load(tmp_path):
    sd = weights.load_state_dict(OWN)
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] = float("nan")
    path = tmp_path / "finetuned.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    with pytest.raises(WeightsError, match=f"{path}.*NaN or Inf.*{key.replace('.', '[.]')}"):
        weights.load(path)


def test_a_published_file_name_must_have_the_published_bytes(tmp_path):
    copy = tmp_path / OWN.name
    data = bytearray(OWN.read_bytes())
    data[-1] ^= 0x01  # one bit: finite, same layout, only the hash can tell
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="named like the published pervfi-own .* give it another name"):
        weights.load(copy)
    renamed = copy.rename(tmp_path / "my_variant.safetensors")
    assert weights.load(renamed).info.architecture == "pervfi-vb"  # under its own name it is the user's file


def test_cache_folder_that_cannot_be_created_says_what_to_set(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PERVFI_HOME", str(tmp_path / "file" / "home"))
    assert cache_dir("pervfi", create=False) == tmp_path / "file" / "home" / "pervfi"  # a look-up creates nothing
    assert weights.list_local("pervfi") == []  # and an impossible folder simply holds nothing
    with pytest.raises(CacheDirError, match="Set PERVFI_HOME to a writable folder"):
        cache_dir("pervfi")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through permission bits")
def test_cache_folder_without_permission(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    try:
        with pytest.raises(CacheDirError, match="Permission denied"):
            ensure_dir(folder)
    finally:
        folder.chmod(0o755)


def test_manifest_is_found_in_a_checkout_and_in_an_installed_package(tmp_path, monkeypatch):
    assert manifest_mod.data_root() == ROOT  # this checkout
    installed = tmp_path / "site-packages" / "pervfi_core" / "_data"  # what setup.py's build step lays out
    (installed / "weights").mkdir(parents=True)
    shutil.copyfile(ROOT / "weights_manifest.json", installed / "weights_manifest.json")
    shutil.copyfile(OWN, installed / "weights" / OWN.name)
    monkeypatch.setattr(manifest_mod, "REPO_ROOT", tmp_path / "site-packages" / "..")  # no manifest there
    monkeypatch.setattr(manifest_mod, "PACKAGE_DATA", installed)
    root = manifest_mod.data_root()
    assert root == installed
    m = manifest_mod.Manifest.load(root / "weights_manifest.json")
    entry = m.get("pervfi-own")
    assert weights.find_local(entry, m) == installed / "weights" / OWN.name
