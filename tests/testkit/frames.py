"""Comparing outputs frame for frame (the distributed tests: a run in segments against one process)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ENGINE = "training-free"  # the fast engine: tests about how work is cut, not about image quality


def read_frames(folder: Path) -> list[np.ndarray]:
    import cv2

    return [cv2.imread(str(p)) for p in sorted(Path(folder).glob("*.png"))]


def assert_same_frames(a: Path, b: Path) -> None:
    x, y = read_frames(a), read_frames(b)
    assert len(x) == len(y) > 0
    diff = [i for i, (p, q) in enumerate(zip(x, y)) if not np.array_equal(p, q)]
    assert diff == [], f"frames differ at {diff[:10]}"
