import logging

import pytest
import torch

from pervfi_core.errors import ArchitectureMismatchError, InputError, PerVFIError
from pervfi_core.flow import EstimatorRegistry, EstimatorSpec, build_estimator, default_registry
from pervfi_core.flow.base import FlowEstimator
from pervfi_core.flow.gmflow import build_gmflow

NAMES = ["auto", "dis", "gmflow", "gmflow-refine", "raft", "raft-small", "rife"]


def test_default_names():
    assert sorted(default_registry().names()) == NAMES


def test_duplicate_registration_raises():
    reg = EstimatorRegistry()
    reg.register(EstimatorSpec("x", lambda **kw: None))
    with pytest.raises(ValueError, match="already registered"):
        reg.register(EstimatorSpec("x", lambda **kw: None))


def test_unknown_name_lists_valid_names():
    with pytest.raises(InputError) as err:
        build_estimator("flownet")
    for name in NAMES:
        assert name in str(err.value)


def test_own_registry_is_independent():
    class Zero(FlowEstimator):
        def estimate(self, a, b):
            return torch.zeros_like(a[:, :2]), torch.zeros_like(a[:, :2])

    reg = EstimatorRegistry()
    reg.register(EstimatorSpec("zero", lambda weights=None, device=None: Zero(name="zero")))
    est = build_estimator("zero", registry=reg)
    assert est.name == "zero" and est(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))[0].shape == (1, 2, 4, 4)
    assert "zero" not in default_registry()


def test_auto_on_cpu_picks_dis_and_logs_it(caplog):
    pytest.importorskip("cv2")
    with caplog.at_level(logging.INFO, logger="pervfi_core.flow.registry"):
        est = build_estimator("auto")
    assert est.name == "dis"
    assert "'auto' -> dis" in caplog.text


def test_auto_on_cpu_without_opencv_uses_reduced_gmflow(monkeypatch):
    import pervfi_core.flow.registry as registry

    def no_cv2(**kw):
        raise PerVFIError("OpenCV is not importable")

    monkeypatch.setattr(registry, "build_dis_estimator", no_cv2)
    est = build_estimator("auto", weights=build_gmflow("gmflow-refine").state_dict())
    assert est.name == "gmflow-refine" and est.max_side == registry.CPU_MAX_SIDE


def test_auto_on_an_accelerator_picks_gmflow_refine():
    # the meta device stands in for a GPU: no memory, no kernels, only the choice is tested
    est = build_estimator("auto", weights=build_gmflow("gmflow-refine").state_dict(), device="meta")
    assert est.name == "gmflow-refine" and est.device.type == "meta" and est.max_side is None


def test_weights_of_another_architecture_are_refused():
    with pytest.raises(ArchitectureMismatchError):
        build_estimator("gmflow", weights=build_gmflow("gmflow-refine").state_dict())
