"""Training data: synthetic triplets from real photos, triplets from real clips, and Vimeo-90K.

Every dataset yields ``{"img0", "gt", "img1"}`` (3, H, W) float32 in [0, 1] and ``"t"`` (a 0-d
tensor). Items are a pure function of (seed, index), so training is reproducible and workers can be
added without changing the data.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cache import cache_dir, fetch_pypi_file
from ..errors import InputError
from .synthetic import random_scene, synthetic_triplet

log = logging.getLogger(__name__)

# Photos shipped inside the scikit-image wheel (public domain / CC0 per its data README). Only natural
# photographs; the stereo pairs in that folder come from a public benchmark and are deliberately not used.
SKIMAGE_WHEEL = "scikit-image==0.26.0"
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                  "grass.png", "gravel.png", "brick.png", "color.png")


def read_image(path: Path) -> torch.Tensor:
    """An image file as (3, H, W) float32 in [0, 1] (grayscale is repeated, alpha dropped)."""
    import cv2  # optional dependency, only needed to read photos

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"cannot read image {path}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    arr = cv2.cvtColor(arr[:, :, :3], cv2.COLOR_BGR2RGB)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return torch.from_numpy(arr.astype(np.float32) / scale).permute(2, 0, 1).contiguous()


def registry_photos() -> list[Path]:
    """Paths of the training photos, fetched once from the scikit-image wheel into the cache."""
    folder = cache_dir("photos")
    return [fetch_pypi_file(SKIMAGE_WHEEL, f"skimage/data/{name}", folder / name) for name in SKIMAGE_PHOTOS]


def folder_photos(folder: Path, *, max_side: int = 768) -> list[torch.Tensor]:
    """Every .jpg/.jpeg/.png under ``folder`` (sorted), downscaled (area) to a longer side of at most
    ``max_side`` px: wallpapers are 2-5k px wide, and a 128 px crop of one would see almost no
    texture per pixel of motion."""
    import torch.nn.functional as F

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise InputError(f"--photos {folder}: no .jpg/.png images found")
    photos = []
    for path in paths:
        img = read_image(path)
        scale = max_side / max(img.shape[-2:])
        if scale < 1:
            img = F.interpolate(img[None], scale_factor=scale, mode="area")[0]
        photos.append(img.contiguous())
    return photos


class SyntheticTriplets(Dataset):
    """``length`` synthetic triplets (exact ground truth) from ``photos``; item i is fixed by (seed, i).

    The in-between time is 0.5, or uniform in [0.1, 0.9] with ``random_t`` (arbitrary-time training).
    ``with_flows`` adds the exact motion ``"flow01"``, ``"flow10"`` (2, H, W) px (the ``"exact"`` estimator).
    """

    def __init__(self, photos: list[torch.Tensor], *, length: int, size: tuple[int, int] = (256, 256),
                 max_shift: float = 16.0, seed: int = 0, random_t: bool = False, with_flows: bool = False):
        if len(photos) < 2:
            raise InputError(f"SyntheticTriplets needs at least 2 photos, got {len(photos)}")
        self.photos, self.length, self.size = photos, length, size
        self.max_shift, self.seed, self.random_t = max_shift, seed, random_t
        self.keys = ("img0", "gt", "img1", "t") + (("flow01", "flow10") if with_flows else ())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        i, j = torch.randperm(len(self.photos), generator=g)[:2].tolist()
        scene = random_scene(self.photos[i], self.photos[j], size=self.size, max_shift=self.max_shift, generator=g)
        t = 0.1 + 0.8 * float(torch.rand((), generator=g)) if self.random_t else 0.5
        tri = synthetic_triplet(scene, t)
        return {k: tri[k] for k in self.keys}


class FrameTriplets(Dataset):
    """Triplets (k, k+g, k+2g) of a frame sequence: the middle frame is the ground truth at t = 0.5.

    ``frames`` is (N, 3, H, W) in [0, 1] (e.g. a decoded registry clip); random crops of ``size``.
    ``gap`` g: 1 drops every other frame; 2 and 3 make the outer frames 4 and 6 frames apart, so the
    model sees larger motion than the clip's own frame rate gives.
    """

    def __init__(self, frames: torch.Tensor, *, size: tuple[int, int] | None = None, seed: int = 0, gap: int = 1):
        if gap < 1:
            raise InputError(f"FrameTriplets: gap must be >= 1, got {gap}")
        if frames.ndim != 4 or frames.shape[0] < 2 * gap + 1:
            raise InputError(f"FrameTriplets needs (N>={2 * gap + 1}, 3, H, W) frames for gap {gap}, "
                             f"got {tuple(frames.shape)}")
        self.frames, self.size, self.seed, self.gap = frames, size, seed, gap

    def __len__(self) -> int:
        return self.frames.shape[0] - 2 * self.gap

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        tri = self.frames[index: index + 2 * self.gap + 1: self.gap]
        if self.size is not None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            h, w = self.size
            top = int(torch.randint(0, tri.shape[-2] - h + 1, (), generator=g))
            left = int(torch.randint(0, tri.shape[-1] - w + 1, (), generator=g))
            tri = tri[..., top: top + h, left: left + w]
        return {"img0": tri[0], "gt": tri[1], "img1": tri[2], "t": torch.tensor(0.5)}


class VimeoTriplets(Dataset):
    """Vimeo-90K triplet reader for users who have the dataset: ``root/sequences/<a>/<b>/im{1,2,3}.png``
    listed in ``root/tri_trainlist.txt`` (or ``tri_testlist.txt`` with ``split="test"``)."""

    def __init__(self, root: str | Path, *, split: str = "train", size: tuple[int, int] | None = (256, 256), seed: int = 0):
        self.root = Path(root)
        listing = self.root / f"tri_{split}list.txt"
        if not listing.is_file():
            raise InputError(f"{listing} not found: expected the Vimeo-90K triplet layout (tri_{split}list.txt + sequences/)")
        self.items = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        self.size, self.seed = size, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        folder = self.root / "sequences" / self.items[index]
        frames = torch.stack([read_image(folder / f"im{k}.png") for k in (1, 2, 3)])
        return FrameTriplets(frames, size=self.size, seed=self.seed * 7919 + index)[0]


class Precomputed(Dataset):
    """A dataset materialised once with its frozen flows (paper §4.1: the estimators are frozen, so
    their flows can be computed before training): items gain ``"fflow"``, ``"bflow"`` (2, H, W) px.

    ``flows(batch, indices)`` is e.g. a :class:`pervfi_core.train.loop.FlowProvider`. ``cache``: a
    ``.pt`` file reused when present (delete it after changing the data or estimators).
    """

    @classmethod
    def from_file(cls, path: str | Path) -> "Precomputed":
        """A table written earlier (a run's ``data_*.pt`` cache, or compacted by :func:`compact_items`)."""
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file of precomputed training items")
        return cls(None, None, cache=path)  # the cache branch: nothing to compute

    def __init__(self, base: Dataset, flows, *, cache: str | Path | None = None):
        if cache is not None and Path(cache).is_file():
            self.items = load_items(cache)
            log.info("loaded %d precomputed items from %s", len(self.items["img0"]), cache)
            return
        items: dict[str, list[torch.Tensor]] = {}
        for i in range(len(base)):
            item = {k: v[None] for k, v in base[i].items()}
            item["fflow"], item["bflow"] = flows(item, torch.tensor([i]))
            for k, v in item.items():
                if k not in ("flow01", "flow10"):
                    items.setdefault(k, []).append(v[0].cpu())
            if (i + 1) % 50 == 0:
                log.info("precomputed %d/%d items", i + 1, len(base))
        self.items = {k: torch.stack(v) for k, v in items.items()}
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.items, cache)

    def __len__(self) -> int:
        return len(self.items["img0"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.items.items()}


def compact_items(items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``items`` (a :class:`Precomputed` table) at a third of the bytes, for prepared data that has to
    travel: images as uint8 (the clips' frames are 8-bit already), flows as float16 (px; about 0.01 px
    error at 64 px of motion). :func:`load_items` expands them again."""
    out = {}
    for k, v in items.items():
        if k in ("fflow", "bflow"):
            out[k] = v.half()
        elif v.is_floating_point() and v.dim() == 4:
            out[k] = (v.clamp(0, 1) * 255).round().to(torch.uint8)
        else:
            out[k] = v
    return out


def load_items(path: str | Path) -> dict[str, torch.Tensor]:
    """A :class:`Precomputed` table from ``path``, full (float32) or compact (:func:`compact_items`)."""
    items = torch.load(path, weights_only=True)
    if not isinstance(items, dict) or "img0" not in items:
        raise InputError(f"{path}: not a table of precomputed training items (no 'img0')")
    return {k: v.float() / 255 if v.dtype == torch.uint8 else v.float() if v.dtype == torch.float16 else v
            for k, v in items.items()}
