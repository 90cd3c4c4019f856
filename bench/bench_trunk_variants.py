"""Inference-time variants of RIFE 4.25/4.26's own frame on the validation set: can a cheap change beat it?

    python bench/bench_trunk_variants.py [--validation ../shared/validation] [--limit N]
                                         [--out bench/results/trunk-variants.md]

The learned head of pervfi-rife ties RIFE 4.25/4.26 (weights/PERVFI_RIFE.md). Before training more, this
measures what needs no training, each against RIFE's frame on the same triplets (PSNR, LPIPS-alex, DISTS;
overall and per motion class):

* ``unsharp a/σ``: RIFE's frame + a·(frame − Gaussian_σ(frame)) everywhere (LPIPS rewards sharpness);
* ``unsharp where warps disagree``: the same, weighted by min(1, 20·|W0 − W1|) (only where blending blurs);
* ``half scale``: IFNet on frames downscaled 2x (Practical-RIFE's ``scale = 0.5`` for large motion), flows
  and mask upsampled, warping at full resolution;
* ``half scale above 24 px``: half scale only where RIFE's own median |F_t→0|, |F_t→1| exceeds 24 px.

The validation set is never trained on (its README); the chosen variants are few and fixed in advance.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout, as in the other benches
sys.path.insert(0, str(HERE))

from bench_validation import DEFAULT_VALIDATION, RIFE, Scorer, _table, read_png, triplets  # noqa: E402
from pervfi_core.engines import load_estimator  # noqa: E402
from pervfi_core.ops.warp import backward_warp  # noqa: E402
from pervfi_core.pervfi_rife.trunk import RIFETrunk, TrunkOutput, rife_frame  # noqa: E402
from pervfi_core.training_free import gaussian_blur  # noqa: E402
from report import write_report  # noqa: E402

HALF_ABOVE_PX = 24


def variants(trunk: RIFETrunk, img0: torch.Tensor, img1: torch.Tensor) -> dict[str, torch.Tensor]:
    out = trunk(img0, img1, 0.5)
    rife = rife_frame(out)
    detail = rife - gaussian_blur(rife, 1.0)
    disagree = ((out.warped0 - out.warped1).abs().mean(1, keepdim=True) * 20).clamp(0, 1)
    h, w = img0.shape[-2:]
    small = trunk(*(F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True) for x in (img0, img1)), 0.5)
    up = lambda x: F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)  # noqa: E731
    f0, f1 = up(small.flow_t0) * 2, up(small.flow_t1) * 2  # flows in px of the full grid
    half_frame = rife_frame(TrunkOutput(warped0=backward_warp(img0, f0, padding="border"),
                                        warped1=backward_warp(img1, f1, padding="border"),
                                        flow_t0=f0, flow_t1=f1, mask=up(small.mask), features=out.features))
    median = float(torch.cat([out.flow_t0, out.flow_t1], 1).norm(dim=1).median())
    return {RIFE: rife, "unsharp 0.3/σ1": rife + 0.3 * detail, "unsharp 0.3/σ2": rife + 0.3 * (rife - gaussian_blur(rife, 2.0)),
            "unsharp 0.6/σ1 where warps disagree": rife + 0.6 * disagree * detail, "half scale": half_frame,
            f"half scale above {HALF_ABOVE_PX} px": half_frame if median > HALF_ABOVE_PX else rife}


@torch.inference_mode()
def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--validation", type=Path, default=DEFAULT_VALIDATION)
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "trunk-variants.md")
    args = p.parse_args(argv)
    if not (args.validation / "manifest.json").is_file():
        print(f"skipped: no validation set at {args.validation}", file=sys.stderr)
        return None
    torch.set_num_threads(args.threads)
    trunk, score = RIFETrunk(load_estimator("rife").network), Scorer()
    scores: dict[str, list[dict]] = {}
    items = triplets(args.validation, args.limit)
    for k, item in enumerate(items):
        i0, gt, i1 = (read_png(args.validation / item["path"] / f"{n}.png") for n in ("frame0", "gt", "frame1"))
        score.reference(gt)
        for label, y in variants(trunk, i0, i1).items():
            scores.setdefault(label, []).append({**score(y.clamp(0, 1), full=False), "set": item["set"],
                                                 "class": item["motion_class"]})
        print(f"{k + 1}/{len(items)} {item['path']}", file=sys.stderr)
    lines = [f"# Inference-time variants of RIFE 4.25/4.26's frame ({datetime.date.today()})", "",
             f"`python bench/bench_trunk_variants.py{f' --limit {args.limit}' if args.limit else ''}` — "
             f"{len(items)} triplets of ../shared/validation, t = 0.5, full resolution (SSIM and LPIPS-vgg not "
             "computed: '–').", ""]
    lines += _table("## Overall", scores, None) + _table("## Per motion class", scores, "class")
    write_report(args.out, lines)
    return scores


if __name__ == "__main__":
    main()
