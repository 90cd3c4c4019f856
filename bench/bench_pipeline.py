"""Speed and memory of the pipeline (auto motion + an engine), and the primary-frame study.

    python bench/bench_pipeline.py                 # the default engine, seconds per output frame + peak RSS, 448x256 to 3840x2160
    python bench/bench_pipeline.py --model training-free   # or any engine / PerVFI checkpoint id or path
    python bench/bench_pipeline.py --study         # nearer-frame primary vs always frame 0 (bundled clip, x4)

Like the CLI, each measurement runs with :func:`pervfi_core.tune_malloc`.

Each size runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own. Frames are the
bundled sample clip resized to the size (real content and motion). Timing covers motion estimation,
blending and decoding of every new frame (x2: one new frame per pair); seconds per output frame =
wall time / new frames.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "bigbuckbunny_448x252.mp4"
sys.path.insert(0, str(ROOT))


def _frames(width: int, height: int, count: int):
    import torch
    import torch.nn.functional as F

    from pervfi_core.pipeline import Hooks
    from pervfi_core.pipeline.loop import to_tensor
    from pervfi_core.video import open_input

    out = []
    for k, f in enumerate(open_input(SAMPLE)):
        if k >= 12 and len(out) < count:
            out.append(F.interpolate(to_tensor(f, Hooks()), size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1))
    return torch.cat(out)


def run_size(width: int, height: int, pairs: int, device: str, model_spec: str | None = None, warmup: bool = True) -> dict:
    import torch

    from pervfi_core.pipeline import interpolate_pair
    from pervfi_core.pipeline import Hooks
    from pervfi_core.engines import load_estimator, load_engine

    frames = _frames(width, height, pairs + 1)
    model, est = load_engine(model_spec, device=device), load_estimator("auto", device=device)
    hooks = Hooks(device=device)
    if warmup:
        interpolate_pair(hooks.place(frames[:1]), hooks.place(frames[1:2]), [0.5], model, est, hooks=hooks)
    times = []
    for i in range(pairs):
        start = time.perf_counter()
        interpolate_pair(hooks.place(frames[i:i + 1]), hooks.place(frames[i + 1:i + 2]), [0.5], model, est, hooks=hooks)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    # min = least disturbed by other processes on a shared machine; median = typical
    return {"size": f"{width}x{height}", "device": device, "model": model_spec or "default", "estimator": est.name,
            "threads": torch.get_num_threads(),
            "s_per_output_frame_min": round(times[0], 3), "s_per_output_frame_median": round(times[len(times) // 2], 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def study() -> None:
    """Drop 3 of every 4 frames of the bundled clip, interpolate at t = 1/4, 1/2, 3/4 with each choice."""
    import torch

    from pervfi_core.engines import load_estimator
    from pervfi_core.metrics import psnr, ssim
    from pervfi_core.pipeline import interpolate
    from pervfi_core.training_free import TrainingFreeVFI

    frames = _frames(448, 252, 40)
    kept = frames[::4]
    n = (kept.shape[0] - 1) * 4 + 1
    gt = frames[:n]
    est = load_estimator("auto")
    lpips = None
    try:
        from pervfi_core.metrics import LPIPS

        lpips = LPIPS(net="alex").eval()
    except Exception as err:  # noqa: BLE001 — optional metric
        print(f"(LPIPS unavailable: {err})")
    for primary in ("nearer", "frame0"):
        out = interpolate(kept, TrainingFreeVFI(primary=primary), est, 4)
        new = [k for k in range(n) if k % 4]
        far = [k for k in range(n) if k % 4 == 3]  # t = 3/4: where the choice matters most
        row = {"primary": primary, "psnr_all": psnr(out[new], gt[new]).mean().item(),
               "psnr_t0.75": psnr(out[far], gt[far]).mean().item(), "ssim_all": ssim(out[new], gt[new]).mean().item()}
        if lpips is not None:
            with torch.no_grad():
                row["lpips_all"] = lpips(out[new], gt[new]).mean().item()
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["448x256", "1280x720", "3840x2160"])
    ap.add_argument("--model", default=None, help="engine: default, training-free, or a checkpoint id/path")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--no-warmup", action="store_true", help="time the first call too (slow models, large frames)")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--study", action="store_true")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one size in this process
    args = ap.parse_args()
    if args.study:
        return study()
    if args.one:
        import torch

        from pervfi_core import tune_malloc

        tune_malloc()  # as the CLI does
        if args.threads:
            torch.set_num_threads(args.threads)
        w, h = map(int, args.one.split("x"))
        print(json.dumps(run_size(w, h, args.pairs, args.device, args.model, not args.no_warmup)))
        return
    print("| size | model | motion | threads | s / output frame (min) | (median) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", size, "--pairs", str(args.pairs), "--device", args.device,
               "--threads", str(args.threads)] + (["--model", args.model] if args.model else []) + \
            (["--no-warmup"] if args.no_warmup else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {size} | failed: {proc.stderr.strip()[-300:]} | | | | | |", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {r['size']} | {r['model']} | {r['estimator']} | {r['threads']} | {r['s_per_output_frame_min']} | "
              f"{r['s_per_output_frame_median']} | {r['peak_rss_mib']} |", flush=True)


if __name__ == "__main__":
    main()
