"""Data-parallel training with torch.distributed (gloo on CPU, two processes): the ranks see
different batches yet stay identical, as DDP would keep them."""
import os
import socket

import torch
import torch.multiprocessing as mp

from pervfi_core.configs import build_model
from pervfi_core.train.data import SyntheticTriplets
from pervfi_core.train.loop import TrainConfig, train


def _photos():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 64, 64, generator=g) for _ in range(3)]


def _zero_flows(batch, indices):
    b, _, h, w = batch["img0"].shape
    z = torch.zeros(b, 2, h, w)
    return z, z


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different initial weights per rank: rank 0's must win
    model = build_model("tiny")
    ds = SyntheticTriplets(_photos(), length=9, size=(16, 16), max_shift=2.0)
    cfg = TrainConfig(steps=2, batch_size=2, val_fraction=0.1, val_every=100, ckpt_every=100, lr=1e-3)
    records = train(model, ds, cfg, out, flows=_zero_flows)
    torch.save({"params": model.state_dict(), "loss": [r["loss"] for r in records]}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_ranks_stay_in_sync_on_different_batches(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert r0["loss"] != r1["loss"]  # each rank trained on its own shard
    assert all(torch.equal(v, r1["params"][k]) for k, v in r0["params"].items())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2  # rank 0 only
