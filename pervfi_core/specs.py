"""Registry entries: one spec per engine and per motion estimator, kept beside its network.

spandrel's architecture registry in spirit: everything the project knows about one architecture
(its name, what it is, how to build it from a state dict, its default weights, its working memory,
how to recognise its checkpoints and read its hyperparameters from tensor shapes) is one record in
the module that holds the network. The registries are plain lists of these records
(:data:`pervfi_core.registry.ENGINES`, :data:`pervfi_core.flow.registry.ESTIMATORS`); the CLI help,
the node choices and tooltips, the memory tables and checkpoint detection are derived from them.
Nothing here reads files: loaders (:mod:`pervfi_core.engines`) fetch and verify the weights and hand
the state dict to ``build``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of a tensor, or a shape given as a list (a ``key -> shape`` listing of a checkpoint)."""
    return tuple(value.shape) if hasattr(value, "shape") else tuple(int(d) for d in value)


@dataclass(frozen=True)
class Architecture:
    """How to recognise a checkpoint of one network and read its constructor arguments.

    ``detect(sd) -> bool`` on a canonical state dict (key names only); ``config(sd) -> dict`` of keyword
    arguments the network's constructor accepts, read from tensor shapes (a missing key raises KeyError).
    """

    id: str
    detect: Callable[[Mapping[str, Any]], bool]
    config: Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EngineSpec:
    """An engine kind. ``build(state_dict, metadata) -> engine`` (CPU, eval mode; ``state_dict`` None for
    an engine without weights); ``memory_per_pixel(config) -> bytes`` (measured, float32). ``estimator``: a
    registered motion estimator the engine is built on (its weights fetched by the loader), handed to
    ``build`` as ``estimator=``."""

    name: str
    description: str
    build: Callable[..., Any]
    memory_per_pixel: Callable[[Mapping[str, Any]], int]
    architecture: Architecture | None = None
    default_weights: str | None = None
    estimator: str | None = None


@dataclass(frozen=True)
class EstimatorSpec:
    """A motion estimator. ``build(state_dict) -> estimator`` (CPU; ``state_dict`` None when it has no
    weights); ``memory = (a, b)``: bytes = a·px + b·px² on the frames it sees, on its device."""

    name: str
    description: str
    build: Callable[..., Any]
    memory: tuple[float, float]
    architecture: Architecture | None = None
    default_weights: str | None = None

    @property
    def needs_weights(self) -> bool:
        return self.architecture is not None


class Registry:
    """An ordered, read-only list of specs of one kind, looked up by name."""

    def __init__(self, kind: str, specs: Sequence):
        self.kind = kind
        self._specs = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"{kind} {spec.name!r} is listed twice")
            self._specs[spec.name] = spec

    def __iter__(self) -> Iterator:
        return iter(self._specs.values())

    def __contains__(self, name) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str):
        if name not in self._specs:
            raise InputError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self._specs)}")
        return self._specs[name]

    def help(self) -> str:
        """One line per entry, ``name: description`` (what CLI help and node tooltips show)."""
        return "; ".join(f"{s.name}: {s.description}" for s in self)
