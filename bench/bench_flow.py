"""Motion-estimator accuracy and speed on synthetic pairs with exact ground-truth motion.

Pairs are rendered from real photographs (the scikit-image sample photos, fetched from its wheel):
a background under a camera motion (shift, rotation, zoom) and a moving elliptical foreground patch
(:mod:`pervfi_core.train.synthetic`), so the true F0->1 and F1->0 are known at every pixel,
occlusions included. Reports the mean end-point error (EPE, px, all pixels, both directions) and
the seconds per frame pair (both directions, after one warm-up call).

    python bench/bench_flow.py [--device cpu] [--pairs 4] [--size 480 640] [--estimators dis gmflow-refine ...]

Estimators whose weights cannot be had (offline, no manual download) are listed as unavailable.
``NAME@S`` runs NAME with frames downscaled to a longer side of S px (what ``auto`` does on a CPU
without OpenCV).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pervfi_core.errors import PerVFIError  # noqa: E402
from pervfi_core.engines import load_estimator  # noqa: E402
from pervfi_core.train.data import read_image, registry_photos  # noqa: E402
from pervfi_core.train.synthetic import random_scene, synthetic_triplet  # noqa: E402

DEFAULT = ["dis", "gmflow-refine", "gmflow-refine@512", "gmflow", "raft", "raft-small"]


def make_pairs(n: int, size: tuple[int, int], max_shift: float, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    photos = [read_image(p) for p in registry_photos()]
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for i in range(n):
        scene = random_scene(photos[i % len(photos)], photos[(i + 3) % len(photos)], size=size,
                             max_shift=max_shift, generator=g)
        pairs.append(synthetic_triplet(scene))
    return pairs


def epe(flow: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean end-point error of a (2, H, W) flow against the truth, px."""
    return float((flow.float().cpu() - truth).norm(dim=0).mean())


def run(spec: str, pairs, device: str) -> dict[str, object]:
    name, _, side = spec.partition("@")
    try:
        est = load_estimator(name, device=device)
    except PerVFIError as err:
        return {"estimator": spec, "status": f"unavailable: {str(err).splitlines()[0][:90]}"}
    if side:
        est.max_side = int(side)
    errors, seconds = [], []
    first = pairs[0]
    est(first["img0"][None].to(device), first["img1"][None].to(device))  # warm-up
    for p in pairs:
        img0, img1 = p["img0"][None].to(device), p["img1"][None].to(device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fflow, bflow = est(img0, img1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
        errors.append((epe(fflow[0], p["flow01"]) + epe(bflow[0], p["flow10"])) / 2)
    return {"estimator": spec, "ran": est.name, "epe": sum(errors) / len(errors),
            "seconds": sum(seconds) / len(seconds), "status": "ok"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    ap.add_argument("--max-shift", type=float, default=24.0, help="camera shift bound, px (foreground: 1.5x)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--estimators", nargs="+", default=DEFAULT)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = make_pairs(args.pairs, tuple(args.size), args.max_shift)
    zero = sum(epe(torch.zeros(2, *args.size), p["flow01"]) for p in pairs) / len(pairs)
    print(f"{args.pairs} pairs {args.size[1]}x{args.size[0]}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}; EPE of a zero flow: {zero:.2f} px\n")
    print("| estimator | ran | EPE (px) | s / pair (both directions) |")
    print("|---|---|---:|---:|")
    for spec in args.estimators:
        r = run(spec, pairs, args.device)
        if r["status"] == "ok":
            print(f"| {r['estimator']} | {r['ran']} | {r['epe']:.2f} | {r['seconds']:.3f} |", flush=True)
        else:
            print(f"| {r['estimator']} | – | – | {r['status']} |", flush=True)


if __name__ == "__main__":
    main()
