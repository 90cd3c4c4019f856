"""The estimator registry: one spec per estimator, everything else derived from the list."""
import logging

import pytest
import torch

from pervfi_core import engines
from pervfi_core.errors import ArchitectureMismatchError, InputError, PerVFIError
from pervfi_core.flow import ESTIMATORS, build_estimator
from pervfi_core.flow import registry
from pervfi_core.flow.base import FlowEstimator
from pervfi_core.flow.gmflow import build_gmflow
from pervfi_core.specs import EstimatorSpec, Registry

NAMES = ["auto", "dis", "gmflow", "gmflow-refine", "raft", "raft-small", "rife"]


def test_default_names():
    assert sorted(engines.estimator_choices()) == NAMES
    assert set(engines.ESTIMATOR_MEMORY) == set(NAMES) - {"auto"}


def test_a_name_listed_twice_is_refused():
    spec = EstimatorSpec("x", "x", lambda state_dict=None: None, memory=(0, 0))
    with pytest.raises(ValueError, match="listed twice"):
        Registry("motion estimator", [spec, spec])


def test_unknown_name_lists_valid_names():
    with pytest.raises(InputError) as err:
        engines.load_estimator("flownet")
    for name in NAMES:
        assert name in str(err.value)


def test_a_new_estimator_is_one_spec_and_the_catalogs_follow(monkeypatch):
    class Zero(FlowEstimator):
        def estimate(self, a, b):
            return torch.zeros_like(a[:, :2]), torch.zeros_like(a[:, :2])

    spec = EstimatorSpec("zero", "no motion at all", lambda state_dict=None: Zero(name="zero"), memory=(7, 0.0))
    monkeypatch.setattr(registry, "ESTIMATORS", Registry("motion estimator", [*ESTIMATORS, spec]))
    monkeypatch.setattr(engines, "ESTIMATORS", registry.ESTIMATORS)
    est = engines.load_estimator("zero")
    assert est.name == "zero" and est(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))[0].shape == (1, 2, 4, 4)
    assert "zero" in engines.estimator_choices() and "zero: no motion at all" in registry.ESTIMATORS.help()


def test_auto_on_cpu_picks_dis():
    pytest.importorskip("cv2")
    assert engines.load_estimator("auto").name == "dis"


def test_auto_on_cpu_without_opencv_uses_reduced_gmflow(monkeypatch, caplog):
    def no_cv2():
        raise PerVFIError("OpenCV is not importable")

    monkeypatch.setattr(engines, "import_cv2", no_cv2)
    with caplog.at_level(logging.WARNING, logger="pervfi_core.engines"):
        est = engines.load_estimator("auto", checkpoint=build_gmflow("gmflow-refine").state_dict())
    assert est.name == "gmflow-refine" and est.max_side == registry.CPU_MAX_SIDE
    assert "DIS unavailable" in caplog.text


def test_auto_on_an_accelerator_picks_gmflow_refine():
    # the meta device stands in for a GPU: no memory, no kernels, only the choice is tested
    est = engines.load_estimator("auto", checkpoint=build_gmflow("gmflow-refine").state_dict(), device="meta")
    assert est.name == "gmflow-refine" and est.device.type == "meta" and est.max_side is None


def test_weights_of_another_architecture_are_refused():
    with pytest.raises(ArchitectureMismatchError):
        engines.load_estimator("gmflow", checkpoint=build_gmflow("gmflow-refine").state_dict())
    with pytest.raises(ArchitectureMismatchError):
        build_estimator("gmflow", weights=build_gmflow("gmflow-refine").state_dict())


def test_a_weight_free_estimator_refuses_weights_without_a_download():
    with pytest.raises(InputError, match="takes no weights"):
        engines.load_estimator("dis", checkpoint="raft-sintel")
