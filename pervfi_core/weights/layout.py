"""State-dict layouts: canonical form and layout fingerprint.

Which architecture a checkpoint is (from its key names) and its hyperparameters (from tensor shapes)
are told by each network's :class:`~pervfi_core.specs.Architecture`, kept beside the network and
listed by :mod:`pervfi_core.registry`. Nothing here reads files or touches a network.

Layout fingerprint (``"lf1:" + sha256 hex``)
    sha256 over the lines ``"<key>\\t<d0>x<d1>x...\\n"`` of the *canonical* keys, sorted by key
    (a 0-dim tensor has an empty shape). It therefore

    * ignores key order (safetensors sorts keys, ``torch.save`` keeps module order),
    * ignores dtype (an fp16 or bf16 copy has the same layout as its fp32 original),
    * ignores bookkeeping buffers whose last name component is in :data:`BOOKKEEPING_BUFFERS`
      (``num_batches_tracked`` of BatchNorm, int64; ``initialized`` of the v00 ActNorm, uint8):
      they carry no learned values, are sometimes dropped or re-typed by conversion tools, and
      must not make the check fragile,
    * distinguishes architectures and configurations: any renamed, missing or extra learned
      tensor, or any different shape, changes it.

    The fingerprint is computed from the tensors themselves, so it can always be verified, even for
    files whose publishers give no hash.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import WeightsError
from ..specs import shape_of

LAYOUT_VERSION = "lf1"
BOOKKEEPING_BUFFERS = frozenset({"num_batches_tracked", "initialized"})

_CONTAINER_KEYS = ("model", "state_dict", "params", "net")


def layout_lines(layout: Mapping[str, Any]) -> list[str]:
    """Sorted ``key<TAB>shape`` lines that the fingerprint hashes (bookkeeping buffers left out).

    ``layout`` maps key -> tensor, or key -> shape (list/tuple of ints).
    """
    lines = []
    for key in sorted(layout):
        if key.rsplit(".", 1)[-1] in BOOKKEEPING_BUFFERS:
            continue
        lines.append(f"{key}\t{'x'.join(str(d) for d in shape_of(layout[key]))}\n")
    return lines


def layout_fingerprint(layout: Mapping[str, Any]) -> str:
    """Fingerprint of a state dict's key names and shapes, ``"lf1:<64 hex>"`` (see module doc)."""
    digest = hashlib.sha256("".join(layout_lines(layout)).encode("utf-8")).hexdigest()
    return f"{LAYOUT_VERSION}:{digest}"


def canonicalize(obj: Any, *, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The one place where upstream containers become a plain ``{key: tensor}`` dict.

    Handles, in this order: ``{"model": sd}`` / ``{"state_dict": sd}`` wrappers (GMFlow and training
    checkpoints; unwrapped repeatedly), then a ``module.`` prefix on every key (``DataParallel``;
    PerVFI and RAFT releases). Returns ``(state_dict, container)`` with ``container`` one of
    ``"plain"``, ``"module-prefix"``, ``"model-wrapper"``, ``"model-wrapper+module-prefix"``.
    """
    wrapped = False
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise WeightsError(
                f"{source}: expected a state dict (key -> tensor) or a container with one under "
                f"{'/'.join(repr(k) for k in _CONTAINER_KEYS)}; found only the entries {sorted(obj)[:10]}"
            )
        obj, wrapped = inner, True
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source}: expected a state dict (key -> tensor), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(
            f"{source}: entries that are not tensors: {bad[:5]} ({len(bad)} in total); "
            "a weights file must map names to tensors only"
        )
    prefixed = bool(obj) and all(str(k).startswith("module.") for k in obj)
    sd = {(k[len("module."):] if prefixed else str(k)): v for k, v in obj.items()}
    container = "+".join(p for p, on in (("model-wrapper", wrapped), ("module-prefix", prefixed)) if on)
    return sd, container or "plain"
