"""``python -m pervfi_core interpolate``: outputs, frame counts, fps, audio, errors, Ctrl-C."""
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pervfi_core.cli import main
from pervfi_core.video import VideoReader, probe

from testkit.clips import make_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("cli") / "in.mp4", frames=5, size="64x48", fps=24, audio=True)


def _run(capsys, *argv):
    rc = main(["interpolate", *map(str, argv), "--quiet"])
    return rc, capsys.readouterr().err


def test_x2_video_with_audio(tmp_path, clip, capsys):
    out = tmp_path / "out.mp4"
    rc, err = _run(capsys, clip, out)
    assert rc == 0, err
    info = probe(out)
    assert info.fps == 48 and info.audio_codec == "aac"
    frames = list(VideoReader(out))
    assert len(frames) == 9  # (5 - 1) * 2 + 1
    assert "engine: pervfi-rife" in err and "5 -> 9 frames" in err  # the default engine
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary files left


def test_an_engine_with_its_own_motion_loads_no_estimator(tmp_path, clip, capsys, monkeypatch):
    import pervfi_core.engines

    original = pervfi_core.engines.load_estimator

    def refuse(name="auto", **kwargs):  # the engine's own trunk (RIFE's IFNet) is loaded through here too
        if name != "rife":
            raise AssertionError(f"motion estimator {name!r} loaded for an engine that finds its own motion")
        return original(name, **kwargs)

    monkeypatch.setattr(pervfi_core.engines, "load_estimator", refuse)
    rc, err = _run(capsys, clip, tmp_path / "out.mp4")  # the default engine, pervfi-rife
    assert rc == 0, err
    assert "engine: pervfi-rife; motion: the engine's own" in err


def test_fps_retiming_to_png_folder_and_back(tmp_path, clip, capsys):
    out = tmp_path / "frames"
    rc, err = _run(capsys, clip, out, "--fps", 60)
    assert rc == 0, err
    pngs = sorted(out.iterdir())
    assert len(pngs) == 11  # positions k * 24/60 up to frame 4: floor(4 * 60 / 24) + 1
    first = np.asarray(list(VideoReader(clip))[0])
    import cv2

    assert np.array_equal(cv2.imread(str(pngs[0]))[:, :, ::-1], first)  # inputs are copied bit for bit
    rc, err = _run(capsys, out, tmp_path / "again.mkv", "--input-fps", 60, "--multiplier", 3)
    assert rc == 0, err
    assert probe(tmp_path / "again.mkv").fps == Fraction(180)
    assert len(list(VideoReader(tmp_path / "again.mkv"))) == 31


@pytest.mark.parametrize("argv,needle", [
    (["{missing}", "{out}"], "not found"),
    (["{junk}", "{out}"], "cannot read"),
    (["{one}", "{out}"], "at least 2"),
    (["{clip}", "{tmp}/out.xyz"], "unknown extension"),
    (["{clip}", "{clip}"], "is the input"),
    (["{clip}", "{existing}"], "exists"),
    (["{clip}", "{out}", "--model", "{junk}"], "error:"),
    (["{clip}", "{out}", "--device", "cuda:9"], "error:"),
])
def test_user_errors_exit_nonzero_with_a_message(tmp_path, clip, capsys, argv, needle):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    one = make_clip(tmp_path / "one.mp4", frames=1)
    (tmp_path / "existing.mp4").write_bytes(b"keep me")
    names = dict(existing=tmp_path / "existing.mp4", missing=tmp_path / "missing.mp4", out=tmp_path / "out.mp4", junk=junk, one=one, clip=clip, tmp=tmp_path)
    rc, err = _run(capsys, *[a.format(**names) for a in argv])
    assert rc == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*partial*"))
    assert (tmp_path / "existing.mp4").read_bytes() == b"keep me"  # never touched


@pytest.mark.parametrize("flag", [["--multiplier", "x"], ["--fps", "abc"], ["--multiplier", "2", "--fps", "30"]])
def test_bad_rates_are_usage_errors(tmp_path, clip, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["interpolate", str(clip), str(tmp_path / "o.mp4"), *flag])
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("flag,needle", [(["--multiplier", "1"], "from 2 to 64"), (["--fps", "0"], "above 0")])
def test_rates_out_of_bounds_are_refused_by_the_core(tmp_path, clip, capsys, flag, needle):
    rc, err = _run(capsys, clip, tmp_path / "o.mp4", *flag)  # the same check (pipeline/schedule.py) as API and nodes
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_ctrl_c_stops_cleanly_without_output(tmp_path, clip, capsys, monkeypatch):
    import pervfi_core.pipeline.stages as stages

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = stages.interpolate_pair
    monkeypatch.setattr(stages, "interpolate_pair", interrupted)
    rc, err = _run(capsys, clip, tmp_path / "out.mp4")
    assert rc == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_default_engine_and_weights_subcommand():
    proc = subprocess.run([sys.executable, "-m", "pervfi_core", "interpolate", "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0 and "(default: pervfi-rife)" in proc.stdout and "--multiplier" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "pervfi_core", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert "weights" in proc.stdout


def test_scene_cut_is_reported_and_not_blended(tmp_path, capsys):
    import cv2

    ramp = np.linspace(0, 1, 48)[None, :, None]
    scene_a = np.concatenate([0.1 + 0.2 * ramp, 0.1 + 0.1 * ramp, 0.5 + 0.3 * ramp], axis=2).repeat(32, 0)
    back = ramp[:, ::-1]  # the new shot: new colours and a new layout
    scene_b = np.concatenate([0.7 + 0.3 * back, 0.4 + 0.2 * back, 0.2 * back], axis=2).repeat(32, 0)
    src = tmp_path / "src"
    src.mkdir()
    frames = [(np.clip(s + 0.01 * k, 0, 1) * 255).round().astype(np.uint8) for s in (scene_a, scene_b) for k in range(2)]
    for k, f in enumerate(frames):
        cv2.imwrite(str(src / f"{k}.png"), f[:, :, ::-1])
    rc, err = _run(capsys, src, tmp_path / "out", "--multiplier", 2)
    assert rc == 0, err
    assert "scene cuts" in err and "frames 1|2" in err
    out = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((tmp_path / "out").iterdir())]
    assert len(out) == 7 and np.array_equal(out[3], frames[1])  # the new frame across the cut repeats frame 1


def test_official_layout_weights_via_model_option(tmp_path, clip, capsys, parity_dir):
    """--model with a PerVFI checkpoint file (the parity fixture's random vb weights, official keys)."""
    rc, err = _run(capsys, clip, tmp_path / "out.mp4", "--model", parity_dir / "weights" / "pervfi_vb.safetensors")
    assert rc == 0, err
    assert len(list(VideoReader(tmp_path / "out.mp4"))) == 9
