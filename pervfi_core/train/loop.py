"""The training loop: deterministic, resumable, CPU-first and unchanged on GPUs (AMP, workers, DDP).

Paper §4.1: Adam, lr 5e-4 halved every 20 epochs, 256² patches. Here the schedule is counted in
steps (``halve_every``) so short CPU runs and long GPU runs share one code path. Multi-GPU runs use
``torchrun --nproc_per_node N -m pervfi_core train ...`` (torch.distributed data parallel: a
DistributedSampler per rank and gradients averaged by all-reduce, rank 0 writes checkpoints).
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..engines import load_estimator
from .losses import pervfi_loss

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    model_config: str = "compact"
    model_overrides: dict = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 4
    lr: float = 5e-4
    halve_every: int = 20_000
    mu: float = 0.2
    anchor: float = 0.0  # weight of the τ = 0 L1 term (normalizing-flow decoder; a project extension, see losses.py)
    anchor_mu: float = 0.0  # weight of the perceptual part inside that term
    seed: int = 0
    val_fraction: float = 0.05
    val_every: int = 200
    ckpt_every: int = 200
    workers: int = 0
    amp: bool = False
    device: str = "cpu"
    flow_estimators: tuple[str, ...] = ("dis",)
    time_limit_s: float | None = None  # stop (validated, checkpointed) after the first step past this


class FlowProvider:
    """Frozen motion for training items: for each item one estimator, chosen at random per item
    (paper §4.1: flows from randomly chosen estimators) and fixed by the seed.

    ``"exact"`` takes the item's true motion (``flow01``/``flow10`` of synthetic triplets); batches
    that already carry ``fflow``/``bflow`` (see :class:`~pervfi_core.train.data.Precomputed`) use them.
    """

    def __init__(self, names: tuple[str, ...], *, seed: int, device: str):
        self.names, self.seed = tuple(names), seed
        self.estimators = {n: load_estimator(n, device=device) for n in self.names if n != "exact"}

    @torch.no_grad()
    def __call__(self, batch: dict, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if "fflow" in batch:
            return batch["fflow"], batch["bflow"]
        fflows, bflows = [], []
        for k, index in enumerate(indices.tolist()):
            name = self.names[random.Random(self.seed * 1_000_003 + index).randrange(len(self.names))]
            if name == "exact":
                f, b = batch["flow01"][k: k + 1], batch["flow10"][k: k + 1]
            else:
                f, b = self.estimators[name](batch["img0"][k: k + 1], batch["img1"][k: k + 1])
            fflows.append(f)
            bflows.append(b)
        return torch.cat(fflows), torch.cat(bflows)


class _Indexed(Dataset):
    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        return {**self.base[i], "index": torch.tensor(i)}


def split(dataset: Dataset, val_fraction: float) -> tuple[Subset, Subset]:
    """A fixed validation split: the last ``val_fraction`` of the items (never shuffled in)."""
    n_val = max(1, int(round(len(dataset) * val_fraction)))
    n = len(dataset)
    return Subset(dataset, range(0, n - n_val)), Subset(dataset, range(n - n_val, n))


def _checkpoint(path: Path, model, opt, sched, step: int, cfg: TrainConfig, generator: torch.Generator) -> None:
    tmp = path.with_suffix(".part")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "step": step, "config": asdict(cfg), "loss_rng": generator.get_state(),
                "torch_rng": torch.get_rng_state(),  # the ADM training noise draws from the global generator
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint under the final name


def _loader(train_set: Dataset, cfg: TrainConfig, epoch: int, distributed: bool) -> DataLoader:
    data = _Indexed(train_set)
    if distributed:
        sampler = DistributedSampler(data, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch)).tolist()
        sampler = order
    return DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True)


def _batches(train_set: Dataset, cfg: TrainConfig, start_step: int, distributed: bool):
    """Yield (step, batch) from ``start_step`` on; the order is a pure function of (seed, epoch)."""
    per_epoch = len(train_set) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"training set of {len(train_set)} items is smaller than batch size {cfg.batch_size}")
    step = start_step
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        for k, batch in enumerate(_loader(train_set, cfg, epoch, distributed)):
            if k < skip:
                continue
            yield step, batch
            step += 1
        epoch, skip = epoch + 1, 0


def train(model, dataset: Dataset, cfg: TrainConfig, out_dir: str | Path, *, perceptual=None, flows=None,
          resume: bool = True) -> list[dict]:
    """Train ``model`` on ``dataset`` for ``cfg.steps`` steps; returns the logged records.

    Writes ``out_dir/last.pt`` (resumable), ``out_dir/metrics.jsonl``. ``flows(batch, indices)`` gives
    (F0→1, F1→0); the default uses ``cfg.flow_estimators``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device(cfg.device)
    if distributed:
        if device.type == "cuda":  # torchrun: one GPU per process
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main_rank = not distributed or torch.distributed.get_rank() == 0
    torch.manual_seed(cfg.seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.halve_every, gamma=0.5)
    loss_rng = torch.Generator(device=device).manual_seed(cfg.seed)
    start = 0
    ckpt = out / "last.pt"
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        loss_rng.set_state(state["loss_rng"].cpu())  # generator states are CPU byte tensors on every device
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())
            if state.get("cuda_rng"):
                torch.cuda.set_rng_state_all([r.cpu() for r in state["cuda_rng"]])
        start = state["step"]
        log.info("resumed from %s at step %d", ckpt, start)
    train_set, val_set = split(dataset, cfg.val_fraction)
    flows = flows or FlowProvider(cfg.flow_estimators, seed=cfg.seed, device=cfg.device)
    records: list[dict] = []
    if start >= cfg.steps:
        return records
    if distributed:  # same start on every rank (what DDP's constructor does)
        _broadcast_state(model)
    t0 = time.perf_counter()
    for step, batch in _batches(train_set, cfg, start, distributed):
        batch = {k: v.to(device) for k, v in batch.items()}
        fl = flows(batch, batch["index"])
        with torch.autocast(device.type, enabled=cfg.amp, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16):
            loss, logs = pervfi_loss(model, batch, fl, perceptual=perceptual, mu=cfg.mu, generator=loss_rng,
                                     anchor=cfg.anchor, anchor_mu=cfg.anchor_mu)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if distributed:
            _average_gradients(model)
        opt.step()
        sched.step()
        if distributed and step == start:
            _broadcast_state(model)  # ActNorm initialised itself from each rank's first batch: rank 0's wins
        record = {"step": step + 1, "lr": sched.get_last_lr()[0], **logs,
                  "time_s": round(time.perf_counter() - t0, 2)}  # wall time of this session (not resumed ones)
        last = step + 1 == cfg.steps or _out_of_time(cfg, t0, distributed, device)
        if (step + 1) % cfg.val_every == 0 or last:
            record["val_psnr"] = validate(model, val_set, flows, device)
        records.append(record)
        if main_rank:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if main_rank and ((step + 1) % cfg.ckpt_every == 0 or last):
            _checkpoint(ckpt, model, opt, sched, step + 1, cfg, loss_rng)
            log.info("step %d/%d: %s", step + 1, cfg.steps, {k: round(v, 4) for k, v in record.items() if k != "step"})
        if last:
            break
    return records


def _out_of_time(cfg: TrainConfig, t0: float, distributed: bool, device: torch.device) -> bool:
    """Whether ``cfg.time_limit_s`` has passed; rank 0's clock decides for every rank."""
    if cfg.time_limit_s is None:
        return False
    late = time.perf_counter() - t0 >= cfg.time_limit_s
    if not distributed:  # no tensor, no device sync on the hot path
        return late
    flag = torch.tensor(float(late), device=device)
    torch.distributed.broadcast(flag, 0)
    return bool(flag.item())


def _broadcast_state(model) -> None:
    """Rank 0's parameters and buffers on every rank."""
    for p in model.state_dict().values():
        torch.distributed.broadcast(p, 0)


def _average_gradients(model) -> None:
    """Data-parallel gradient averaging over the torch.distributed ranks. The loss calls
    ``model.blend``/``encode``/``decode`` rather than ``forward``, so DDP's forward hooks would never
    fire; an explicit all-reduce after ``backward`` is the same update DDP makes."""
    world = torch.distributed.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


@torch.no_grad()
def validate(model, val_set: Dataset, flows, device: torch.device, *, tau: float = 0.0) -> float:
    """Mean PSNR (dB) on the validation split, decoding at τ = 0 (the mode of the flow's prior)."""
    was_training = model.training
    model.eval()
    psnrs = []
    for k in range(len(val_set)):
        item = {key: v[None].to(device) for key, v in _Indexed(val_set)[k].items()}
        fl = flows(item, item["index"].reshape(1))
        pred = model.decode(model.blend(item["img0"], item["img1"], *fl, item["t"]), tau=tau, seed=0)
        mse = ((pred - item["gt"]) ** 2).mean().clamp_min(1e-10)
        psnrs.append(float(-10 * torch.log10(mse)))
    model.train(was_training)
    return sum(psnrs) / len(psnrs)
