"""The engine registry, one line per engine, and checkpoint detection over every registered architecture.

To add an engine: write its module (the engine class, an :class:`~pervfi_core.specs.Architecture` when it has
weights, and an :class:`~pervfi_core.specs.EngineSpec`) and add its spec here (recipe: CONTRIBUTING.md).
Estimators are listed in :mod:`pervfi_core.flow.registry`. Loading is :mod:`pervfi_core.engines`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import pervfi_engine, training_free
from .pervfi_rife import engine as pervfi_rife
from .errors import WeightsError
from .flow.registry import ESTIMATORS
from .specs import Registry

ENGINES = Registry("engine", [
    training_free.SPEC,
    pervfi_engine.V00,
    pervfi_engine.VB,
    pervfi_rife.SPEC,
])

#: Every architecture a checkpoint can be recognised as, engines first.
ARCHITECTURES = tuple(s.architecture for s in (*ENGINES, *ESTIMATORS) if s.architecture is not None)


def detect(sd: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(architecture id, constructor arguments read from shapes)`` of a canonical state dict (values may be
    tensors or shapes). Raises :class:`WeightsError` when the keys match no registered architecture."""
    for arch in ARCHITECTURES:
        if arch.detect(sd):
            try:
                return arch.id, arch.config(sd)
            except KeyError as err:  # the family's marker keys are there, but a key we read is not
                raise WeightsError(f"checkpoint looks like {arch.id} but lacks the key {err}") from None
    sample = ", ".join(sorted(sd)[:5])
    raise WeightsError(f"unrecognised checkpoint: its {len(sd)} keys (e.g. {sample}) match none of the known "
                       f"architectures {', '.join(a.id for a in ARCHITECTURES)}")

