import sys

import pytest
import torch
import torch.nn.functional as F

from pervfi_core.errors import PerVFIError
from pervfi_core.flow import build_estimator

pytest.importorskip("cv2")


def _texture(h: int, w: int) -> torch.Tensor:
    """A smooth random colour texture (1, 3, h, w) in [0, 1]: blurred noise has a unique match."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("preset", ["medium", "fine"])
def test_dis_recovers_a_known_shift(preset):
    from pervfi_core.flow.dis import DISFlow

    big = _texture(112, 144)
    dx, dy = 3, -2
    img0 = big[..., 8:104, 8:136]
    img1 = big[..., 8 - dy : 104 - dy, 8 - dx : 136 - dx]
    # img1(y, x) = big(y + 8 - dy, x + 8 - dx) = img0(y - dy, x - dx): content moves by +(dx, dy)
    fflow, bflow = (build_estimator("dis") if preset == "medium" else DISFlow(preset=preset))(img0, img1)
    inner = (..., slice(12, -12), slice(12, -12))
    assert fflow.shape == (1, 2, 96, 128) and fflow.dtype == torch.float32
    assert (fflow[inner][:, 0] - dx).abs().mean() < 0.25 and (fflow[inner][:, 1] - dy).abs().mean() < 0.25
    assert (bflow[inner][:, 0] + dx).abs().mean() < 0.25 and (bflow[inner][:, 1] + dy).abs().mean() < 0.25


def test_dis_batches_and_tiny_frames():
    est = build_estimator("dis")
    fflow, bflow = est(torch.rand(3, 3, 5, 9), torch.rand(3, 3, 5, 9))
    assert fflow.shape == bflow.shape == (3, 2, 5, 9) and torch.isfinite(fflow).all()


def test_missing_opencv_is_a_clear_error(monkeypatch):
    from pervfi_core.flow.dis import import_cv2

    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(PerVFIError, match="pip install opencv-python-headless"):
        import_cv2()
