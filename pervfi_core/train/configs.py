"""Named model configurations for training: name -> (decoder, keyword overrides of :class:`PerVFI`).

The configuration travels with the weights: :func:`config_metadata` gives the safetensors metadata
(``pervfi_model_config`` = JSON of the full :attr:`PerVFI.config`; ``pervfi_config`` is
:mod:`pervfi_core.weights`' shape-derived summary) and :func:`model_from_metadata` rebuilds
the model from it, so a loader never needs to know the name.
"""
from __future__ import annotations

import json

from ..errors import InputError

META_MODEL_CONFIG = "pervfi_model_config"

# "compact": a v00-style normalizing-flow model that trains on two shared CPU cores (0.84 M
# parameters against the official 8.7 M): narrow pyramid, 4 flow steps per block (about 3 s per step
# of 4 patches of 128² on one loaded CPU core).
# "tiny": the smallest valid set, for tests and smoke runs.
_COMPACT = dict(encoder_channels=(13, 16, 24), metric_rows=(16, 16, 16, 24), dcn_groups=(2, 2, 2), fuse_width=16,
                fuse_branches=(16, 16, 24))  # the narrow ASB + fusion every compact config shares
_COMPACT_FLOW = dict(_COMPACT, n_flows=4, flow_hidden=24)
CONFIGS: dict[str, tuple[str, dict]] = {
    "compact": ("v00", _COMPACT_FLOW),
    "compact-vb": ("vb", _COMPACT),
    # "residual-vb": compact-vb whose decoder adds a residual to the training-free frame (PerVFI's
    # ``base`` option): it starts at the training-free default and learns corrections, which is what
    # a CPU-sized budget can teach; the project's shipped weights (weights/MODEL_CARD.md).
    "residual-vb": ("vb", dict(_COMPACT, base="training-free")),
    "residual-compact": ("v00", dict(_COMPACT_FLOW, base="training-free")),
    "tiny": ("v00", dict(encoder_channels=(13, 16, 16), metric_rows=(16, 8, 8, 8), dcn_groups=(2, 2, 2), n_flows=2,
                         flow_hidden=8, fuse_width=8, fuse_branches=(8, 8, 8))),
}
# Official sizes for GPU training (paper §4.1).
CONFIGS["v00"] = ("v00", {})
CONFIGS["vb"] = ("vb", {})


def build_config(name: str, **extra):
    """A model with random weights for config ``name`` (``extra`` overrides on top of it)."""
    from ..model import build_model

    if name not in CONFIGS:
        raise InputError(f"config: expected one of {tuple(CONFIGS)}, got {name!r}")
    decoder, overrides = CONFIGS[name]
    return build_model(decoder, **{**overrides, **extra})


def config_metadata(model, name: str) -> dict[str, str]:
    """safetensors metadata that rebuilds ``model``: ``pervfi_model_config`` (JSON of ``model.config``),
    ``pervfi_config_name``, ``pervfi_architecture``."""
    return {META_MODEL_CONFIG: json.dumps(model.config, sort_keys=True), "pervfi_config_name": name,
            "pervfi_architecture": model.arch}


def model_from_metadata(metadata: dict[str, str]):
    """Rebuild the (untrained) model described by :func:`config_metadata`'s metadata."""
    from ..model import PerVFI

    if META_MODEL_CONFIG not in metadata:
        raise InputError(f"weights metadata has no {META_MODEL_CONFIG!r}: not a file written by pervfi_core.train")
    cfg = json.loads(metadata[META_MODEL_CONFIG])
    return PerVFI(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}).eval()


def load_trained(path) -> "torch.nn.Module":
    """A model with the weights of a safetensors file written by :func:`pervfi_core.train.cli.export`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata() or {})
    model = model_from_metadata(metadata)
    model.load_state_dict(load_file(str(path)))
    return model
