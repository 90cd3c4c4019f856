"""Engines against RIFE 4.25/4.26 and frame averaging on the validation set of real footage.

    python bench/bench_validation.py [--engines training-free pervfi-rife:tau=0 pervfi-rife:tau=0.3 ...]
                                     [--validation ../shared/validation] [--limit N] [--time-size 448x256]
                                     [--out bench/results/validation.md] [--json OUT.json]
    python bench/bench_validation.py --from-json OUT.json [the run's own options]   # the report again, no rerun

An engine spec is ``NAME[:tau=T][:flow=ESTIMATOR][:seed=S]`` (a ``load_engine`` name, id or file; flow default
``auto``, i.e. DIS on a CPU; engines with ``needs_motion = False`` get no flows). Specs of one engine and
estimator share one load and one blend per triplet; only the decode runs per τ (seed = triplet index
unless given). Anchors in the same run: frame averaging, and RIFE 4.25/4.26 itself — the project's IFNet
(weights: manifest ``rife-pypi``) at t = 0.5, both frames backward-warped along F_t->0 / F_t->1 and blended
by its mask, as RIFE 4.25 synthesises (:func:`pervfi_core.pervfi_rife.trunk.rife_frame`).

Metrics (:mod:`pervfi_core.metrics`): PSNR, SSIM, LPIPS-alex, LPIPS-vgg, DISTS of each triplet's middle
frame at t = 0.5, averaged per set, per motion class (the manifest's) and overall (mean over triplets).
Time: seconds per frame (wall and this process's CPU time, estimator + blend + one decode) over the set,
and side by side on one 448x256 pair (``--time-size``, median of ``--time-repeats``) — the CPU figure is
the robust one on a shared machine. Paired against RIFE: each method's per-triplet difference to RIFE's frame
on the same triplet, its mean with a 95 % bootstrap interval (triplets resampled, seeded) and how many triplets
it wins, per motion class, per set and overall — whether a class's gap is one that its few triplets resolve.
The validation set is never trained on (its README).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout, as in the other benches

from pervfi_core.engines import load_engine, load_estimator  # noqa: E402
from pervfi_core.metrics import DISTS, LPIPS, psnr, ssim  # noqa: E402
from pervfi_core.pervfi_rife.trunk import RIFETrunk, rife_frame  # noqa: E402
from report import write_report  # noqa: E402

DEFAULT_VALIDATION = HERE.parent.parent / "shared" / "validation"
METRICS = ("psnr", "ssim", "lpips_alex", "lpips_vgg", "dists")
HEADER = ("PSNR↑", "SSIM↑", "LPIPS-alex↓", "LPIPS-vgg↓", "DISTS↓")
RIFE, AVERAGE = "RIFE 4.25/4.26", "frame averaging"
BOOTSTRAP = 10_000  # resamples of the paired interval
TIME_SIZE, TIME_REPEATS = "448x256", 5  # the side-by-side timing's defaults (the report names only other values)


@dataclass
class Group:
    """Specs sharing one engine and estimator: load and blend once, decode per (label, tau, seed)."""

    engine: str
    flow: str
    decodes: list[tuple[str, float, int | None]] = field(default_factory=list)


def parse_specs(specs: list[str]) -> list[Group]:
    groups: dict[tuple[str, str], Group] = {}
    for spec in specs:
        name, *opts = spec.split(":")
        kv = dict(o.split("=", 1) for o in opts)
        unknown = set(kv) - {"tau", "flow", "seed"}
        if unknown:
            raise SystemExit(f"{spec}: unknown option(s) {sorted(unknown)} (tau, flow, seed)")
        flow = kv.get("flow", "auto")
        group = groups.setdefault((name, flow), Group(name, flow))
        group.decodes.append((spec, float(kv.get("tau", 0.0)), int(kv["seed"]) if "seed" in kv else None))
    return list(groups.values())


def read_png(path: Path) -> torch.Tensor:
    import cv2

    arr = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


def triplets(root: Path, limit: int | None) -> list[dict]:
    items = json.loads((root / "manifest.json").read_text())
    return items[:limit] if limit else items


class Methods:
    """Every method as ``fn(img0, img1) -> {label: frame}`` (one call may give several τ)."""

    def __init__(self, groups: list[Group]):
        self.trunk = RIFETrunk(load_estimator("rife").network)
        self.fns = {AVERAGE: lambda a, b, k, one=False: {AVERAGE: 0.5 * (a + b)},
                    RIFE: lambda a, b, k, one=False: {RIFE: rife_frame(self.trunk(a, b, 0.5)).clamp(0, 1)}}
        for g in groups:
            self.fns[" ".join(d[0] for d in g.decodes)] = self._engine_fn(g)

    @staticmethod
    def _engine_fn(g: Group):
        engine = load_engine(g.engine)
        est = None if not getattr(engine, "needs_motion", True) else load_estimator(g.flow)

        def run(a, b, k, one=False):  # one: only the first spec's decode (what one output frame costs)
            f, bw = est(a, b) if est is not None else (None, None)
            blend = engine.blend(a, b, f, bw, 0.5)
            return {label: engine.decode(blend, tau=tau, seed=k if seed is None else seed).clamp(0, 1)
                    for label, tau, seed in g.decodes[:1 if one else None]}

        return run

    def labels(self) -> list[str]:
        """Every row of the report, in run order (an engine's key is its specs joined by spaces)."""
        out = []
        for key in self.fns:
            out += [key] if key in (AVERAGE, RIFE) else key.split(" ")
        return out


class Scorer:
    """Every metric of one triplet's outputs against its ground truth, whose deep features are computed once."""

    def __init__(self):
        self.alex, self.vgg, self.dists = LPIPS(net="alex").eval(), LPIPS(net="vgg").eval(), DISTS().eval()

    def reference(self, gt):
        self.gt, self.refs = gt, {m: getattr(self, m).reference(gt) for m in ("alex", "vgg", "dists")}

    def __call__(self, y, *, full: bool = True) -> dict[str, float]:
        """Every metric, or (``full=False``) the ones τ is chosen by plus PSNR: SSIM and LPIPS-vgg cost most."""
        out = {"psnr": float(psnr(y, self.gt)), "lpips_alex": float(self.alex.against(y, self.refs["alex"])),
               "dists": float(self.dists.against(y, self.refs["dists"]))}
        if full:
            out.update(ssim=float(ssim(y, self.gt)), lpips_vgg=float(self.vgg.against(y, self.refs["vgg"])))
        return out


def timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def time_side_by_side(methods: Methods, img0, img1, size: tuple[int, int], repeats: int) -> dict[str, tuple]:
    """Median (wall, CPU) seconds per frame of every method on one pair resized to ``size`` (W, H)."""
    a, b = (F.interpolate(x, size=(size[1], size[0]), mode="area") for x in (img0, img1))
    out = {}
    for key, fn in methods.fns.items():
        fn(a, b, 0, True)  # warm-up
        runs = [timed(fn, a, b, 0, True)[1:] for _ in range(repeats)]
        out[key] = tuple(float(np.median([r[i] for r in runs])) for i in (0, 1))
    return out


def mean_rows(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) if k in rows[0] else float("nan") for k in METRICS}


@torch.inference_mode()
def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", nargs="*", default=["training-free"])
    p.add_argument("--validation", type=Path, default=DEFAULT_VALIDATION)
    p.add_argument("--limit", type=int, help="only the first N triplets (a smoke run)")
    p.add_argument("--time-size", default=TIME_SIZE)
    p.add_argument("--time-repeats", type=int, default=TIME_REPEATS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-only", action="store_true", help="only the side-by-side timing (printed)")
    p.add_argument("--light-taus", action="store_true",
                   help="τ rows not in --full-taus get PSNR, LPIPS-alex and DISTS only (SSIM and LPIPS-vgg: '–'), "
                        "a third of the cost")
    p.add_argument("--full-taus", type=float, nargs="*", default=[0.0],
                   help="with --light-taus, the τ values that still get every metric (default: 0)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "validation.md")
    p.add_argument("--json", type=Path)
    p.add_argument("--from-json", type=Path, help="write the report of a saved --json run again (no rerun; give "
                                                  "the run's own options for the report's command line)")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        write_report(args.out, report(args, results))
        return results
    if not (args.validation / "manifest.json").is_file():
        print(f"skipped: no validation set at {args.validation} (manifest.json missing); it sits beside the "
              "checkout in ../shared/validation", file=sys.stderr)
        return None
    torch.set_num_threads(args.threads)
    groups = parse_specs(args.engines)
    methods, items = Methods(groups), triplets(args.validation, args.limit)
    w, h = (int(v) for v in args.time_size.split("x"))
    if args.time_only:  # the side-by-side timing alone, on the first triplet (printed, no file written)
        i0, i1 = (read_png(args.validation / items[0]["path"] / f"{n}.png") for n in ("frame0", "frame1"))
        side = time_side_by_side(methods, i0, i1, (w, h), args.time_repeats)
        for key, (wall, cpu) in side.items():
            print(f"| {key.split(' ')[0]} | {wall:.3f} | {cpu:.3f} | {cpu / side[RIFE][1]:.2f}x |")
        return {"side_by_side": side}
    score = Scorer()
    scores: dict[str, list[dict]] = {label: [] for label in methods.labels()}
    seconds: dict[str, list[tuple[float, float]]] = {key: [] for key in methods.fns}
    first = None
    for k, item in enumerate(items):
        folder = args.validation / item["path"]
        i0, gt, i1 = (read_png(folder / f"{n}.png") for n in ("frame0", "gt", "frame1"))
        first = first or (i0, i1)
        score.reference(gt)
        for key, fn in methods.fns.items():
            frames, wall, cpu = timed(fn, i0, i1, k)
            seconds[key].append((wall, cpu))
            for label, y in frames.items():
                full = (not args.light_taus or ":tau=" not in label
                        or float(label.split(":tau=")[1].split(":")[0]) in args.full_taus)
                scores[label].append({**score(y, full=full), "set": item["set"], "class": item["motion_class"],
                                      "name": item["name"]})
        print(f"{k + 1}/{len(items)} {item['set']}/{item['name']}", file=sys.stderr)
    side = time_side_by_side(methods, *first, (w, h), args.time_repeats)
    results = {"scores": scores, "seconds": {k: np.mean(v, axis=0).tolist() for k, v in seconds.items()},
               "side_by_side": side, "time_size": args.time_size, "time_repeats": args.time_repeats, "n": len(items),
               "date": datetime.date.today().isoformat()}
    lines = report(args, results)
    write_report(args.out, lines, data=results, json_path=args.json)
    return results


def _table(title: str, scores: dict[str, list[dict]], key: str | None) -> list[str]:
    groups = [None] if key is None else sorted({r[key] for r in next(iter(scores.values()))})
    lines = [title, "", f"| {'' if key is None else key + ' | '}method | n | " + " | ".join(HEADER) + " |",
             "|---|" + ("---|" if key else "") + "---|" * (len(HEADER) + 1)]
    for g in groups:
        for label, rows in scores.items():
            sel = [r for r in rows if key is None or r[key] == g]
            m = mean_rows(sel)
            cell = lambda k, f: "–" if np.isnan(m[k]) else format(m[k], f)  # noqa: E731
            lines.append(f"| {'' if key is None else g + ' | '}{label} | {len(sel)} | {cell('psnr', '.2f')} | "
                         f"{cell('ssim', '.4f')} | {cell('lpips_alex', '.4f')} | {cell('lpips_vgg', '.4f')} | "
                         f"{cell('dists', '.4f')} |")
    return lines + [""]


def paired(rows: list[dict], anchor: list[dict], metric: str, *, seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, 2.5 %, 97.5 %, wins) of the per-triplet difference ``rows`` − ``anchor`` in ``metric``: the mean, its
    95 % bootstrap interval over triplets (``BOOTSTRAP`` resamples, ``seed``) and the triplets where it is lower."""
    if [r["name"] for r in rows] != [a["name"] for a in anchor]:
        raise ValueError("paired rows must be the same triplets in the same order")
    d = np.array([r[metric] - a[metric] for r, a in zip(rows, anchor)])
    means = np.random.default_rng(seed).choice(d, (BOOTSTRAP, len(d))).mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi), int((d < 0).sum())


def _paired_table(scores: dict[str, list[dict]], key: str) -> list[str]:
    if RIFE not in scores:
        return []
    anchor = scores[RIFE]
    title = {"class": "per motion class", "set": "per set"}[key]
    lines = [f"## Paired against RIFE 4.25/4.26, {title}", "",
             "Per triplet, method − RIFE on the same triplet: the mean difference, its 95 % bootstrap interval over "
             f"triplets ({BOOTSTRAP:,} resamples) and the triplets where the method is lower (better). An interval "
             "that spans 0 is a difference these triplets do not resolve.", "",
             f"| {key} | method | n | Δ LPIPS-alex [95 %] | lower on | Δ DISTS [95 %] | lower on |",
             "|---|---|---|---|---|---|---|"]
    for group in sorted({r[key] for r in anchor}) + [None]:
        keep = [i for i, r in enumerate(anchor) if group is None or r[key] == group]
        for label, rows in scores.items():
            if label in (RIFE, AVERAGE):
                continue
            cells = []
            for metric in ("lpips_alex", "dists"):
                mean, lo, hi, wins = paired([rows[i] for i in keep], [anchor[i] for i in keep], metric)
                cells += [f"{mean:+.5f} [{lo:+.5f}, {hi:+.5f}]", f"{wins}/{len(keep)}"]
            lines.append(f"| {group or 'all'} | {label} | {len(keep)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _full_taus(args) -> str:
    return f" --full-taus {' '.join(f'{t:g}' for t in args.full_taus)}" if args.light_taus and args.full_taus != [0.0] else ""


def report(args, results) -> list[str]:
    scores, secs, side = results["scores"], results["seconds"], results["side_by_side"]
    size, repeats = results.get("time_size", args.time_size), results.get("time_repeats", args.time_repeats)
    timing = ((f" --time-size {size}" if size != TIME_SIZE else "")
              + (f" --time-repeats {repeats}" if repeats != TIME_REPEATS else ""))
    lines = [f"# Validation on real footage ({results.get('date', datetime.date.today())})", "",
             f"`python bench/bench_validation.py --engines {' '.join(args.engines)}"
             f"{f' --limit {args.limit}' if args.limit else ''}{' --light-taus' if args.light_taus else ''}{_full_taus(args)}{timing}` — {results['n']} triplets of ../shared/validation "
             f"(t = 0.5, full resolution), {args.threads} threads; overall = mean over triplets. "
             "Engines' default estimator `auto` is DIS on a CPU.", ""]
    lines += _table("## Overall", scores, None)
    lines += _table("## Per motion class", scores, "class")
    lines += _table("## Per set", scores, "set")
    lines += _paired_table(scores, "class") + _paired_table(scores, "set")
    lines += [f"## Seconds per frame ({args.threads} threads)", "",
              "Over the set: estimator + blend + every decode of the row (an engine with several τ decodes them all "
              f"from one blend); at {size}: estimator + blend + one decode, median of {repeats}.", "",
              f"| method | wall s/frame (set) | CPU s/frame (set) | wall s ({size}) | CPU s ({size}) |"
              f" CPU vs RIFE ({size}) |", "|---|---|---|---|---|---|"]
    for key in secs:
        lines.append(f"| {key} | {secs[key][0]:.3f} | {secs[key][1]:.3f} | {side[key][0]:.3f} | {side[key][1]:.3f} | "
                     f"{side[key][1] / side[RIFE][1]:.2f}x |")
    return lines


if __name__ == "__main__":
    main()
