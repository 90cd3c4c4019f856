"""Seconds per stage and peak memory of the PerVFI core (flow estimation excluded).

    python bench/bench_core.py [--sizes 448x256 1280x720] [--repeats 3] [--threads N] [--weights FILE]

Stages: pyramid (encoder + Softmetric), forward warp (splats + holes + F_t->1), PAM, ADM, fuse, decode
(normalizing flow, τ = 0.3). Each (size, dtype) runs in a fresh child process so that its peak RSS is its
own. Weights: an official-layout v00 file (default: the parity fixture weights beside the project; the
real checkpoint costs the same). The bfloat16 row runs the ASB and fusion in bfloat16 and decodes in
float32 (``PerVFI.set_blend_dtype``; the invertible flow needs float32); its deviation is the max/mean
|bf16 - fp32| of the output frame.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# random weights under official keys (beside the project in CI); a fresh random init of the flow is not
# usable for decoding (its ActNorms would initialise from data)
FIXTURE_WEIGHTS = ROOT.parent / "shared" / "fixtures" / "parity" / "weights" / "pervfi_v00.safetensors"

from pervfi_core import tune_malloc  # noqa: E402
from pervfi_core.asb import forward_warp  # noqa: E402
from pervfi_core.configs import build_model  # noqa: E402

STAGES = ("pyramid", "forward_warp", "pam", "adm", "fuse", "decode")


def _model(weights: str | None, dtype: torch.dtype):
    torch.manual_seed(0)
    model = build_model("v00")
    if weights:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(weights))
    return model.to(dtype)



def _inputs(width: int, height: int):
    g = torch.Generator().manual_seed(0)
    img0 = torch.rand(1, 3, height, width, generator=g)
    img1 = torch.roll(img0, shifts=(3, 5), dims=(2, 3))
    fflow = torch.zeros(1, 2, height, width)
    fflow[:, 0], fflow[:, 1] = 5.0, 3.0
    fflow = fflow + torch.randn(1, 2, height, width, generator=g) * 0.5
    return img0, img1, fflow, -fflow


@torch.inference_mode()
def _run_once(model, decoder, inputs, dtype, times, flops: dict | None = None):
    """One frame, stage by stage: seconds into ``times``; with ``flops``, instead counts each stage's
    convolution and matrix-product FLOPs (torch's FlopCounterMode, as the issue's 400 GFLOP figure)."""
    from torch.utils.flop_counter import FlopCounterMode

    img0, img1, fflow, bflow = (x.to(dtype) for x in inputs)
    t = torch.full((1,), 0.5)

    def timed(name, fn):
        if flops is not None:
            with FlopCounterMode(display=False) as counter:
                out = fn()
            flops[name] = counter.get_total_flops()
            return out
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - start)
        times.setdefault("cpu:" + name, []).append(time.process_time() - cpu)
        return out

    enc0, enc1, z01, z10 = timed("pyramid", lambda: model.featurePyramid(img0 * 2 - 1, img1 * 2 - 1, fflow, bflow))
    warped = timed("forward_warp", lambda: forward_warp(enc0, fflow, bflow, z01, z10, t))
    aligned = timed("pam", lambda: model.deformableAlign(warped.features, enc1, warped.holes, warped.flow_t1))
    blended, masks = timed("adm", lambda: model.attentionMerge(warped.features, aligned, warped.holes))
    conds = timed("fuse", lambda: model.multiscaleFuse(blended))
    del enc0, enc1, warped, aligned, blended
    conds = [c.float() for c in conds]
    zs = [torch.randn(s, generator=torch.Generator().manual_seed(0)) * 0.3
          for s in decoder.condFLownet.z_shapes(1, *img0.shape[-2:])]
    y = timed("decode", lambda: decoder.condFLownet.decode(conds, zs))
    return ((y + 1) / 2).clamp(0, 1)


def _matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Sustained GFLOP/s of a large matrix product in ``dtype`` on this process's threads (the floor's rate)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def child(size: str, dtype_name: str, repeats: int, weights: str | None) -> dict:
    width, height = map(int, size.split("x"))
    dtype = getattr(torch, dtype_name)
    model = _model(weights, torch.float32).set_blend_dtype(dtype)  # the decoder stays float32
    decoder = model
    inputs = _inputs(width, height)
    with torch.inference_mode():  # the public path first: its peak is what users see
        start = time.perf_counter()
        blend = model.blend(*(x.to(dtype) for x in inputs), 0.5)
        blend_bytes = blend.nbytes()
        decoder.decode(blend, tau=0.3, seed=0)
        api_seconds = time.perf_counter() - start
        del blend
    api_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times: dict[str, list[float]] = {}
    out = None
    for _ in range(repeats):
        out = _run_once(model, decoder, inputs, dtype, times)
    flops: dict[str, int] = {}
    _run_once(model, decoder, inputs, dtype, {}, flops)
    result = {"size": size, "dtype": dtype_name, "api_peak_rss_mb": api_peak, "api_seconds": api_seconds,
              "gflop": {k: v / 1e9 for k, v in flops.items()}, "matmul_gflops": _matmul_rate(dtype),
              "blend_mb": blend_bytes / 2**20,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "stages": {k: statistics.median(v) for k, v in times.items()}}
    if dtype != torch.float32:
        reference = _model(weights, torch.float32)
        ref = _run_once(reference, reference, inputs, torch.float32, {})
        diff = (out.float() - ref).abs()
        result["deviation"] = (diff.max().item(), diff.mean().item())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["448x256", "1280x720"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", default=str(FIXTURE_WEIGHTS) if FIXTURE_WEIGHTS.is_file() else None,
                        help="official-layout v00 safetensors")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as it is (default: pervfi_core.tune_malloc(), as the CLI does)")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        if not args.default_malloc:
            tune_malloc()
        print(json.dumps(child(*args.child, args.repeats, args.weights)))
        return
    rows = []
    for size in args.sizes:
        for dtype in args.dtypes:
            cmd = [sys.executable, __file__, "--child", size, dtype, "--repeats", str(args.repeats)]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            cmd += ["--default-malloc"] if args.default_malloc else []
            cmd += ["--weights", args.weights] if args.weights else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(f"{size} {dtype}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    malloc = "glibc defaults" if args.default_malloc else "pervfi_core.tune_malloc()"
    print(f"threads: {args.threads or torch.get_num_threads()}, repeats: {args.repeats} (median), malloc: {malloc}\n")
    print("Seconds per frame and stage, wall clock / CPU time of this process (CPU time is the robust figure "
          "on a shared machine; with 1 thread it is what an idle core would take).\n")
    print("| size | dtype | clock | " + " | ".join(STAGES) + " | total (s) | peak RSS (MB) | max / mean dev. |")
    print("|---" * (len(STAGES) + 6) + "|")
    api_rows = []
    for r in rows:
        dev = "%.2g / %.2g" % tuple(r["deviation"]) if "deviation" in r else "-"
        for clock, prefix in (("wall", ""), ("cpu", "cpu:")):
            s = {k: r["stages"][prefix + k] for k in STAGES}
            cells = " | ".join(f"{s[k]:.3f}" for k in STAGES)
            print(f"| {r['size']} | {r['dtype']} | {clock} | {cells} | {sum(s.values()):.3f} | "
                  f"{r['peak_rss_mb']:.0f} | {dev} |")
        api_rows.append(f"| {r['size']} | {r['dtype']} | {r['api_seconds']:.3f} | {r['api_peak_rss_mb']:.0f} | "
                        f"{r['blend_mb']:.1f} |")
    print("\nFloor: each stage's convolution and matrix-product FLOPs (torch FlopCounterMode) at the rate this "
          "process sustains in a 2048² matrix product of that dtype; fraction = floor / measured wall time.\n")
    print("| size | dtype | matmul GFLOP/s | " + " | ".join(f"{k} GFLOP (floor %)" for k in STAGES)
          + " | total GFLOP | floor (s) | fraction of floor |")
    print("|---" * (len(STAGES) + 6) + "|")
    for r in rows:
        rate, g = r["matmul_gflops"], r["gflop"]
        cells = " | ".join(f"{g[k]:.1f} ({100 * g[k] / rate / r['stages'][k]:.0f} %)" for k in STAGES)
        floor = sum(g.values()) / rate
        total = sum(r["stages"][k] for k in STAGES)
        print(f"| {r['size']} | {r['dtype']} | {rate:.0f} | {cells} | {sum(g.values()):.0f} | {floor:.2f} | "
              f"{100 * floor / total:.0f} % |")
    print("\nPublic path (model.blend + decode, first call, includes warm-up), peak RSS of the process at "
          "that point, and the memory one Blend holds:\n")
    print("| size | dtype | blend + decode (s, wall) | peak RSS (MB) | Blend (MB) |\n|---|---|---|---|---|")
    print("\n".join(api_rows))


if __name__ == "__main__":
    main()
