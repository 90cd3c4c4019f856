"""Distributed runs on a local Ray cluster equal the single-process run frame for frame, survive a
killed worker, and continue after an interruption from the segments already finished."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pervfi_core.distributed import EngineSpec, Settings, interpolate_distributed, plan_segments
from pervfi_core.distributed.jobs import default_job_dir
from pervfi_core.distributed.worker import CRASH_ENV
from pervfi_core.errors import InputError
from testkit.clips import ROOT, SAMPLE
from testkit.frames import ENGINE, assert_same_frames


def _settings(**kw) -> Settings:
    return Settings(engine=EngineSpec(model=ENGINE), **kw)


@pytest.mark.parametrize("frames", [2, 9])  # one pair per task (the shortest segment), several pairs
def test_distributed_output_equals_the_single_process_run(cluster, reference, tmp_path, frames):
    out = tmp_path / "out"
    summary = interpolate_distributed(SAMPLE, out, settings=_settings(segment_frames=frames), cluster=cluster)
    assert summary.segments == len(plan_segments(40, frames)) and summary.computed == summary.segments
    assert summary.frames_out == 79
    assert summary.engine_loads <= 4  # once per worker process (2 here, maybe replaced), not once per segment
    assert_same_frames(reference(SAMPLE), out)
    assert not default_job_dir(out).exists()  # removed once the output was complete


def test_a_segment_boundary_on_a_scene_cut_changes_nothing(cluster, reference, cut_clip, tmp_path):
    out = tmp_path / "out"
    assert [(s.start, s.stop) for s in plan_segments(40, 24, [19])] == [(0, 20), (20, 39)]
    summary = interpolate_distributed(cut_clip, out, settings=_settings(segment_frames=24), cluster=cluster)
    assert summary.segments == 2 and summary.cuts == [19]
    assert_same_frames(reference(cut_clip), out)


def test_retiming_to_another_frame_rate_across_segments(cluster, reference, tmp_path):
    out = tmp_path / "out"
    interpolate_distributed(SAMPLE, out, settings=_settings(segment_frames=7, fps=60), cluster=cluster)
    assert_same_frames(reference(SAMPLE, multiplier=None, fps=60), out)


def test_a_worker_killed_on_its_first_attempt_is_retried(cluster, reference, tmp_path, monkeypatch):
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv(CRASH_ENV, f"1:3:{marker}")  # segment 1 exits its worker after 3 frames, once
    out = tmp_path / "out"
    summary = interpolate_distributed(SAMPLE, out, settings=_settings(segment_frames=14), cluster=cluster)
    assert marker.exists() and summary.retried == 1 and summary.computed == 3
    assert_same_frames(reference(SAMPLE), out)


def test_an_interrupted_run_continues_from_the_finished_segments(cluster, reference, tmp_path):
    out, settings = tmp_path / "out", _settings(segment_frames=8)  # 6 segments, 2 at a time

    def stop_after_two(status):
        if status.segments_done >= 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the driver

    with pytest.raises(KeyboardInterrupt):
        interpolate_distributed(SAMPLE, out, settings=settings, cluster=cluster, progress=stop_after_two)
    assert not out.exists()
    finished = [d for d in default_job_dir(out).iterdir() if d.name.startswith("seg-")]
    assert 2 <= len(finished) < 6
    summary = interpolate_distributed(SAMPLE, out, settings=settings, cluster=cluster)
    assert (summary.reused, summary.computed) == (len(finished), 6 - len(finished))
    assert_same_frames(reference(SAMPLE), out)


def test_a_segment_that_cannot_be_read_fails_clearly_and_keeps_the_others(cluster, tmp_path, monkeypatch):
    import cv2

    from pervfi_core.distributed import driver
    from pervfi_core.video import open_input

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(open_input(SAMPLE)):
        if i < 12:
            cv2.imwrite(str(frames / f"{i:03d}.png"), frame[:, :, ::-1])
    real = driver.scan_input

    def one_frame_too_many(*args, **kwargs):  # the last segment finds a frame missing, as if deleted meanwhile
        scan = real(*args, **kwargs)
        scan.n_frames += 1
        return scan

    monkeypatch.setattr(driver, "scan_input", one_frame_too_many)
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match=r"segment 4 of 4 .*expected frames 9..12.*kept in"):
        interpolate_distributed(frames, out, settings=_settings(segment_frames=4), cluster=cluster)
    assert not out.exists()


def test_command_line_batch_on_a_running_cluster(cluster, reference, cut_clip, tmp_path):
    """``interpolate --batch LIST OUTDIR --ray HOST:PORT``: a driver process of its own joins the cluster."""
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# two clips\n{SAMPLE}\n\n{cut_clip}\n")
    outs = tmp_path / "outs"
    cmd = [sys.executable, "-m", "pervfi_core", "interpolate", str(listing), str(outs), "--batch",
           "--out-ext", "frames", "--model", ENGINE, "--ray", cluster.address, "--segment-frames", "21", "-q"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("2 segments (2 computed, 0 resumed)") == 2 and "done: 2 output(s)" in run.stderr
    for source in (SAMPLE, cut_clip):
        assert_same_frames(reference(source), outs / source.stem)
