"""What a distributed run refuses, before any work and in a second or two: no Ray, no cluster, bad values."""
from __future__ import annotations

import sys
import time

import pytest

from pervfi_core.cli import main
from pervfi_core.distributed import ray_runner
from pervfi_core.distributed.cli import batch_inputs, batch_outputs
from pervfi_core.errors import InputError
from testkit.clips import SAMPLE


def test_without_ray_the_message_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(InputError, match=r'pip install "ray\[default\]"'):
        ray_runner.connect("local")


def test_an_unreachable_cluster_fails_fast_with_what_to_check():
    pytest.importorskip("ray", reason='Ray is not installed (pip install "ray[default]")')
    start = time.perf_counter()
    with pytest.raises(InputError, match="cannot reach the Ray cluster at 127.0.0.1:9 .*--ray local"):
        ray_runner.connect("127.0.0.1:9")
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("argv,message", [
    (["--ray", "--segment-frames", "1"], "expected a whole number >= 2"),
    (["--segment-frames", "8"], "need --ray"),
    (["--ray", "local", "--task-cpus", "0"], "expected a whole number >= 1"),
])
def test_bad_distributed_options(tmp_path, capsys, argv, message):
    try:
        rc = main(["interpolate", str(SAMPLE), str(tmp_path / "out.mp4"), *argv])
    except SystemExit as stop:  # argparse's own refusal
        rc = stop.code
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_batch_lists(tmp_path):
    (tmp_path / "videos").mkdir()
    with pytest.raises(InputError, match="no videos"):
        batch_inputs(tmp_path / "videos")
    (tmp_path / "videos" / "b.mp4").write_bytes(b"")
    (tmp_path / "videos" / "a.mkv").write_bytes(b"")
    assert [p.name for p in batch_inputs(tmp_path / "videos")] == ["a.mkv", "b.mp4"]
    listing = tmp_path / "list.txt"
    listing.write_text("videos/a.mkv\nmissing.mp4\n")
    with pytest.raises(InputError, match="not found, e.g. .*missing.mp4"):
        batch_inputs(listing)
    with pytest.raises(InputError, match="would both be written"):
        batch_outputs([tmp_path / "x" / "a.mp4", tmp_path / "y" / "a.mkv"], tmp_path / "out", ".mp4")
    with pytest.raises(InputError, match="--out-ext"):
        batch_outputs([tmp_path / "a.mp4"], tmp_path / "out", ".gif")
