"""``python -m pervfi_core train``: PerVFI's training pipeline from the command line.

Data sources: ``--synthetic`` (the default; triplets with exact ground truth rendered from
photographs of the scikit-image wheel), ``--clip PATH`` (a video or frame folder; triplets of
consecutive frames, i.e. every other frame dropped; repeatable, and combinable with ``--synthetic``),
``--vimeo ROOT`` (Vimeo-90K triplets), or ``--prepared FILE`` (items precomputed earlier with their
flows, for a machine without the registries or the estimators). The fixed validation split is the
last 5 % of the items: of the synthetic ones when ``--synthetic`` is given, else of the last clip or
prepared file.

Writes ``OUT/last.pt`` (resumable: run the same command again), ``OUT/metrics.jsonl`` and, with
``--export``, safetensors weights whose metadata rebuilds the model
(:func:`pervfi_core.configs.model_from_metadata`). The same command runs on a GPU with
``--device cuda --amp --workers N``, and on N GPUs with ``torchrun --nproc_per_node N -m pervfi_core
train ...`` (DDP).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..configs import build_model, config_metadata, config_name
from ..engines import load_engine
from ..weights.io import write_safetensors
from ..errors import InputError

log = logging.getLogger(__name__)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an argparse ``subparsers`` object; returns its parser."""
    p = subparsers.add_parser("train", help="train PerVFI (paper §3.2 objective) on synthetic, clip or Vimeo triplets",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="store_true",
                   help="synthetic triplets from registry photos (the default when no --clip/--vimeo is given)")
    p.add_argument("--clip", metavar="PATH", action="append", default=[],
                   help="a video file or frame folder: consecutive-frame triplets (repeatable)")
    p.add_argument("--gaps", default="1", help="comma list of frame gaps for --clip triplets (k, k+g, k+2g); "
                   "e.g. 1,2,3 also trains on every third and every fourth frame's motion (default 1)")
    p.add_argument("--clip-width", type=int, default=None, help="downscale wider --clip frames to this width first")
    p.add_argument("--clip-stride", type=int, default=1, help="use every N-th triplet of each --clip and gap")
    p.add_argument("--photos", metavar="DIR", action="append", default=[],
                   help="a folder of photographs for the synthetic scenes, besides scikit-image's (repeatable)")
    p.add_argument("--max-shift", type=float, default=None,
                   help="largest synthetic camera shift in px (foreground: 1.5x); default patch/8")
    p.add_argument("--prepared", metavar="FILE", action="append", default=[],
                   help="a table of precomputed items with their flows (a run's data_*.pt, or bench/"
                   "prepare_device_items.py's compact file); repeatable; replaces --synthetic/--clip")
    p.add_argument("--vimeo", metavar="ROOT", help="Vimeo-90K triplet root (tri_trainlist.txt + sequences/)")
    p.add_argument("--config", default="compact", help="model config name (pervfi_core.train.configs), default compact")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=128, help="square training patch side in pixels (multiple of 8)")
    p.add_argument("--items", type=int, default=1024, help="synthetic triplets to render (the last 5%% validate)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--halve-every", type=int, default=20_000, help="halve the learning rate every N steps")
    p.add_argument("--mu", type=float, default=0.2, help="weight of the perceptual term (paper: 0.2)")
    p.add_argument("--anchor", type=float, default=0.0,
                   help="normalizing-flow decoder: weight of an L1 term on the τ = 0 frame (not in the paper; default 0)")
    p.add_argument("--anchor-mu", type=float, default=0.0,
                   help="with --anchor: add this weight times the perceptual distance of the τ = 0 frame to its "
                   "L1 (default 0)")
    p.add_argument("--perceptual", choices=("lpips", "features", "none"), default="lpips",
                   help="VGG16 perceptual distance of the μ term")
    p.add_argument("--flows", default=None, help="comma list of frozen estimators chosen per item "
                   "(e.g. dis,gmflow-refine; 'exact' = true synthetic motion); default dis,exact for synthetic, dis otherwise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop after the first step past this wall time (validated, checkpointed, exported); "
                   "--steps stays the upper bound and the learning-rate schedule")
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--out", required=True, help="run directory (checkpoint, metrics, precomputed data)")
    p.add_argument("--no-resume", action="store_true", help="start over even when OUT/last.pt exists")
    p.add_argument("--init", metavar="FILE", help="start from the weights of an exported file of the same config "
                   "(fine-tuning: new optimiser and schedule; OUT/last.pt, when present, still resumes)")
    p.add_argument("--export", metavar="FILE", help="write the final weights as safetensors to FILE")
    p.set_defaults(func=run)
    return p


def _dataset(args, flow_names: tuple[str, ...], synthetic: bool):
    from torch.utils.data import ConcatDataset, Subset

    from .data import (FrameTriplets, Precomputed, SyntheticTriplets, VimeoTriplets, folder_photos, read_image,
                       registry_photos)
    from .loop import FlowProvider

    size = (args.patch, args.patch)
    if args.vimeo:
        return VimeoTriplets(args.vimeo, size=size, seed=args.seed)
    if args.prepared:
        parts = [Precomputed.from_file(f) for f in args.prepared]
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)
    parts = []
    real_flows = tuple(n for n in flow_names if n != "exact")  # real footage has no true motion
    gaps = [int(g) for g in str(args.gaps).split(",") if g.strip()]
    for k, clip in enumerate(args.clip):
        frames = _read_frames(Path(clip), width=args.clip_width)
        for gap in gaps:
            base = FrameTriplets(frames, size=size, seed=args.seed + k, gap=gap)
            if args.clip_stride > 1:
                base = Subset(base, range(0, len(base), args.clip_stride))
            tag = (f"clip_{Path(clip).stem}_{args.patch}_{len(base)}_{args.seed + k}_g{gap}_w{args.clip_width}"
                   f"_{'-'.join(real_flows)}")
            parts.append(Precomputed(base, FlowProvider(real_flows, seed=args.seed, device="cpu"),
                                     cache=Path(args.out) / f"data_{tag}.pt"))
    if synthetic:  # last: the validation split comes from it
        photos = [read_image(p) for p in registry_photos()]
        for folder in args.photos:
            photos += folder_photos(Path(folder))
        shift = args.max_shift if args.max_shift is not None else args.patch / 8
        base = SyntheticTriplets(photos, length=args.items, size=size, max_shift=shift, seed=args.seed,
                                 with_flows="exact" in flow_names)
        tag = f"synthetic_{args.patch}_{len(base)}_{args.seed}_{len(photos)}p_s{shift:g}_{'-'.join(flow_names)}"
        parts.append(Precomputed(base, FlowProvider(flow_names, seed=args.seed, device="cpu"),
                                 cache=Path(args.out) / f"data_{tag}.pt"))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _read_frames(path: Path, *, width: int | None = None) -> torch.Tensor:
    from ..video import open_input

    def prepare(f):
        if width and f.shape[1] > width:  # only ever downscale
            import cv2

            f = cv2.resize(f, (width, round(f.shape[0] * width / f.shape[1] / 2) * 2), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(np.array(f)).permute(2, 0, 1).float() / 255  # a copy: decoded frames may be read-only

    frames = [prepare(f) for f in open_input(path)]
    if len(frames) < 3:
        raise InputError(f"{path}: need at least 3 frames for training triplets, got {len(frames)}")
    return torch.stack(frames)


def run(args) -> int:
    from .loop import TrainConfig, train

    if args.patch % 8:
        raise InputError(f"--patch must be a multiple of 8, got {args.patch}")
    if args.vimeo and (args.clip or args.synthetic):
        raise InputError("--vimeo trains on Vimeo-90K alone: drop --clip/--synthetic")
    if args.prepared and (args.clip or args.synthetic or args.vimeo):
        raise InputError("--prepared items carry their own data and flows: drop --clip/--synthetic/--vimeo")
    for f in args.prepared:
        if not Path(f).is_file():
            raise InputError(f"--prepared {f}: no such file; make one with bench/prepare_device_items.py")
    if args.anchor_mu > 0 and (args.anchor <= 0 or args.perceptual == "none"):
        raise InputError("--anchor-mu weighs a perceptual part inside the anchor term: give --anchor λ > 0 and a "
                         "--perceptual distance (not 'none')")
    synthetic = args.synthetic or not (args.clip or args.vimeo or args.prepared)
    default_flows = "dis,exact" if synthetic else "dis"
    flow_names = tuple(n.strip() for n in (args.flows or default_flows).split(",") if n.strip())
    if not synthetic and "exact" in flow_names:
        raise InputError("--flows exact needs --synthetic data (real footage has no true motion)")
    if args.clip and not [n for n in flow_names if n != "exact"]:
        raise InputError("--clip needs an estimator in --flows besides 'exact' (real footage has no true motion)")
    torch.manual_seed(args.seed)
    args.config = config_name(args.config)  # an old name (configs.RENAMED) is recorded as today's
    model = build_model(args.config)
    if args.init:
        start = load_engine(args.init)
        if start.config != model.config:
            raise InputError(f"--init {args.init}: its config {start.config} is not --config {args.config} "
                             f"({model.config}); pass the config it was trained with")
        model.load_state_dict(start.network.state_dict())
    cfg = TrainConfig(model_config=args.config, steps=args.steps, batch_size=args.batch, lr=args.lr,
                      halve_every=args.halve_every, mu=args.mu, anchor=args.anchor,
                      anchor_mu=args.anchor_mu, seed=args.seed,
                      val_every=args.val_every, ckpt_every=args.ckpt_every, workers=args.workers, amp=args.amp,
                      device=args.device, flow_estimators=flow_names, time_limit_s=args.time_limit)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = _dataset(args, flow_names, synthetic)
    log.info("data ready: %d items in %.0f s", len(data), time.perf_counter() - start)
    perceptual = None
    if args.perceptual != "none" and (args.mu > 0 or args.anchor_mu > 0):  # either term may use it
        from .perceptual import VGGPerceptualLoss

        perceptual = VGGPerceptualLoss(kind=args.perceptual).to(args.device)
    flows = None if args.vimeo else (lambda batch, idx: (batch["fflow"], batch["bflow"]))
    records = train(model, data, cfg, args.out, perceptual=perceptual, flows=flows, resume=not args.no_resume)
    if records:
        print(json.dumps(records[-1]))
    if args.export:
        ckpt = Path(args.out) / "last.pt"
        done = torch.load(ckpt, weights_only=True)["step"] if ckpt.is_file() else cfg.steps
        if done != cfg.steps and args.time_limit is None:
            log.warning("exporting the checkpoint of step %d (asked for --steps %d)", done, cfg.steps)
        data = {"vimeo": bool(args.vimeo), "synthetic_items": args.items if synthetic else 0,
                "clips": [Path(c).name for c in args.clip],
                "prepared": [Path(f).name for f in args.prepared], "gaps": args.gaps, "clip_width": args.clip_width,
                "clip_stride": args.clip_stride, "photo_folders": len(args.photos), "max_shift": args.max_shift,
                "patch": args.patch, "perceptual": args.perceptual,
                "init": Path(args.init).name if args.init else None}
        export(model.cpu(), args.config, args.export,
               extra={"train_config": asdict(cfg), "train_data": data, "trained_steps": done})
        print(f"wrote {args.export} (step {done})")
    return 0


def export(model, config_name: str, dest: str | Path, *, extra: dict | None = None) -> Path:
    """Write ``model``'s weights as safetensors with the metadata that rebuilds it (see configs)."""
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {**config_metadata(model, config_name), **{k: json.dumps(v, sort_keys=True) for k, v in (extra or {}).items()}}
    return write_safetensors(sd, Path(dest), meta)


def main(argv=None) -> int:
    """Stand-alone entry (``python -m pervfi_core.train.cli ...``) until the main CLI mounts ``train``."""
    parser = argparse.ArgumentParser(prog="python -m pervfi_core.train.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
