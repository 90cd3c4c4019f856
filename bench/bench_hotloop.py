"""Per-pair time of the pipeline's hot loop: the fused path against the split stages, now against a baseline.

    python bench/bench_hotloop.py                          # this checkout only
    python bench/bench_hotloop.py --baseline main          # and a git revision of it, runs interleaved

Fused: :func:`pervfi_core.pipeline.interpolate` over ``--pairs`` + 1 frames. Split: estimate_flow ->
blend -> decode over the same frames (what the nodes run). Seconds per pair = wall time / pairs (x2:
one new frame per pair), default engine and DIS motion, on the CPU; wall time, and the CPU time of
the process (less disturbed by other processes on a shared machine: with one thread, the time an idle
core would take). Frames are the bundled sample clip resized (real content and motion; no scene cut).

Each repeat of each version runs in a fresh subprocess (its own imports, one warm-up pair first);
the versions alternate repeat by repeat, so that a shared machine's load falls on both alike. The
table reports the median of the repeats (and the min, the least disturbed). The baseline revision is
unpacked with ``git archive`` into a temporary folder: nothing is checked out.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "bigbuckbunny_448x252.mp4"


def _frames(width: int, height: int, count: int):
    import torch
    import torch.nn.functional as F

    from pervfi_core.pipeline import Hooks
    from pervfi_core.pipeline.loop import to_tensor
    from pervfi_core.video import open_input

    out = []
    for k, f in enumerate(open_input(SAMPLE)):
        if k >= 12 and len(out) < count:
            out.append(F.interpolate(to_tensor(f, Hooks()), size=(height, width), mode="bicubic",
                                     align_corners=False).clamp(0, 1))
    return torch.cat(out)


def measure(width: int, height: int, pairs: int, model_spec: str, flow: str) -> dict:
    """One repeat in this process: seconds per pair of the fused and of the split path."""
    from pervfi_core import engines, pipeline

    frames = _frames(width, height, pairs + 1)
    load_engine = getattr(engines, "load_engine", None) or engines.load_model  # a baseline before the rename
    model, est = load_engine(model_spec), engines.load_estimator(flow)
    pipeline.interpolate(frames[:2], model, est, 2)  # warm-up: first-call allocations, lazy imports

    start, cpu = time.perf_counter(), time.process_time()
    fused = pipeline.interpolate(frames, model, est, 2)
    t_fused, c_fused = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    flows = pipeline.estimate_flow(frames, est)
    t_flow = time.perf_counter() - start
    blends = pipeline.blend(frames, flows, model, 2)
    t_blend = time.perf_counter() - start - t_flow
    split = pipeline.decode(frames, blends, model)
    t_split, c_split = time.perf_counter() - start, time.process_time() - cpu
    assert split.shape == fused.shape
    return {"fused": t_fused / pairs, "fused_cpu": c_fused / pairs, "split": t_split / pairs,
            "split_cpu": c_split / pairs, "flow": t_flow / pairs, "blend": t_blend / pairs,
            "decode": (t_split - t_flow - t_blend) / pairs}


def _unpack(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` (its pervfi_core and samples) under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pervfi_core", "samples",
                              "weights_manifest.json"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _one(root: Path, size: str, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", size, "--pairs", str(args.pairs),
           "--model", args.model, "--flow", args.flow]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"{root} {size} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


COLUMNS = ("fused", "fused_cpu", "split", "split_cpu", "flow", "blend", "decode")


def _cell(repeats: list[dict], key: str) -> str:
    """Median (min) of one column over the repeats."""
    values = [r[key] for r in repeats]
    return f"{statistics.median(values):.4f} ({min(values):.4f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["448x256", "1280x720"])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="default")
    ap.add_argument("--flow", default="dis")
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per run (1: steadiest on shared cores)")
    ap.add_argument("--baseline", default=None, help="a git revision to time beside this checkout")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one repeat in this process
    args = ap.parse_args()
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        w, h = map(int, args.one.split("x"))
        print(json.dumps(measure(w, h, args.pairs, args.model, args.flow)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"this checkout": ROOT}
        if args.baseline:
            versions = {f"baseline {args.baseline}": _unpack(args.baseline, Path(tmp)), **versions}
        runs = {(v, s): [] for v in versions for s in args.sizes}
        for _ in range(args.repeats):
            for size in args.sizes:
                for name, root in versions.items():
                    runs[name, size].append(_one(root, size, args))
        print(f"engine {args.model}, motion {args.flow}, {args.pairs} pairs x {args.repeats} repeats, "
              f"{args.threads} thread(s); seconds per pair, median (min)\n")
        print("| size | version | fused (wall) | fused (CPU) | split (wall) | split (CPU) | split: flow | blend | decode |")
        print("|---|---|---|---|---|---|---|---|---|")
        for size in args.sizes:
            for name in versions:
                cells = " | ".join(_cell(runs[name, size], k) for k in COLUMNS)
                print(f"| {size} | {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
