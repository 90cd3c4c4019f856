"""Working memory of one engine call (blend + decode) and of one motion estimate, per pixel.

    python bench/memory_per_pixel.py [--sizes 256x448 512x896] [--engines v00 vb pervfi-own training-free]
                                     [--estimators gmflow-refine raft raft-small]

What ComfyUI's model manager is told before a run (``memory_required`` of ``load_models_gpu``) comes
from these figures (:data:`pervfi_core.engines.MEMORY_PER_PIXEL`, :data:`~pervfi_core.engines.
ESTIMATOR_MEMORY`). Method: the call runs once under ``torch.profiler`` with ``profile_memory=True``
on the CPU, float32, batch 1, t = 0.5; every allocation and free the profiler records is summed in
time order and the peak of that running sum is the call's footprint (activations and outputs; the
weights and inputs were allocated before). Frames are random, flows a smooth random field of a few
pixels (the footprint does not depend on values). Engines are convolutional (footprint linear in the
pixels): bytes per pixel = peak / (H x W), reported per size. The networks' all-pairs correlation is
quadratic: ``bytes = a * px + b * px**2`` is fitted through the two sizes. Official architectures use
random weights of the official layout (same cost as the real ones).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARITY_WEIGHTS = ROOT.parent / "shared" / "fixtures" / "parity" / "weights"


def peak_bytes(fn) -> int:
    """Peak of the running sum of allocations minus frees during ``fn()`` (CPU, torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage  # allocations of that op itself; "[memory]" events are frees
        peak = max(peak, live)
    return peak


def _inputs(h: int, w: int):
    gen = torch.Generator().manual_seed(0)
    img0, img1 = torch.rand(1, 3, h, w, generator=gen), torch.rand(1, 3, h, w, generator=gen)
    coarse = torch.randn(1, 2, max(1, h // 32), max(1, w // 32), generator=gen) * 4
    flow = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return img0, img1, flow, -flow


def engine(spec: str):
    from pervfi_core.engines import load_engine

    official = {"v00": "pervfi_v00", "vb": "pervfi_vb"}
    if spec in official:
        return load_engine(str(PARITY_WEIGHTS / f"{official[spec]}.safetensors"))
    return load_engine(spec)


def estimator(name: str):
    from pervfi_core.flow import build_estimator
    from pervfi_core.flow.gmflow import build_gmflow
    from pervfi_core.flow.raft import RAFT

    net = build_gmflow(name) if name.startswith("gmflow") else RAFT(small=name == "raft-small")
    return build_estimator(name, weights=net.state_dict())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["256x448", "512x896"], help="HxW")
    p.add_argument("--engines", nargs="*", default=["pervfi-rife", "v00", "vb", "pervfi-own", "training-free"])
    p.add_argument("--estimators", nargs="*", default=["gmflow-refine", "raft", "raft-small"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    print("| engine | " + " | ".join(f"{h}x{w} peak (MB) | bytes/px" for h, w in sizes) + " |")
    print("|---|" + "---|---|" * len(sizes))
    for spec in args.engines:
        model, row = engine(spec), []
        for h, w in sizes:
            img0, img1, fflow, bflow = _inputs(h, w)
            with torch.no_grad():
                peak = peak_bytes(lambda: model.decode(model.blend(img0, img1, fflow, bflow, 0.5), tau=0.3, seed=0))
            row += [f"{peak / 2**20:.0f}", f"{peak / (h * w):.0f}"]
        print(f"| {spec} | " + " | ".join(row) + " |", flush=True)
    if args.estimators:
        print("\n| estimator | " + " | ".join(f"{h}x{w} peak (MB)" for h, w in sizes) + " | a (B/px) | b (B/px²) |")
        print("|---|" + "---|" * len(sizes) + "---|---|")
    for name in args.estimators:
        est, peaks = estimator(name), []
        for h, w in sizes:
            img0, img1, _, _ = _inputs(h, w)
            peaks.append(peak_bytes(lambda: est(img0, img1)))
        (p1, p2), (n1, n2) = peaks[:2], [h * w for h, w in sizes[:2]]
        b = max(0.0, (p2 / n2 - p1 / n1) / (n2 - n1))  # peak/px = a + b*px through both sizes
        a = p1 / n1 - b * n1
        print(f"| {name} | " + " | ".join(f"{v / 2**20:.0f}" for v in peaks) + f" | {a:.0f} | {b:.3g} |", flush=True)


if __name__ == "__main__":
    main()
