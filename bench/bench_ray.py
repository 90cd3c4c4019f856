"""Ray runs against the plain CLI: output frames per second with 1 and 2 local workers, and the cost of a segment.

    python bench/bench_ray.py [--model training-free] [--loops 3] [--segment-frames 30]

The clip is the bundled sample looped ``--loops`` times (40 frames each, 448x252), doubled to an .mp4
(x2). Rows:

* the plain CLI (``python -m pervfi_core interpolate``) in a child process, with torch's default
  threads and with one thread;
* a local Ray cluster (127.0.0.1) with 1 and 2 CPUs, one task per segment: the run itself (pre-pass,
  tasks, final encode), and starting the cluster beside it;
* the cost of one more segment: the same run on 1 worker cut into many short segments against one
  segment for the whole clip, the difference divided by the number of extra segments.

Markdown on stdout. Needs Ray (pip install "ray[default]"). On a shared machine the timings are
contended: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "samples" / "bigbuckbunny_448x252.mp4"


def make_clip(folder: Path, loops: int) -> Path:
    import imageio_ffmpeg

    clip = folder / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop",
                    str(loops - 1), "-i", str(SAMPLE), "-c:v", "libx264", "-g", "50", "-an", str(clip)], check=True)
    return clip


def plain_cli(clip: Path, out: Path, model: str, threads: int | None) -> float:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pervfi_core", "interpolate", str(clip), str(out), "--model", model,
                    "-q", "-y"], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def ray_run(ray, clip: Path, out: Path, model: str, segment_frames: int):
    """(seconds, segments, phases) of one distributed run on the connected cluster; phases: seconds of the
    pre-pass (until the tasks are handed out) and of the final encode."""
    from pervfi_core.distributed import EngineSpec, Settings, interpolate_distributed
    from pervfi_core.distributed.ray_runner import Cluster

    settings = Settings(engine=EngineSpec(model=model), segment_frames=segment_frames, overwrite=True)
    marks: dict[str, float] = {}

    def progress(status):
        marks.setdefault("tasks", time.perf_counter())
        if status.phase.startswith("writing"):
            marks.setdefault("encode", time.perf_counter())

    start = time.perf_counter()
    summary = interpolate_distributed(clip, out, settings=settings, cluster=Cluster(ray, owned=False, address=""),
                                      progress=progress)
    end = time.perf_counter()
    return end - start, summary.segments, (marks["tasks"] - start, end - marks["encode"])


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="training-free")
    ap.add_argument("--loops", type=int, default=3, help="copies of the 40-frame sample in the clip (default 3)")
    ap.add_argument("--segment-frames", type=int, default=30, help="segment length of the worker rows (default 30)")
    ap.add_argument("--short-segments", type=int, default=4, help="segment length of the overhead run (default 4)")
    args = ap.parse_args()
    from pervfi_core.distributed.ray_runner import LOOPBACK_ENV

    os.environ.setdefault(LOOPBACK_ENV, "0")  # before Ray is imported: the clusters listen on 127.0.0.1 only
    import ray

    n = 40 * args.loops
    frames_out = 2 * n - 1
    rows, before = [], load()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp, args.loops)
        for threads in (None, 1):
            seconds = plain_cli(clip, tmp / "plain.mp4", args.model, threads)
            label = "plain CLI, torch default threads" if threads is None else "plain CLI, 1 thread (OMP_NUM_THREADS=1)"
            rows.append((label, "1", seconds, "-", "-", "-"))
            print(f"[bench_ray] {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
        overhead = None
        for workers in (1, 2):
            start = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
            started = time.perf_counter() - start
            try:
                seconds, segments, (scan, encode) = ray_run(ray, clip, tmp / "ray.mp4", args.model,
                                                            args.segment_frames)
                rows.append((f"Ray, {workers} worker{'s' if workers > 1 else ''} ({segments} segments of "
                             f"{args.segment_frames} frames)", str(workers), seconds, f"{scan:.1f}", f"{encode:.1f}",
                             f"{started:.1f}"))
                print(f"[bench_ray] {workers} worker(s): {seconds:.1f} s", file=sys.stderr, flush=True)
                if workers == 1:
                    whole, one, _ = ray_run(ray, clip, tmp / "ray.mp4", args.model, n)
                    short, many, _ = ray_run(ray, clip, tmp / "ray.mp4", args.model, args.short_segments)
                    overhead = (whole, one, short, many)
            finally:
                ray.shutdown()
    print(f"{n} input frames (the sample x{args.loops}, 448x252) -> {frames_out} frames (x2, .mp4), engine "
          f"{args.model}, motion auto; {os.cpu_count()} CPU cores shared with other work: load average "
          f"{before} before, {load()} after (1/5/15 min), so the timings are contended.\n")
    print("| run | workers | seconds | output frames/s | of which pre-pass (s) | of which final encode (s) "
          "| cluster start (s, not included) |")
    print("|---|---|---|---|---|---|---|")
    for label, workers, seconds, scan, encode, started in rows:
        print(f"| {label} | {workers} | {seconds:.1f} | {frames_out / seconds:.2f} | {scan} | {encode} | {started} |")
    whole, one, short, many = overhead
    per = (short - whole) / (many - one)
    print(f"\nCost of a segment (1 worker): {one} segment {whole:.1f} s, {many} segments of {args.short_segments} "
          f"frames {short:.1f} s: {per:.2f} s per extra segment (task start, seek and decode, the shared frame "
          "read twice, PNG files).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
