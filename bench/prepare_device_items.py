"""Pack a small, compact table of training items for bench/device_train.sh.

The GPU machine reaches no registry and has none of the clips, photos or motion estimators, and the
working tree that travels is 64 MiB in all. So the items, with their frozen flows, are drawn here
from the caches a CPU training run already wrote (``RUN/data_*.pt``), evenly over every cache (clips,
gaps, synthetic scenes), and stored compact (uint8 frames, float16 flows: about 0.3 MiB per 128 px
item; :func:`pervfi_core.train.data.compact_items`).

    python bench/prepare_device_items.py --run RUN --count 160 bench/device_items.pt

The synthetic items go last, so the training CLI's fixed validation split (the last 5 %) stays the
synthetic scenes, as on the CPU run. The file is git-ignored: pass it to the device with ``carry``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pervfi_core.train.data import compact_items, load_items  # noqa: E402


def pack(caches: list[Path], count: int) -> dict[str, torch.Tensor]:
    """``count`` items drawn evenly from ``caches`` (each in proportion to its size), synthetic last."""
    caches = sorted(caches, key=lambda p: (p.name.startswith("data_synthetic"), p.name))
    tables = [load_items(p) for p in caches]
    sizes = [len(t["img0"]) for t in tables]
    total = sum(sizes)
    if count > total:
        raise SystemExit(f"asked for {count} items, the caches hold {total}")
    keys = set.intersection(*(set(t) for t in tables))  # 'flow01'/'t' are kept only where all have them
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in sorted(keys)}
    for table, size in zip(tables, sizes):
        n = max(1, round(count * size / total))
        pick = torch.linspace(0, size - 1, n).round().long().unique()
        for k in keys:
            parts[k].append(table[k][pick])
    return compact_items({k: torch.cat(v) for k, v in parts.items()})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--run", type=Path, required=True, help="a training run directory with data_*.pt caches")
    ap.add_argument("--count", type=int, default=160)
    args = ap.parse_args(argv)
    caches = sorted(args.run.glob("data_*.pt"))
    if not caches:
        raise SystemExit(f"{args.run}: no data_*.pt caches; run `python -m pervfi_core train ... --out {args.run}` first")
    items = pack(caches, args.count)
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(items, args.dest)
    mib = args.dest.stat().st_size / 2**20
    print(f"wrote {args.dest}: {len(items['img0'])} items from {len(caches)} caches, {mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
