"""Fine-tune the finest blocks of pervfi-rife's RIFE trunk for perception, resumable, on a CPU or a GPU.

    python -m pervfi_core.train.trunk_refine fit --out RUN --clip PATH ... [--steps N] [--time-limit S]
    python -m pervfi_core.train.trunk_refine export --out RUN [--step N] --into weights/pervfi_rife_head.safetensors

RIFE 4.25/4.26's IFNet finds the motion coarse to fine (scales 16, 8, 4, 2, 1); its last two blocks set the
final flow correction and the blend mask, where a frame turns sharp or soft. ``fit`` trains only those two
blocks (``--blocks 3,4``, 485k of its 5.7 M weights; the coarse motion stays RIFE's) on RIFE's own frame
``W0·m + W1·(1 − m)`` with

    L = LPIPS-alex(I, I_gt) + w_D · DISTS(I, I_gt) + w_1 · Charbonnier(I − I_gt)

a loss led by perception (w_1 = 0.1: an L1-led fine-tune drifts to the mean, better PSNR and softer frames).
Triplets: registry clips at gaps 1, 1, 2, 3 (random 256 px crops) and a ``--synthetic-share`` of synthetic
camera-motion scenes from the registry photos; flips and time reversal; never a validation or public VFI
test set. The sampler is a ``random.Random(--seed)``, so a run is repeatable step for step. Checkpoints
``RUN/last.pt`` every 25 steps (the same command resumes), ``RUN/step<N>.pt`` every 100, the learning
curve in ``RUN/curve.jsonl``.

``export`` writes the blocks of one checkpoint into pervfi-rife's head file under ``trunk.`` with the digest
of the trunk they were trained on (:func:`pervfi_core.pervfi_rife.trunk.with_refined_blocks` checks it).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from ..pervfi_rife.trunk import META_TRUNK_DIGEST, REFINED_PREFIX, rife_frame, trunk_digest, trunk_output

META_REFINED_STEPS = "pervfi_rife_refined_steps"


class TripletSampler:
    """Random training triplets (3, 3, crop, crop) in [0, 1]: a clip triplet (gap 1, 1, 2 or 3, a random crop)
    or, with probability ``synthetic_share``, a synthetic scene; random flips in x, y and time."""

    def __init__(self, clips: list[torch.Tensor], synthetic, *, crop: int, synthetic_share: float, seed: int):
        self.clips, self.synthetic, self.crop, self.share = clips, synthetic, crop, synthetic_share
        self.rng = random.Random(seed)

    def __call__(self) -> torch.Tensor:
        rng, c = self.rng, self.crop
        if self.synthetic is not None and rng.random() < self.share:
            it = self.synthetic[rng.randrange(len(self.synthetic))]
            tri = torch.stack([it["img0"], it["gt"], it["img1"]])
        else:
            frames = self.clips[rng.randrange(len(self.clips))]
            gap = rng.choice([1, 1, 2, 3])
            k = rng.randrange(frames.shape[0] - 2 * gap)
            tri = frames[k:k + 2 * gap + 1:gap].float() / 255
            h, w = tri.shape[-2:]
            top, left = rng.randrange(h - c + 1), rng.randrange(w - c + 1)
            tri = tri[..., top:top + c, left:left + c]
        for dim in (-1, -2, 0):  # x, y, time
            if rng.random() < 0.5:
                tri = tri.flip(dim)
        return tri


def _blocks(arg: str) -> list[str]:
    return [f"block{int(i)}" for i in arg.split(",")]


def fit(args) -> None:
    from ..engines import load_estimator
    from ..metrics import DISTS, LPIPS
    from .cli import _read_frames
    from .data import SyntheticTriplets, read_image, registry_photos

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = load_estimator("rife").network.to(device).eval().requires_grad_(False)
    params = [p for name in _blocks(args.blocks) for p in getattr(net, name).parameters()]
    for p in params:  # only these get gradients: autograd keeps no graph for the frozen coarse blocks
        p.requires_grad_(True)
    clips = [(_read_frames(Path(c), width=args.clip_width)[:args.max_frames] * 255).round().to(torch.uint8)
             for c in args.clip]
    synthetic = None
    if args.synthetic_share > 0:
        synthetic = SyntheticTriplets([read_image(p) for p in registry_photos()], length=100_000,
                                      size=(args.crop, args.crop), max_shift=args.max_shift, seed=args.seed + 1)
    sample = TripletSampler(clips, synthetic, crop=args.crop, synthetic_share=args.synthetic_share, seed=args.seed)
    alex, dists = LPIPS(net="alex").to(device), DISTS().eval().requires_grad_(False).to(device)
    opt = torch.optim.Adam(params, lr=args.lr)
    ckpt, step = out_dir / "last.pt", 0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sample.rng.setstate(state["rng"])
        step = state["step"]
        print(f"resumed at step {step}", file=sys.stderr)
    curve = open(out_dir / "curve.jsonl", "a")
    t0, running = time.time(), []

    def save(path: Path, full: bool):
        state = {"net": net.state_dict(), "step": step, "blocks": args.blocks}
        if full:
            state.update(opt=opt.state_dict(), rng=sample.rng.getstate())
        torch.save(state, str(path) + ".part")
        Path(str(path) + ".part").replace(path)

    while step < args.steps:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine to zero over --steps
        for group in opt.param_groups:
            group["lr"] = lr
        tri = torch.stack([sample() for _ in range(args.batch)]).to(device)
        x0, gt, x1 = tri[:, 0], tri[:, 1], tri[:, 2]
        frame = rife_frame(trunk_output(net, x0, x1))
        l1 = ((frame - gt) ** 2 + 1e-6).sqrt().mean()  # Charbonnier
        clamped = frame.clamp(0, 1)
        la, ld = alex(clamped, gt).mean(), dists(clamped, gt).mean()
        loss = args.l1_weight * l1 + la + args.dists_weight * ld
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        running.append((l1.item(), la.item(), ld.item()))
        if step % 25 == 0 or step == args.steps:
            means = [sum(r[i] for r in running) / len(running) for i in range(3)]
            rec = {"step": step, "s": round(time.time() - t0), "l1": means[0], "alex": means[1], "dists": means[2],
                   "lr": lr}
            running = []
            curve.write(json.dumps(rec) + "\n")
            curve.flush()
            print(json.dumps(rec), file=sys.stderr)
            save(ckpt, True)
            if step % 100 == 0:
                save(out_dir / f"step{step}.pt", False)
        if args.time_limit and time.time() - t0 > args.time_limit:
            print(f"time limit reached at step {step}", file=sys.stderr)
            save(ckpt, True)
            break


def write_refined(into: Path, network_state: dict[str, torch.Tensor], blocks, base, steps: int) -> Path:
    """Write the ``blocks`` of ``network_state`` (an IFNet state dict) into the head file ``into`` under
    ``trunk.`` (replacing any it had), with the digest of ``base``, the IFNet they were trained on."""
    from ..weights.io import read_raw, write_safetensors

    blocks = set(blocks)
    head, metadata = read_raw(Path(into))
    sd = {k: v for k, v in head.items() if not k.startswith(REFINED_PREFIX)}
    sd.update({REFINED_PREFIX + k: v.detach().cpu().contiguous() for k, v in network_state.items()
               if k.split(".", 1)[0] in blocks})
    metadata = {**metadata, META_TRUNK_DIGEST: trunk_digest(base, blocks), META_REFINED_STEPS: str(steps)}
    return write_safetensors(sd, Path(into), metadata)


def export(args) -> Path:
    """The refined blocks of ``RUN/step<N>.pt`` (``RUN/last.pt`` without ``--step``) into the head file ``--into``."""
    from ..engines import load_estimator

    name = f"step{args.step}.pt" if args.step is not None else "last.pt"
    state = torch.load(Path(args.out) / name, weights_only=False)
    return write_refined(Path(args.into), state["net"], _blocks(state.get("blocks", args.blocks)),
                         load_estimator("rife").network, state["step"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pervfi_core.train.trunk_refine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pf = sub.add_parser("fit")
    pf.add_argument("--out", required=True)
    pf.add_argument("--clip", nargs="+", required=True, help="training clips (never validation footage)")
    pf.add_argument("--clip-width", type=int, default=640)
    pf.add_argument("--max-frames", type=int, default=400, help="frames read per clip")
    pf.add_argument("--synthetic-share", type=float, default=0.3)
    pf.add_argument("--max-shift", type=float, default=40.0, help="synthetic camera motion, px")
    pf.add_argument("--blocks", default="3,4", help="IFNet blocks to train (the rest stay frozen)")
    pf.add_argument("--steps", type=int, default=800)
    pf.add_argument("--batch", type=int, default=4)
    pf.add_argument("--crop", type=int, default=256)
    pf.add_argument("--lr", type=float, default=2e-5)
    pf.add_argument("--l1-weight", type=float, default=0.1)
    pf.add_argument("--dists-weight", type=float, default=1.0)
    pf.add_argument("--time-limit", type=float, default=0, help="seconds; stop (and checkpoint) after it")
    pf.add_argument("--threads", type=int, default=2)
    pf.add_argument("--device", default="cpu")
    pf.add_argument("--seed", type=int, default=0)
    pf.set_defaults(func=fit)
    pe = sub.add_parser("export")
    pe.add_argument("--out", required=True)
    pe.add_argument("--step", type=int, help="the checkpoint RUN/step<N>.pt (default: RUN/last.pt)")
    pe.add_argument("--blocks", default="3,4")
    pe.add_argument("--into", required=True, help="pervfi-rife head file (safetensors) to write the blocks into")
    pe.set_defaults(func=export)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
