"""``weights list|fetch|verify|convert`` through the subcommand registration the main CLI uses."""
from __future__ import annotations

import argparse

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pervfi_core.weights import cli as weights_cli
from pervfi_core.weights.manifest import default_manifest


def run(capsys, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="pervfi")
    weights_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["weights", *argv])
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_list_shows_every_entry(capsys):
    code, out = run(capsys, "list")
    assert code == 0
    for entry in default_manifest().entries:
        assert entry.id in out
    assert "downloadable" in out
    own = next(line for line in out.splitlines() if line.startswith("pervfi-own"))
    assert "local:" in own and "weights" in own  # embedded in the repository, never downloaded


def test_verify_reports_architecture_and_ok(capsys, tmp_path):
    from pervfi_core.flow.raft import RAFT

    path = tmp_path / "mine.pth"
    torch.save({f"module.{k}": v for k, v in RAFT(small=True).state_dict().items()}, path)
    code, out = run(capsys, "verify", str(path))
    assert code == 0
    assert "architecture raft-small" in out and "container module-prefix" in out and "layout: OK" in out


def test_verify_refuses_a_published_architecture_with_other_shapes(capsys, tmp_path, tiny_sd):
    """RAFT-small's constructor has no widths to vary: other shapes cannot be loaded, so they are a mismatch."""
    path = tmp_path / "mine.pth"
    torch.save(tiny_sd, path)
    code, out = run(capsys, "verify", str(path))
    assert code == 1 and "architecture raft-small" in out and "layout: MISMATCH" in out


def test_verify_reports_mismatch(capsys, tmp_path, tiny_sd):
    path = tmp_path / "mine.safetensors"
    save_file(tiny_sd, str(path), metadata={"pervfi_layout_fingerprint": "lf1:" + "0" * 64})
    code, out = run(capsys, "verify", str(path))
    assert code == 1 and "layout: MISMATCH" in out


@pytest.mark.parametrize("what", ["text-file", "folder", "missing"])
def test_verify_of_something_that_is_no_checkpoint_is_a_one_line_error(capsys, tmp_path, what):
    path = {"text-file": tmp_path / "notes.safetensors", "folder": tmp_path, "missing": tmp_path / "no.pth"}[what]
    if what == "text-file":
        path.write_text("not weights\n")
    code, out = run(capsys, "verify", str(path))
    assert code == 2 and len(out.strip().splitlines()) == 1 and out.startswith("error: ") and "Traceback" not in out


def test_verify_official_file_against_its_manifest_entry(capsys, parity_dir, tmp_path):
    """A file named like a manifest entry is held to that entry's layout."""
    from safetensors.torch import load_file
    sd = load_file(str(parity_dir / "weights" / "raft.safetensors"))
    good = tmp_path / "raft-sintel.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, good)
    code, out = run(capsys, "verify", str(good))
    assert code == 0 and "architecture raft" in out and "matches raft-sintel" in out
    del sd["fnet.conv1.bias"]
    torch.save(sd, good)
    code, out = run(capsys, "verify", str(good))
    assert code == 1 and "MISMATCH" in out


def test_convert_writes_safetensors(capsys, tmp_path, own_sd):
    src = tmp_path / "mine.pth"
    torch.save({"model": own_sd}, src)
    out_path = tmp_path / "converted.safetensors"
    code, out = run(capsys, "convert", str(src), "--out", str(out_path))
    assert code == 0 and str(out_path) in out
    with safe_open(str(out_path), framework="pt") as f:
        assert f.metadata()["pervfi_architecture"] == "pervfi-v00"
        assert sorted(f.keys()) == sorted(own_sd)


def test_convert_and_fetch_errors_exit_nonzero(capsys, tmp_path, tiny_sd):
    src = tmp_path / "mine.pth"
    torch.save(tiny_sd, src)
    code, out = run(capsys, "convert", str(src), "--arch", "pervfi-vb")
    assert code == 2 and "raft-small" in out and "pervfi-vb" in out
    code, out = run(capsys, "fetch", "no-such-model")
    assert code == 2 and "no-such-model" in out
    with pytest.raises(SystemExit):
        run(capsys, "fetch")  # missing ID: argparse usage error
