"""Long-run soak of the command line: memory over time and an output checked frame by frame.

    python bench/soak.py                      # 20 minutes of 320x180 testsrc2 at 25 fps (30000 frames), x2
    python bench/soak.py --minutes 5          # a shorter clip (7500 frames)
    python bench/soak.py --model pervfi-own   # any engine (default: training-free, the fast one)
    python bench/soak.py --threads 1          # OMP_NUM_THREADS for the CLI (a machine shared with other jobs)

Synthesises the clip with the bundled ffmpeg, runs ``python -m pervfi_core interpolate`` on it as a
subprocess and samples the resident memory (VmRSS from /proc, Linux) of the CLI and of its ffmpeg
children every ``--interval`` seconds. Then it checks the output: the number of frames, and every
frame's presentation timestamp against its slot ``i / fps_out`` (packet timestamps read with
ffmpeg's framecrc muxer, no decoding). Prints a JSON summary and a Markdown table row; ``--json``
writes the samples too. Not a test: it takes as long as the clip needs on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def synthesise(path: Path, *, minutes: float, size: str, fps: int) -> int:
    """A test-pattern clip (moving, with a counter) of ``minutes``; returns its frame count."""
    frames = round(minutes * 60 * fps)
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=size={size}:rate={fps}", "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(path)], check=True)
    return frames


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the ffmpeg reader and writer)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # kernels without /proc/.../children: parent ids from every process's stat
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
        return found


def packet_pts(path: Path) -> tuple[list[int], Fraction]:
    """Presentation timestamps of every video packet (sorted) and the stream's time base."""
    proc = subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
                           "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True, check=True)
    tb = Fraction(1)
    pts = []
    for line in proc.stdout.splitlines():
        if line.startswith("#tb 0:"):
            num, den = line.split(":")[1].strip().split("/")
            tb = Fraction(int(num), int(den))
        elif not line.startswith("#"):
            pts.append(int(line.split(",")[2]))
    return sorted(pts), tb


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--size", default="320x180")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--multiplier", type=int, default=2)
    p.add_argument("--model", default="training-free")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS of the CLI (default: unset, torch's choice). On a machine whose cores are "
                        "busy with other jobs, OpenMP's threads wait on each other: 1 is many times faster there")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between memory samples")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the clip and the output go (default: a temp folder)")
    p.add_argument("--json", type=Path, default=None, help="write the summary with every sample here")
    args = p.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="pervfi-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    clip, out = work / "soak_in.mp4", work / "soak_out.mp4"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    n_in = synthesise(clip, minutes=args.minutes, size=args.size, fps=args.fps)
    print(f"clip: {n_in} frames ({args.minutes:g} min, {args.size} at {args.fps} fps) in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)

    cmd = [sys.executable, "-m", "pervfi_core", "interpolate", str(clip), str(out), "--model", args.model,
           "--multiplier", str(args.multiplier), "--quiet"]
    start = time.perf_counter()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    samples = []  # (seconds, CLI RSS MiB, ffmpeg children RSS MiB)
    while proc.poll() is None:
        own = rss_kib(proc.pid)
        kids = sum(r for c in children(proc.pid) if (r := rss_kib(c)) is not None)
        if own is not None:
            samples.append((round(time.perf_counter() - start, 1), round(own / 1024, 1), round(kids / 1024, 1)))
        time.sleep(args.interval)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    if proc.returncode != 0:
        print(err, file=sys.stderr)
        return proc.returncode

    from pervfi_core.video import probe

    expected = (n_in - 1) * args.multiplier + 1
    fps_out = Fraction(args.fps * args.multiplier)
    pts, tb = packet_pts(out)
    slot = 1 / (fps_out * tb)  # one output frame in time-base units
    wrong = [i for i, t in enumerate(pts) if t - pts[0] != i * slot]
    # Memory after the first minute (imports, first allocations), the part that must not grow.
    steady = [s for s in samples if s[0] >= 60] or samples
    rss = [s[1] for s in steady]
    half = len(steady) // 2
    growth = (sum(rss[half:]) / max(1, len(rss) - half)) - (sum(rss[:half]) / max(1, half)) if half else 0.0
    summary = {
        "command": " ".join(["python", "-m", "pervfi_core", *cmd[3:]]).replace(str(work) + "/", ""),
        "omp_threads": args.threads,
        "input_frames": n_in, "output_frames": len(pts), "expected_frames": expected,
        "timestamps_off_grid": len(wrong), "first_off_grid": wrong[:5],
        "duration_s": float((pts[-1] - pts[0] + slot) * tb) if pts else 0.0,
        "expected_duration_s": float(expected / fps_out), "container_duration_s": probe(out).duration,
        "wall_s": round(wall, 1), "seconds_per_output_frame": round(wall / max(1, expected - n_in), 4),
        "rss_mib_min": min(rss), "rss_mib_max": max(rss), "rss_growth_mib_second_half": round(growth, 1),
        "ffmpeg_rss_mib_max": max(s[2] for s in steady), "samples": len(samples),
        "cli_says": err.strip().splitlines()[-1],
    }
    ok = len(pts) == expected and not wrong
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    print(f"| {args.minutes:g} min {args.size} {args.fps} fps x{args.multiplier}, {args.model} | {n_in} -> {len(pts)} "
          f"({'exact' if ok else 'MISMATCH'}) | {wall / 60:.1f} min | {min(rss):.0f}-{max(rss):.0f} MiB | "
          f"{growth:+.1f} MiB |")
    if args.json:
        args.json.write_text(json.dumps({**summary, "samples": samples}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
