"""Nothing lost, ever: a corpus of bad inputs, options, outputs and weights through the command line.

Every case is a row: the arguments, the exit status, a fragment of the message. A failing row must
end in one ``error:`` line (no traceback, no "wrote" line) and leave the output folder as it was (no
output, no temporary file). Rows that work today are here too, so they stay working. The CLI runs
in-process (fast); signals, file-size limits and a full disk need a subprocess (end of the file).
Inputs are a few tiny frames, made once per module.
"""
from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from testkit.cli import (cli_command, cli_env, ffmpeg_run, leftovers, lock_held_elsewhere, noise_clip, output_layout,
                         processes_naming, readonly_folder, run_main, small_disk, write_png)
from pervfi_core.video import probe
from testkit.clips import (alpha_mov, anamorphic_mp4, bframe_avi, dropped_frames_avi, hevc_10_bit_mkv, make_clip,
                           png_in_mov, prores_mov, ten_bit_mkv)

ROOT = Path(__file__).resolve().parents[1]
OWN_WEIGHTS = ROOT / "weights" / "pervfi_own.safetensors"
MARKER = "pickle-ran-code"  # the code-running pickle would create this file


class Evil:
    """A pickle that runs a shell command when loaded; weights_only=True must refuse it unexecuted."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _corrupt(src: Path, dest: Path, *, nbytes: int = 4096) -> Path:
    """A copy of a .safetensors file with ``nbytes`` of its tensor data replaced by random bytes (a bad
    disk block): the header still parses, some floats become NaN/Inf, the rest wrong but finite."""
    data = bytearray(src.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # u64 header length, JSON header, then tensor data
    offset = start + (len(data) - start) // 3
    data[offset:offset + nbytes] = np.random.default_rng(4).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """Every input of the corpus, in one folder."""
    import torch
    from safetensors.torch import save_file

    from pervfi_core.flow.raft import RAFT

    d = tmp_path_factory.mktemp("bad-inputs")
    make_clip(d / "clip.mp4", frames=6, size="64x48", fps=25)
    make_clip(d / "one.mp4", frames=1)
    (d / "text.mp4").write_text("a text file renamed .mp4\n" * 40)
    (d / "empty.mp4").write_bytes(b"")
    whole = make_clip(d / "whole.mp4", frames=60, size="64x48")  # index (moov) at the end
    (d / "cut_index.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    ffmpeg_run("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "60", "-c:v", "libx264", "-g", "10",
               "-movflags", "+faststart", str(d / "fast.mp4"))
    data = (d / "fast.mp4").read_bytes()
    (d / "cut_fast.mp4").write_bytes(data[: len(data) // 2])  # index first: the first part still decodes
    ffmpeg_run("-f", "lavfi", "-i", "testsrc=size=32x32:rate=30", "-frames:v", "40",
               "-vf", "setpts='if(lt(N,10),N*3,30+(N-10))/30/TB'", "-fps_mode", "passthrough", "-c:v", "libx264",
               str(d / "vfr.mkv"))
    rng = np.random.default_rng(0)
    folders = {
        "rgba": [rng.integers(0, 256, (24, 32, 4), dtype=np.uint8) for _ in range(3)],
        "gray": [rng.integers(0, 256, (24, 32), dtype=np.uint8) for _ in range(3)],
        "deep": [rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16) for _ in range(3)],  # 16-bit PNGs
        "odd": [rng.integers(0, 256, (17, 33, 3), dtype=np.uint8) for _ in range(3)],
        "mixed": [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((24, 32, 3), (24, 32, 3), (24, 40, 3))],
    }
    for name, frames in folders.items():
        (d / name).mkdir()
        for k, frame in enumerate(frames):
            write_png(d / name / f"frame_{k:03d}.png", frame)
    shutil.copytree(d / "odd", d / "hidden")  # what macOS leaves on a shared disk: not frames
    (d / "hidden" / "._frame_000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    (d / "hidden" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (d / "ambiguous").mkdir()
    for name, frame in zip(("1.png", "01.png", "2.png"), folders["odd"]):
        write_png(d / "ambiguous" / name, frame)
    bframe_avi(d / "bframes.avi")
    dropped_frames_avi(d / "dropped.avi")
    alpha_mov(d / "alpha.mov")
    png_in_mov(d / "png_alpha.mov")
    prores_mov(d / "prores4444.mov", alpha=True)
    prores_mov(d / "prores422.mov")
    ten_bit_mkv(d / "deep10.mkv")
    hevc_10_bit_mkv(d / "hevc10.mkv")
    anamorphic_mp4(d / "anamorphic.mp4")
    (d / "empty_folder").mkdir()
    (d / "broken").mkdir()
    write_png(d / "broken" / "a_000.png", folders["gray"][0])
    write_png(d / "broken" / "a_001.png", folders["gray"][1])
    (d / "broken" / "a_002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)  # fails mid-run

    torch.save({"state_dict": Evil(d / MARKER)}, d / "evil.pth")
    save_file({k: v.contiguous() for k, v in RAFT(small=True).state_dict().items()}, str(d / "raft_small.safetensors"))
    _corrupt(OWN_WEIGHTS, d / "damaged.safetensors")
    (d / "published").mkdir()
    _corrupt(OWN_WEIGHTS, d / "published" / OWN_WEIGHTS.name)  # named like the manifest's pervfi-own
    (d / "half.safetensors").write_bytes(OWN_WEIGHTS.read_bytes()[: OWN_WEIGHTS.stat().st_size // 2])
    (d / "notes.safetensors").write_text("not weights\n")
    assert not (d / MARKER).exists()
    return d


def _setup(kind: str | None, out: Path) -> None:
    if kind == "existing_file":
        (out / "o.mp4").write_bytes(b"keep me")
    elif kind == "existing_folder":
        (out / "frames").mkdir()
        (out / "frames" / "mine.txt").write_text("keep me")
    elif kind == "folder_as_file":
        (out / "o.mp4").mkdir()
    elif kind in ("file_as_folder", "parent_is_file", "home_is_under_a_file"):
        (out / ("frames" if kind == "file_as_folder" else "afile")).write_text("keep me")


# id, arguments ({src}: the inputs, {out}: out/o.mp4, {dir}: the output folder), exit status, message, setup.
# Rows that get as far as loading an engine name the fast, weight-free one (TF).
TF = ["--model", "training-free", "--flow", "dis"]  # the same engine and motion on every machine (no GPU weights)
CASES = [
    # inputs
    ("missing-input", ["{src}/missing.mp4", "{out}"], 2, "not found", None),
    ("empty-file", ["{src}/empty.mp4", "{out}"], 2, "cannot read", None),
    ("text-renamed-mp4", ["{src}/text.mp4", "{out}"], 2, "cannot read", None),
    ("truncated-index-lost", ["{src}/cut_index.mp4", "{out}"], 2, "cannot read", None),
    ("one-frame", ["{src}/one.mp4", "{out}", *TF], 2, "at least 2 input frames", None),
    ("folder-mixed-sizes", ["{src}/mixed", "{out}", *TF], 2, "same size: frame_002.png is 40x24", None),
    ("folder-without-images", ["{src}/empty_folder", "{out}"], 2, "no images", None),
    ("folder-broken-png-mid-run", ["{src}/broken", "{dir}/frames", *TF], 2, "cannot read image", None),
    # outputs
    ("unknown-extension", ["{src}/clip.mp4", "{dir}/o.xyz"], 2, "unknown extension '.xyz'", None),
    ("output-is-input", ["{src}/clip.mp4", "{src}/clip.mp4"], 2, "is the input", None),
    ("output-folder-is-input", ["{src}/gray", "{src}/gray"], 2, "is the input", None),
    ("output-exists", ["{src}/clip.mp4", "{out}"], 2, "exists; choose a new name or pass --overwrite", "existing_file"),
    ("output-folder-not-empty", ["{src}/clip.mp4", "{dir}/frames"], 2, "not empty", "existing_folder"),
    ("video-output-is-a-folder", ["{src}/clip.mp4", "{out}"], 2, "is a folder; choose a file name", "folder_as_file"),
    ("frames-output-is-a-file", ["{src}/clip.mp4", "{dir}/frames"], 2, "is a file", "file_as_folder"),
    ("output-parent-is-a-file", ["{src}/clip.mp4", "{dir}/afile/o.mp4"], 2, "is a file, not a folder",
     "parent_is_file"),
    ("output-stdout-dash", ["{src}/clip.mp4", "-"], 2, "writing to standard output is not supported", None),
    ("output-being-written", ["{src}/clip.mp4", "{out}", "--overwrite"], 2,
     "is being written by another run (pid", "locked"),
    ("frames-output-being-written", ["{src}/clip.mp4", "{dir}/frames"], 2, "is being written by another run",
     "locked_frames"),
    ("folder-ambiguous-numbering", ["{src}/ambiguous", "{out}"], 2, "01.png and 1.png carry the same frame number",
     None),
    ("ffmpeg-missing", ["{src}/clip.mp4", "{out}"], 2, "point IMAGEIO_FFMPEG_EXE at an ffmpeg executable",
     "no_ffmpeg"),
    # rates
    ("multiplier-1", ["{src}/clip.mp4", "{out}", "-m", "1"], 2, "multiplier: expected a whole number from 2 to 64",
     None),
    ("multiplier-65", ["{src}/clip.mp4", "{out}", "-m", "65"], 2, "from 2 to 64", None),
    ("multiplier-negative", ["{src}/clip.mp4", "{out}", "-m", "-3"], 2, "from 2 to 64", None),
    ("multiplier-not-a-number", ["{src}/clip.mp4", "{out}", "-m", "x"], 2, "expected a whole number, got 'x'", None),
    ("multiplier-fraction", ["{src}/clip.mp4", "{out}", "-m", "2.5"], 2, "expected a whole number", None),
    ("fps-zero", ["{src}/clip.mp4", "{out}", "--fps", "0"], 2, "above 0", None),
    ("fps-negative", ["{src}/clip.mp4", "{out}", "--fps", "-24"], 2, "above 0", None),
    ("fps-1e9", ["{src}/clip.mp4", "{out}", "--fps", "1e9"], 2, "within 64x of the input rate", None),
    ("fps-too-far-down", ["{src}/clip.mp4", "{out}", "--fps", "0.1"], 2, "within 64x of the input rate", None),
    ("fps-nan", ["{src}/clip.mp4", "{out}", "--fps", "nan"], 2, "expected a positive number", None),
    ("fps-inf", ["{src}/clip.mp4", "{out}", "--fps", "inf"], 2, "expected a positive number", None),
    ("fps-and-multiplier", ["{src}/clip.mp4", "{out}", "--fps", "50", "-m", "2"], 2, "not allowed with", None),
    ("fps-ratio-over-zero", ["{src}/clip.mp4", "{out}", "--fps", "30/0"], 2, "a ratio N/D such as 30000/1001", None),
    ("input-fps-zero", ["{src}/gray", "{out}", "--input-fps", "0"], 2, "input fps", None),
    ("input-fps-nan", ["{src}/gray", "{out}", "--input-fps", "nan"], 2, "input fps", None),
    # options of the engine (pipeline.Options)
    ("tau-negative", ["{src}/clip.mp4", "{out}", "--tau", "-1"], 2, "tau: expected a temperature in [0, 1]", None),
    ("tau-5", ["{src}/clip.mp4", "{out}", "--tau", "5"], 2, "tau: expected a temperature in [0, 1]", None),
    ("tau-nan", ["{src}/clip.mp4", "{out}", "--tau", "nan"], 2, "tau: expected a finite number", None),
    ("tau-inf", ["{src}/clip.mp4", "{out}", "--tau", "inf"], 2, "tau: expected a finite number", None),
    ("seed-negative", ["{src}/clip.mp4", "{out}", "--seed", "-1"], 2, "seed: expected a whole number from 0", None),
    ("seed-2**64", ["{src}/clip.mp4", "{out}", "--seed", str(2 ** 64)], 2, "seed: expected", None),
    ("seed-fraction", ["{src}/clip.mp4", "{out}", "--seed", "1.5"], 2, "invalid int value", None),
    ("threshold-negative", ["{src}/clip.mp4", "{out}", "--scene-threshold", "-0.1"], 2, "scene threshold", None),
    ("threshold-2", ["{src}/clip.mp4", "{out}", "--scene-threshold", "2"], 2, "expected a value in [0, 1]", None),
    ("threshold-nan", ["{src}/clip.mp4", "{out}", "--scene-threshold", "nan"], 2, "finite", None),
    ("max-pixels-negative", ["{src}/clip.mp4", "{out}", "--max-pixels", "-5"], 2, "blend max pixels: expected", None),
    ("max-pixels-zero", ["{src}/clip.mp4", "{out}", "--max-pixels", "0"], 2, "pixels >= 4096", None),
    ("flow-max-pixels-small", ["{src}/clip.mp4", "{out}", "--flow-max-pixels", "100"], 2, "flow max pixels", None),
    ("batch-zero", ["{src}/clip.mp4", "{out}", "--batch-size", "0"], 2, "batch size: expected", None),
    ("batch-negative", ["{src}/clip.mp4", "{out}", "--batch-size", "-4"], 2, "batch size", None),
    ("crf-negative", ["{src}/clip.mp4", "{out}", "--crf", "-1"], 2, "crf: expected a whole number from 0 to 51", None),
    ("crf-99", ["{src}/clip.mp4", "{out}", "--crf", "99"], 2, "crf: expected", None),
    # engines, estimators, devices, weights
    ("model-code-running-pickle", ["{src}/clip.mp4", "{out}", "--model", "{src}/evil.pth"], 2,
     "refused", None),
    ("model-is-an-estimator", ["{src}/clip.mp4", "{out}", "--model", "{src}/raft_small.safetensors"], 2,
     "belong in --flow", None),
    ("model-nan-weights", ["{src}/clip.mp4", "{out}", "--model", "{src}/damaged.safetensors"], 2,
     "damaged.safetensors: ", None),
    ("model-published-name-modified", ["{src}/clip.mp4", "{out}", "--model", f"{{src}}/published/{OWN_WEIGHTS.name}"],
     2, "give it another name", None),
    ("model-truncated-weights", ["{src}/clip.mp4", "{out}", "--model", "{src}/half.safetensors"], 2,
     "unreadable", None),
    ("model-text-file", ["{src}/clip.mp4", "{out}", "--model", "{src}/notes.safetensors"], 2,
     "not a checkpoint", None),
    ("model-missing", ["{src}/clip.mp4", "{out}", "--model", "{src}/nothing.pth"], 2, "not found", None),
    ("flow-unknown", ["{src}/clip.mp4", "{out}", *TF, "--flow", "farneback"], 2, "unknown motion estimator 'farneback'", None),
    ("flow-is-a-generator", ["{src}/clip.mp4", "{out}", *TF, "--flow", str(OWN_WEIGHTS)], 2, "go to --model", None),
    ("device-unknown", ["{src}/clip.mp4", "{out}", "--device", "tpu"], 2, "--device: expected auto, cpu", None),
    ("device-absent-gpu", ["{src}/clip.mp4", "{out}", "--device", "cuda:9"], 2, "--device", None),
    ("dtype-unknown", ["{src}/clip.mp4", "{out}", "--dtype", "int8"], 2, "invalid choice: 'int8'", None),
    ("home-unwritable", ["{src}/clip.mp4", "{out}", "--model", "pervfi-vb"], 2,
     "Set PERVFI_HOME to a writable folder", "home_is_under_a_file"),
]
# Rows that work: the output appears, alone, and the message says what needs saying; where a row names a
# layout ("<codec> <pix_fmt>", testkit.cli.output_layout), the output has it.
WORKING = [
    ("rgba-png-frames", ["{src}/rgba", "{out}", *TF], "3 -> 5 frames"),
    ("gray-png-frames", ["{src}/gray", "{dir}/frames", *TF], "3 -> 5 frames"),
    ("16-bit-png-frames", ["{src}/deep", "{out}", *TF], "3 -> 5 frames"),
    ("odd-size-frames", ["{src}/odd", "{out}", *TF, "-m", "3"], "3 -> 7 frames"),
    ("cut-off-file-said-aloud", ["{src}/cut_fast.mp4", "{out}", *TF], "looks cut short"),
    ("variable-rate-said-aloud", ["{src}/vfr.mkv", "{out}", *TF], "variable frame rate"),
    ("fps-up-2.4x", ["{src}/clip.mp4", "{out}", *TF, "--fps", "60"], "25 -> 60 fps"),
    ("multiplier-64", ["{src}/gray", "{dir}/frames", *TF, "-m", "64"], "3 -> 129 frames"),
    ("fps-as-a-ratio", ["{src}/clip.mp4", "{out}", *TF, "--fps", "30000/1001"], "25 -> 29.97 fps"),
    ("hidden-files-are-not-frames", ["{src}/hidden", "{out}", *TF], "3 -> 5 frames"),
    ("output-name-near-NAME_MAX", ["{src}/gray", "{dir}/" + "n" * 251 + ".mp4", *TF], "3 -> 5 frames"),
    # timing from the container: B-frames in AVI (decode times only) and dropped frames held
    ("bframe-avi-at-its-true-rate", ["{src}/bframes.avi", "{out}", *TF], "50 -> 99 frames, 25 -> 50 fps"),
    ("dropped-frames-held", ["{src}/dropped.avi", "{out}", *TF], "50 -> 99 frames, 25 -> 50 fps"),
    # what the input carries: kept where the output holds it (video/carry.py), else said aloud
    ("alpha-said-aloud", ["{src}/alpha.mov", "{out}", *TF], "has an alpha channel (argb) that is not carried",
     "h264 yuv420p"),
    ("qtrle-alpha-kept-in-mov", ["{src}/alpha.mov", "{dir}/o.mov", *TF], "; alpha kept", "prores yuva444p12le"),
    ("qtrle-alpha-kept-in-mkv", ["{src}/alpha.mov", "{dir}/o.mkv", *TF], "; alpha kept", "ffv1 bgra"),
    ("qtrle-alpha-kept-in-png-frames", ["{src}/alpha.mov", "{dir}/frames", *TF], "; alpha kept", "png rgba"),
    ("png-in-mov-alpha-kept", ["{src}/png_alpha.mov", "{dir}/o.mov", *TF], "; alpha kept", "prores yuva444p12le"),
    ("prores4444-kept-in-mkv", ["{src}/prores4444.mov", "{dir}/o.mkv", *TF], "; alpha and 12-bit samples kept",
     "ffv1 gbrap16le"),
    ("prores4444-in-mov-keeps-10-bits", ["{src}/prores4444.mov", "{dir}/o.mov", *TF], "o.mov keeps 10 of them",
     "prores yuva444p12le"),
    ("prores4444-kept-in-png-frames", ["{src}/prores4444.mov", "{dir}/frames", *TF], "; alpha and 12-bit samples kept",
     "png rgba64le"),
    ("prores4444-alpha-said-aloud-in-mp4", ["{src}/prores4444.mov", "{out}", *TF], "has an alpha channel",
     "hevc yuv444p10le"),
    ("rgba-png-frames-kept", ["{src}/rgba", "{dir}/frames", *TF], "; alpha kept", "png rgba"),
    ("16-bit-png-frames-kept", ["{src}/deep", "{dir}/frames", *TF], "; 16-bit samples kept", "png rgb48le"),
    ("ten-bit-said-aloud", ["{src}/deep10.mkv", "{dir}/o.webm", *TF], "has 10 bits per sample (yuv420p10le)",
     "vp9 yuv420p"),
    ("ten-bit-h264-kept-in-mp4", ["{src}/deep10.mkv", "{out}", *TF], "; 10-bit samples kept", "hevc yuv420p10le"),
    ("ten-bit-hevc-kept-in-mkv", ["{src}/hevc10.mkv", "{dir}/o.mkv", *TF], "; 10-bit samples kept",
     "hevc yuv420p10le"),
    ("ten-bit-hevc-kept-in-png-frames", ["{src}/hevc10.mkv", "{dir}/frames", *TF], "; 10-bit samples kept",
     "png rgb48le"),
    ("prores422-kept-in-mov", ["{src}/prores422.mov", "{dir}/o.mov", *TF], "; 10-bit samples kept",
     "hevc yuv422p10le"),
]


def _argv(template: list[str], src: Path, out: Path) -> list[str]:
    return [a.format(src=src, out=out / "o.mp4", dir=out) for a in template]


_NEEDS_NO_CUDA = {"device-absent-gpu"}  # cuda:9 is only absent where there is no CUDA at all


def _params(rows):
    import torch

    skip = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
    return [pytest.param(r, id=r[0], marks=[skip] if r[0] in _NEEDS_NO_CUDA else []) for r in rows]


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_ends_in_one_clear_error_and_leaves_nothing(case, src, tmp_path, capsys, monkeypatch):
    name, template, code, needle, setup = case
    out = tmp_path / "out"
    out.mkdir()
    _setup(setup, out)
    if setup == "home_is_under_a_file":
        import pervfi_core.weights.fetch as fetch

        monkeypatch.setenv("PERVFI_HOME", str(out / "afile" / "home"))  # cannot be created: afile is a file
        monkeypatch.setattr(fetch, "_MODEL_DIRS", {kind: [] for kind in fetch._MODEL_DIRS})  # nothing else to use
    if setup == "no_ffmpeg":
        monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(out / "no-such-ffmpeg"))
    held = {"locked": out / "o.mp4", "locked_frames": out / "frames"}.get(setup)
    with contextlib.ExitStack() as stack:
        if held is not None:
            stack.enter_context(lock_held_elsewhere(held))  # a live run writes this output
        before_out, before_src = {p: _content(out / p) for p in leftovers(out)}, leftovers(src)
        start = time.monotonic()
        rc, err = run_main(capsys, ["interpolate", *_argv(template, src, out), "--quiet"])
        if held is not None:
            assert time.monotonic() - start < 5  # refused at once, before any work
        after_out = {p: _content(out / p) for p in leftovers(out)}

    assert rc == code and needle in err, err
    assert "Traceback" not in err and "wrote" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err  # one line says what is wrong and what to do
    assert after_out == before_out  # nothing written, nothing touched
    assert leftovers(src) == before_src  # no temporary file beside an input either
    assert not (src / MARKER).exists()  # the pickle's code never ran


def _content(path: Path):
    return path.read_bytes() if path.is_file() else "folder"


@pytest.mark.parametrize("case", WORKING, ids=[c[0] for c in WORKING])
def test_inputs_that_work_keep_working(case, src, tmp_path, capsys):
    name, template, needle, *layout = case
    out = tmp_path / "out"
    out.mkdir()
    argv = _argv(template, src, out)
    rc, err = run_main(capsys, ["interpolate", *argv, "--quiet"])
    assert rc == 0, err
    assert needle in err and "wrote" in err and "error" not in err
    target = Path(argv[1]).name
    assert target in leftovers(out) and all(p.split("/")[0] == target and "pervfi-" not in p for p in leftovers(out))
    if layout:
        assert output_layout(Path(argv[1])) == layout[0]


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES + WORKING}) == len(CASES) + len(WORKING)


def test_nan_weights_name_the_file_and_the_tensors(src, tmp_path, capsys):
    rc, err = run_main(capsys, ["interpolate", src / "clip.mp4", tmp_path / "o.mp4", "--model",
                                src / "damaged.safetensors", "-q"])
    assert rc == 2 and str(src / "damaged.safetensors") in err and "NaN or Inf" in err
    assert re.search(r"\d+ tensor\(s\) hold NaN or Inf values \(\w[\w.]*", err), err  # names at least one tensor


def test_published_name_with_other_bytes_is_refused_and_renaming_loads_it_as_ones_own(src, tmp_path):
    """The hash rule: a file named like a manifest entry must be that entry's bytes; under another name
    it is the user's own file (here: still refused, for its NaNs, by the finite check)."""
    from pervfi_core import weights
    from pervfi_core.errors import WeightsError

    with pytest.raises(WeightsError, match="sha256 .* not the published"):
        weights.load(src / "published" / OWN_WEIGHTS.name)
    good = tmp_path / OWN_WEIGHTS.name
    shutil.copyfile(OWN_WEIGHTS, good)
    assert weights.load(good).info.architecture == "pervfi-vb"  # the published bytes under their name load
    renamed = tmp_path / "my_finetune.safetensors"
    shutil.copyfile(src / "published" / OWN_WEIGHTS.name, renamed)
    with pytest.raises(WeightsError, match="NaN or Inf"):
        weights.load(renamed)


def test_half_precision_on_a_cpu_is_said_once(src, tmp_path, capsys):
    rc, err = run_main(capsys, ["interpolate", src / "gray", tmp_path / "o.mp4", *TF, "--dtype", "float16",
                                "--device", "cpu", "-q"])
    assert rc == 0, err
    assert err.count("several times slower") == 1 and err.startswith("warning: float16 on a CPU")


def test_cut_off_input_warns_with_both_counts_and_the_bar_ends_at_the_true_total(src, tmp_path, capsys):

    declared = probe(src / "cut_fast.mp4").frame_count
    rc, err = run_main(capsys, ["interpolate", src / "cut_fast.mp4", tmp_path / "o.mp4", *TF])  # with the bar
    assert rc == 0, err
    m = re.search(r"ended after (\d+) frames .* declares (\d+) frames", err)
    assert m and int(m.group(2)) == declared == 60 and 0 < int(m.group(1)) < declared, err
    read = int(m.group(1))
    bar = [seg for seg in re.split(r"[\r\n]", err) if " pairs " in seg]
    assert f" {read - 1}/{read - 1} pairs " in bar[-1], bar[-3:]  # the last drawing: the true total, complete
    assert f"{read} -> {2 * read - 1} frames" in err
    warning = next(line for line in err.splitlines() if "ended after" in line)
    assert warning.startswith("warning: "), err  # on a line of its own, not glued to the bar


def test_variable_frame_rate_warning_reaches_the_user(src, tmp_path, capsys):
    rc, err = run_main(capsys, ["interpolate", src / "vfr.mkv", tmp_path / "o.mkv", *TF, "-q"])
    assert rc == 0, err
    assert err.count("variable frame rate") == 1 and "re-timed to a constant 20 fps" in err


@pytest.mark.parametrize("name", ["o.mp4", "frames"])
def test_read_only_output_folder_is_refused_before_any_work(tmp_path, src, capsys, name):
    with readonly_folder(tmp_path / "ro") as ro:
        if ro is None:
            pytest.skip("no way to make a read-only folder here (not POSIX, or root without mount)")
        rc, err = run_main(capsys, ["interpolate", src / "clip.mp4", ro / name, "-q"])
        assert rc == 2 and f"cannot write to the output folder {ro}" in err, err
        assert "choose a" in err and "engine:" not in err  # refused before an engine was loaded
        assert leftovers(ro) == []


# ---------------------------------------------------------------- subprocess: limits, full disk, signals


def _limit_file_size(nbytes: int):
    def apply():
        # Past the limit a write fails with EFBIG instead of killing the process with SIGXFSZ (Python
        # ignores SIGXFSZ itself; ffmpeg, started by it, gets the default back and is killed: both covered).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


@pytest.fixture(scope="module")
def noise(tmp_path_factory) -> Path:
    return noise_clip(tmp_path_factory.mktemp("noise") / "noise.mp4", frames=12, size=160)  # out: 23 frames, ~0.4 MB


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE and SIGXFSZ are POSIX")
@pytest.mark.parametrize("name", ["o.mp4", "frames"])
def test_file_size_limit_through_the_cli(tmp_path, noise, name):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(cli_command("interpolate", noise, out / name, *TF, "-q"), capture_output=True, text=True,
                          env=cli_env(), preexec_fn=_limit_file_size(40_000), timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[-1].startswith("error: cannot write") or lines[-1].startswith("error: ffmpeg"), proc.stderr
    assert "ulimit -f" in lines[-1] and "wrote" not in proc.stderr and "Traceback" not in proc.stderr
    assert leftovers(out) == []


def test_full_disk_through_the_cli(tmp_path, noise):
    with small_disk(tmp_path / "disk", "128k") as disk:
        if disk is None:
            pytest.skip("a small disk needs `mount -t tmpfs` as root")
        for name in ("o.mp4", "frames"):
            proc = subprocess.run(cli_command("interpolate", noise, disk / name, *TF, "-q"), capture_output=True,
                                  text=True, env=cli_env(), timeout=300)
            last = proc.stderr.strip().splitlines()[-1]
            assert proc.returncode == 2 and last.startswith("error: "), proc.stderr
            assert os.strerror(errno.ENOSPC) in last and "free some space" in last and "wrote" not in proc.stderr
            assert leftovers(disk) == []


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """Ten seconds: long enough to still be running when the signal comes."""
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=250, size="160x96", fps=25)


def _default_signals():
    # As in a terminal: a test runner started in the background may pass SIGINT on ignored.
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def _start_run(clip: Path, out: Path) -> subprocess.Popen:
    """The CLI on ``clip`` -> ``out/o.mp4`` in a session of its own, returned once its writer exists."""
    proc = subprocess.Popen(cli_command("interpolate", clip, out / "o.mp4", *TF), env=cli_env(),
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    while not list(out.glob(".o.pervfi-partial-*")):  # the writer exists: the run is under way
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.02)
    time.sleep(0.3)
    return proc


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signame,group", [("SIGTERM", False), ("SIGTERM", True), ("SIGHUP", True),
                                           ("SIGINT", True), ("SIGQUIT", False), ("SIGUSR1", False),
                                           ("SIGUSR2", True)],
                         ids=["term-pid", "term-group", "hup-group", "int-group", "quit-pid", "usr1-pid", "usr2-group"])
def test_stop_signal_mid_run_removes_the_partial_output(tmp_path, long_clip, signame, group):
    """``group``: the signal reaches ffmpeg too (a closed terminal, Ctrl-C, systemd stopping a service)."""
    sig = getattr(signal, signame)
    out = tmp_path / "out"
    out.mkdir()
    proc = _start_run(long_clip, out)
    try:
        (os.killpg if group else os.kill)(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name = "Ctrl-C" if sig == signal.SIGINT else signame
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == f"interrupted by {name}: stopped cleanly, no output written", err
    assert "wrote" not in err and "Traceback" not in err
    assert leftovers(out) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc")
def test_sigkill_mid_run_leaves_no_encoder_and_the_next_run_removes_the_partial(tmp_path, long_clip, src, capsys):
    out = tmp_path / "out"
    out.mkdir()
    proc = _start_run(long_clip, out)
    encoders = processes_naming(str(out))
    assert encoders, "the run's ffmpeg should name the output folder"
    proc.kill()  # nothing in the run can react: its children must die with it
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while processes_naming(str(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_naming(str(out)) == []
    assert [p for p in leftovers(out) if ".pervfi-partial-" in p]  # the killed run could not clean up...
    rc, err = run_main(capsys, ["interpolate", src / "gray", out / "next.mp4", *TF, "-q"])
    assert rc == 0, err
    assert leftovers(out) == ["next.mp4"]  # ...the next run in that folder did


def test_concurrent_runs_on_one_output_exactly_one_writes_the_other_refuses_at_once(tmp_path, src, capsys):
    out = tmp_path / "out"
    out.mkdir()
    first = _start_run(make_clip(tmp_path / "mid.mp4", frames=60, size="64x48"), out)
    start = time.monotonic()
    rc, err = run_main(capsys, ["interpolate", src / "gray", out / "o.mp4", *TF, "-q", "--overwrite"])
    assert first.poll() is None, "the first run ended before the second started: make its clip longer"
    assert rc == 2 and time.monotonic() - start < 5, err
    assert err.strip().splitlines() == [f"error: output {out / 'o.mp4'} is being written by another run "
                                        f"(pid {first.pid}); wait for it to finish or choose another output "
                                        "name (--overwrite does not stop a live run)"]
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0 and "wrote" in first_err, first_err  # the first run went on, untouched
    assert leftovers(out) == ["o.mp4"] and probe(out / "o.mp4").frame_count == 119


def test_signal_handlers_are_restored_after_a_run(src, tmp_path, capsys):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                                               signal.SIGUSR1, signal.SIGUSR2)}
    run_main(capsys, ["interpolate", src / "clip.mp4", tmp_path / "o.mp4", "--tau", "9"])
    run_main(capsys, ["interpolate", src / "gray", tmp_path / "o.mp4", *TF, "-q"])
    assert {s: signal.getsignal(s) for s in before} == before


def test_code_running_pickle_was_really_able_to_run_code(src, tmp_path):
    """The corpus's pickle is a real threat: loaded without weights_only it runs its command."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


@pytest.mark.parametrize("where", ["after-rename", "after-return"])
def test_a_signal_after_the_output_is_whole_says_it_is_kept(src, tmp_path, capsys, monkeypatch, where):
    """The one window where "no output written" would be a lie: the output was already renamed into place."""
    from pervfi_core import cli, video

    def stop():
        raise cli.Interrupted(signal.SIGTERM)

    if where == "after-rename":  # inside VideoWriter.close, right after its rename
        original = video.VideoWriter.close
        monkeypatch.setattr(video.VideoWriter, "close", lambda self: (original(self), stop()))
    else:  # back in the CLI, drawing the last state of the bar
        monkeypatch.setattr(cli.ProgressBar, "finish", lambda self, total: stop())
    out = tmp_path / "o.mp4"
    rc, err = run_main(capsys, ["interpolate", src / "gray", out, *TF])
    last = err.strip().splitlines()[-1]
    assert rc == 143 and last == f"interrupted by SIGTERM after the output was complete: {out} is kept", err
    assert leftovers(tmp_path) == ["o.mp4"]
