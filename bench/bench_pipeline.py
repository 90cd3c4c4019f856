"""Speed and memory of the default pipeline (auto motion + training-free engine), and the primary-frame study.

    python bench/bench_pipeline.py                 # seconds per output frame + peak RSS at 448x256 and 1280x720
    python bench/bench_pipeline.py --sizes 3840x2160 --pairs 1   # 4K: must stay within 8 GB on a CPU
    python bench/bench_pipeline.py --study         # nearer-frame primary vs always frame 0 (bundled clip, x4)

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

    from pervfi_core.pipeline_hooks import Hooks
    from pervfi_core.pipeline_loop import to_tensor
    from pervfi_core.video import open_input

    out = []
    for k, f in enumerate(open_input(SAMPLE)):
        if k >= 12 and len(out) < count:
            out.append(F.interpolate(to_tensor(f, Hooks()), size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1))
    return torch.cat(out)


def run_size(width: int, height: int, pairs: int, device: str) -> dict:
    import torch

    from pervfi_core.pipeline import interpolate_pair
    from pervfi_core.pipeline_hooks import Hooks
    from pervfi_core.pipeline_models import load_estimator, load_model

    frames = _frames(width, height, pairs + 1)
    model, est = load_model(None), load_estimator("auto", device=device)
    hooks = Hooks(device=device)
    interpolate_pair(hooks.place(frames[:1]), hooks.place(frames[1:2]), [0.5], model, est, hooks=hooks)  # warm-up
    times = []
    for i in range(pairs):
        start = time.perf_counter()
        interpolate_pair(hooks.place(frames[i:i + 1]), hooks.place(frames[i + 1:i + 2]), [0.5], model, est, hooks=hooks)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    # min = least disturbed by other processes on a shared machine; median = typical
    return {"size": f"{width}x{height}", "device": device, "estimator": est.name, "threads": torch.get_num_threads(),
            "s_per_output_frame_min": round(times[0], 3), "s_per_output_frame_median": round(times[len(times) // 2], 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def study() -> None:
    """Drop 3 of every 4 frames of the bundled clip, interpolate at t = 1/4, 1/2, 3/4 with each choice."""
    import torch

    from pervfi_core.flow import build_estimator
    from pervfi_core.metrics import psnr, ssim
    from pervfi_core.pipeline import interpolate
    from pervfi_core.training_free import TrainingFreeVFI

    frames = _frames(448, 252, 40)
    kept = frames[::4]
    n = (kept.shape[0] - 1) * 4 + 1
    gt = frames[:n]
    est = build_estimator("auto")
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
    ap.add_argument("--sizes", nargs="+", default=["448x256", "1280x720"])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--study", action="store_true")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one size in this process
    args = ap.parse_args()
    if args.study:
        return study()
    if args.one:
        w, h = map(int, args.one.split("x"))
        print(json.dumps(run_size(w, h, args.pairs, args.device)))
        return
    for size in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--one", size, "--pairs", str(args.pairs), "--device", args.device],
                              capture_output=True, text=True)
        print(proc.stdout.strip() or proc.stderr.strip()[-800:], flush=True)


if __name__ == "__main__":
    main()
