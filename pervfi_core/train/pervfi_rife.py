"""Train pervfi-rife's head on the frozen RIFE trunk (paper §3.2, Eq. 15), resumable, on a CPU or a GPU.

    python -m pervfi_core.train.pervfi_rife prepare --out RUN [--clip PATH ...] [--synthetic N] [--gaps 1,2,3]
    python -m pervfi_core.train.pervfi_rife fit --out RUN [--steps N] [--time-limit S] [--export FILE]

``prepare`` runs the frozen trunk once on 256 px crops of the training triplets (registry clips at gaps
1-3, synthetic camera-motion scenes from the registry photos; never a validation or public VFI test set)
and stores what the head needs (both warped frames, RIFE's mask, the last block's features, the ground
truth) in ``RUN/trunk_*.pt`` (float16). ``fit`` then trains only the :class:`~pervfi_core.pervfi_rife.engine.Head` with

    L = λ · NLL(r | c) + LPIPS-vgg(B + G⁻¹(0; c), I_gt)                                   # Eq. (15)

(``--perceptual alex-dists``: LPIPS-alex + DISTS in place of LPIPS-vgg, the metrics the validation set ranks by)
r = I_gt − B (dequantised by uniform 8-bit noise), NLL in nats per dimension (Eq. 11-12), the perceptual
term on the τ = 0 decode (the deterministic frame), on random 192 px crops with flips.
Checkpoints (``RUN/last.pt``) every ``--save-every`` steps and at ``--time-limit``; the same command
resumes. The learning curve (train loss, held-out LPIPS-alex / PSNR of the decode against the untrained
head = the blend) goes to ``RUN/curve.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..pervfi_rife.decoder import ENVELOPE_LEVELS, latent
from ..pervfi_rife.engine import META_CONFIG, META_STEPS, NAME, Head
from ..pervfi_rife.trunk import TrunkOutput

KEYS = ("warped0", "warped1", "mask", "features", "gt")
CROP = 256


def _item_tensors(out: TrunkOutput, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"warped0": out.warped0, "warped1": out.warped1, "mask": out.mask, "features": out.features, "gt": gt}


@torch.no_grad()
def prepare(args) -> None:
    from torch.utils.data import ConcatDataset, Subset

    from .cli import _read_frames
    from .data import FrameTriplets, SyntheticTriplets, read_image, registry_photos
    from ..engines import load_estimator
    from ..pervfi_rife.trunk import RIFETrunk

    torch.manual_seed(args.seed)
    trunk, out_dir = RIFETrunk(load_estimator("rife").network), Path(args.out)
    parts = []
    for k, clip in enumerate(args.clip):
        frames = _read_frames(Path(clip), width=args.clip_width)
        for gap in (int(g) for g in args.gaps.split(",")):
            base = FrameTriplets(frames, size=(CROP, CROP), seed=args.seed + k, gap=gap)
            stride = max(1, len(base) // args.per_clip_gap)
            parts.append(Subset(base, range(0, len(base), stride)[:args.per_clip_gap]))
    if args.synthetic:
        photos = [read_image(p) for p in registry_photos()]
        parts.append(SyntheticTriplets(photos, length=args.synthetic, size=(CROP, CROP), max_shift=CROP / 8,
                                       seed=args.seed))
    data = ConcatDataset(parts)
    items: dict[str, list[torch.Tensor]] = {k: [] for k in KEYS}
    for i in range(len(data)):
        it = data[i]
        for k, v in _item_tensors(trunk(it["img0"][None], it["img1"][None], 0.5), it["gt"][None]).items():
            items[k].append(v[0].half())
        if (i + 1) % 100 == 0:
            print(f"prepared {i + 1}/{len(data)}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: torch.stack(v) for k, v in items.items()}, out_dir / f"trunk_{args.tag}.pt")


def load_items(out_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted(Path(out_dir).glob("trunk_*.pt"))
    if not files:
        raise SystemExit(f"{out_dir}: no trunk_*.pt; run `prepare` first")
    tables = [torch.load(f, weights_only=True) for f in files]
    return {k: torch.cat([t[k] for t in tables]) for k in KEYS}


def batch_of(items, idx, crop: int, g: torch.Generator | None, device) -> tuple[TrunkOutput, torch.Tensor]:
    """Items ``idx`` as float32 on ``device``: random ``crop`` px crops and horizontal flips with ``g``,
    the centre crop without."""
    size = items["gt"].shape[-1]
    outs = []
    for i in idx.tolist():
        if g is None:
            top = left = (size - crop) // 2
            flip = False
        else:
            top, left = (int(torch.randint(0, size - crop + 1, (), generator=g)) for _ in range(2))
            flip = bool(torch.rand((), generator=g) < 0.5)
        one = {k: items[k][i, :, top:top + crop, left:left + crop].float() for k in KEYS}
        outs.append({k: v.flip(-1) if flip else v for k, v in one.items()})
    stacked = {k: torch.stack([o[k] for o in outs]).to(device) for k in KEYS}
    zeros = torch.zeros_like(stacked["mask"]).expand(-1, 2, -1, -1)  # flows are not needed by the head
    return TrunkOutput(warped0=stacked["warped0"], warped1=stacked["warped1"], flow_t0=zeros, flow_t1=zeros,
                       mask=stacked["mask"], features=stacked["features"]), stacked["gt"]


def step_loss(head: Head, out: TrunkOutput, gt: torch.Tensor, perceptual, nll_weight: float,
              g: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    t = gt.new_full((gt.shape[0],), 0.5)
    base, _, c, env = head.condition(out, t)
    noise = (torch.rand(gt.shape, generator=g) - 0.5).to(gt) / 255  # dequantisation of 8-bit frames
    nll = head.flow.nll(gt + noise - base, c, env).mean()  # Eq. (11)-(12)
    z = latent((gt.shape[0], 12, gt.shape[-2] // 2, gt.shape[-1] // 2), 0.0, None, device=gt.device, dtype=gt.dtype)
    frame = head.decode(base, c, z, env).clamp(0, 1)
    perc = perceptual(frame, gt).mean()
    loss = nll_weight * nll + perc  # Eq. (15)
    return loss, {"loss": loss.item(), "nll": nll.item(), "perceptual": perc.item()}


@torch.no_grad()
def evaluate(head: Head, items, idx, alex, device) -> dict[str, float]:
    """Held-out LPIPS-alex / PSNR of the τ = 0 decode, of the blend (the untrained head) and of RIFE's frame."""
    from ..metrics import psnr
    from ..pervfi_rife.trunk import rife_frame

    scores = {k: [] for k in ("alex", "psnr", "alex_blend", "psnr_blend", "alex_rife", "psnr_rife")}
    for chunk in idx.split(8):
        out, gt = batch_of(items, chunk, CROP, None, device)
        t = gt.new_full((gt.shape[0],), 0.5)
        base, _, c, env = head.condition(out, t)
        frame = head.decode(base, c, torch.zeros_like(F.pixel_unshuffle(gt, 2)), env).clamp(0, 1)
        for suffix, y in (("", frame), ("_blend", base.clamp(0, 1)), ("_rife", rife_frame(out).clamp(0, 1))):
            scores["alex" + suffix] += alex(y, gt).tolist()
            scores["psnr" + suffix] += psnr(y, gt).tolist()
    return {k: sum(v) / len(v) for k, v in scores.items()}


def fit(args) -> None:
    from ..metrics import LPIPS

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = load_items(Path(args.items or out_dir))
    n = items["gt"].shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    held, train_idx = order[:args.held_out], order[args.held_out:]
    head = Head(sharpness=args.sharpness, bias=args.bias, envelope=args.envelope).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    ckpt, step = out_dir / "last.pt", 0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["generator"])
        step = state["step"]
        print(f"resumed at step {step}", file=sys.stderr)
    alex = LPIPS(net="alex").eval().to(device)
    perceptual = perceptual_term(args.perceptual, alex, device)
    curve = open(out_dir / "curve.jsonl", "a")
    t0, running = time.time(), []

    def save():
        torch.save({"head": head.state_dict(), "opt": opt.state_dict(), "generator": g.get_state(), "step": step,
                    "config": head.config}, out_dir / "last.pt.part")
        (out_dir / "last.pt.part").replace(ckpt)

    if step == 0:
        curve.write(json.dumps({"step": 0, **evaluate(head, items, held, alex, device)}) + "\n")
    while step < args.steps:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine to zero over --steps
        for group in opt.param_groups:
            group["lr"] = lr
        idx = train_idx[torch.randint(0, len(train_idx), (args.batch,), generator=g)]
        out, gt = batch_of(items, idx, args.crop, g, device)
        loss, logs = step_loss(head, out, gt, perceptual, args.nll_weight, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append(logs)
        if step % args.eval_every == 0 or step == args.steps:
            mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
            ev = evaluate(head, items, held, alex, device)
            rec = {"step": step, "seconds": round(time.time() - t0, 1), **mean, **ev,
                   "k": head.asb.log_k.exp().item(), "b": head.asb.bias.item()}
            curve.write(json.dumps(rec) + "\n")
            curve.flush()
            print(json.dumps(rec), file=sys.stderr)
            running = []
        if step % args.save_every == 0:
            save()
        if args.time_limit and time.time() - t0 > args.time_limit:
            print(f"time limit reached at step {step}", file=sys.stderr)
            break
    save()
    if args.export:
        export(head, args.export, step, envelope=args.export_envelope)


def perceptual_term(kind: str, alex, device):
    """The perceptual term of Eq. (15), (B,) per sample: ``lpips-vgg`` (LPIPS-vgg), or ``alex-dists`` (LPIPS-alex +
    DISTS, the two metrics the validation set ranks by, and the trunk fine-tune's perceptual terms)."""
    if kind == "lpips-vgg":
        from .perceptual import VGGPerceptualLoss

        return VGGPerceptualLoss().to(device)
    if kind == "alex-dists":
        from ..metrics import DISTS

        dists = DISTS().eval().requires_grad_(False).to(device)
        return lambda frame, gt: alex(frame, gt).flatten() + dists(frame, gt).flatten()
    raise InputError(f"perceptual: expected 'lpips-vgg' or 'alex-dists', got {kind!r}")


def export(head: Head, dest, steps: int, *, envelope: float | None = None) -> Path:
    """The head as safetensors with its hyperparameters and step count (what ``load_engine`` reads); ``envelope``:
    the L the engine applies (default: the head's own, the one it was trained with)."""
    from ..weights.io import write_safetensors

    sd = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    config = head.config if envelope is None else {**head.config, "envelope": float(envelope)}
    return write_safetensors(sd, Path(dest), {META_CONFIG: json.dumps(config, sort_keys=True),
                                              META_STEPS: str(steps), "pervfi_architecture": NAME})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pervfi_core.train.pervfi_rife", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--out", required=True)
    pp.add_argument("--clip", nargs="*", default=[])
    pp.add_argument("--clip-width", type=int, default=512)
    pp.add_argument("--gaps", default="1,2,3")
    pp.add_argument("--per-clip-gap", type=int, default=40, help="triplets per clip and gap (spread over it)")
    pp.add_argument("--synthetic", type=int, default=0, help="synthetic camera-motion scenes from the photos")
    pp.add_argument("--tag", default="data")
    pp.add_argument("--seed", type=int, default=0)
    pp.set_defaults(func=prepare)
    pf = sub.add_parser("fit")
    pf.add_argument("--out", required=True)
    pf.add_argument("--items", help="folder of prepare's trunk_*.pt (default: --out)")
    pf.add_argument("--steps", type=int, default=2000)
    pf.add_argument("--batch", type=int, default=4)
    pf.add_argument("--crop", type=int, default=192)
    pf.add_argument("--lr", type=float, default=5e-4)
    pf.add_argument("--nll-weight", type=float, default=0.01)
    pf.add_argument("--perceptual", choices=("lpips-vgg", "alex-dists"), default="lpips-vgg",
                    help="the perceptual term of Eq. (15): LPIPS-vgg, or LPIPS-alex + DISTS")
    pf.add_argument("--sharpness", type=float, default=1.0, help="initial mask sharpness k")
    pf.add_argument("--bias", type=float, default=0.0, help="initial mask bias b")
    pf.add_argument("--envelope", type=float, default=ENVELOPE_LEVELS,
                    help="L, 8-bit levels of disagreement at which the decoder's envelope is 1 (0: none)")
    pf.add_argument("--held-out", type=int, default=48)
    pf.add_argument("--eval-every", type=int, default=100)
    pf.add_argument("--save-every", type=int, default=100)
    pf.add_argument("--time-limit", type=float, default=0, help="seconds; stop (and checkpoint) after it")
    pf.add_argument("--threads", type=int, default=2)
    pf.add_argument("--device", default="cpu")
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--export", help="write the trained head as safetensors here at the end")
    pf.add_argument("--export-envelope", type=float, default=None,
                    help="L the exported head applies at inference (default: --envelope; the shipped head: "
                         "trained with 0, exported with 8)")
    pf.set_defaults(func=fit)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
