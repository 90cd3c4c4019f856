"""The motion-estimator registry: one line per estimator; each spec lives beside its network.

To add an estimator: write its module (the network, an :class:`~pervfi_core.specs.Architecture` when it
has weights, and a :class:`~pervfi_core.specs.EstimatorSpec`) and add its ``SPEC`` here. Everything
else (CLI help, node choices, memory figures, checkpoint detection) is derived from this list.

``auto`` is not an estimator but a rule (:data:`AUTO`): the loader (:func:`pervfi_core.engines.load_estimator`)
picks ``gmflow-refine`` on a GPU and, on a CPU, ``dis`` when OpenCV imports, else ``gmflow-refine`` at
reduced resolution (longer side <= :data:`CPU_MAX_SIDE`).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from ..errors import ArchitectureMismatchError, InputError
from ..specs import Registry
from . import dis, gmflow_estimator, raft, rife

logger = logging.getLogger(__name__)

AUTO = "auto"
AUTO_DESCRIPTION = "pretrained GMFlow-refine on a GPU; DIS on a CPU"
#: Longer side (px) at which ``auto`` runs GMFlow on a CPU without OpenCV.
CPU_MAX_SIDE = 512

ESTIMATORS = Registry("motion estimator", [
    dis.SPEC,
    rife.SPEC,
    gmflow_estimator.REFINE_SPEC,
    gmflow_estimator.SPEC,
    raft.SPEC,
    raft.SMALL_SPEC,
])


def names() -> list[str]:
    """What a user can pick: ``auto`` then every registered estimator."""
    return [AUTO, *ESTIMATORS.names()]


def build_estimator(name: str, weights: Mapping | None = None, device=None):
    """Estimator ``name`` from an in-memory state dict (or none, for a weight-free estimator), on ``device``.

    Files, manifest ids and default weights are loaded by :func:`pervfi_core.engines.load_estimator`.
    """
    spec = ESTIMATORS.get(name)
    if spec.needs_weights and weights is None:
        raise InputError(f"{name} needs weights: load it with pervfi_core.engines.load_estimator({name!r}), "
                         "which fetches its default weights")
    if not spec.needs_weights and weights is not None:
        raise InputError(f"the {name!r} motion estimator takes no weights")
    if spec.needs_weights and not spec.architecture.detect(weights):
        raise ArchitectureMismatchError(f"these weights are not a {name} checkpoint (its marker keys are missing)")
    try:
        est = spec.build(dict(weights)) if spec.needs_weights else spec.build()
    except RuntimeError as err:  # load_state_dict(strict=True) names the missing/unexpected keys
        raise ArchitectureMismatchError(f"these weights do not fit the {name} network: {err}") from None
    est = est.to(torch.device(device if device is not None else "cpu"))
    logger.info("motion estimator %r on %s", est.name, est.device)
    return est
