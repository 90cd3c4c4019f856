"""Every PerVFI model configuration, official and the project's own, in one table.

``CONFIGS[name] = (decoder, overrides)``: the decoder kind (``"cnf"``, the conditional normalizing
flow of the official v00; ``"vb"``, the deterministic decoder) and keyword overrides of
:class:`pervfi_core.model.PerVFI`'s official hyperparameters. :func:`build_model` builds any of them;
the training package and the engine loader both use this table (inference never imports ``train/``).

The configuration travels with the weights the project trains: :func:`config_metadata` gives the
safetensors metadata (``pervfi_model_config`` = JSON of the full :attr:`PerVFI.config`) and
:func:`model_from_metadata` rebuilds the model from it, so a loader never needs to know the name.
Files and commands written before the decoder's rename ("flow" names the optical flow only) use the old
names; :data:`RENAMED` maps them, in one place.
"""
from __future__ import annotations

import json

from .errors import InputError
from .model import PerVFI
from .training_free import TrainingFreeVFI

META_MODEL_CONFIG = "pervfi_model_config"
META_CONFIG_NAME = "pervfi_config_name"

# The narrow ASB + fusion that every compact config shares: it trains on two CPU cores
# (0.84 M parameters with the normalizing-flow decoder, against the official 8.7 M).
_COMPACT = dict(encoder_channels=(13, 16, 24), metric_rows=(16, 16, 16, 24), dcn_groups=(2, 2, 2), fuse_width=16,
                fuse_branches=(16, 16, 24))
_COMPACT_CNF = dict(_COMPACT, n_steps=4, coupling_hidden=24)  # 4 Glow steps per block

CONFIGS: dict[str, tuple[str, dict]] = {
    # the official models (paper §4.1); their weights are downloaded (weights_manifest.json)
    "v00": ("cnf", {}),
    "vb": ("vb", {}),
    # the project's own, for CPU-sized training budgets
    "compact": ("cnf", _COMPACT_CNF),
    "compact-vb": ("vb", _COMPACT),
    # residual configs: the decoder adds a correction to the training-free frame (PerVFI's ``base``
    # option), so an untrained model starts at the training-free engine; "residual-vb" is the shipped
    # pervfi-own (weights/MODEL_CARD.md)
    "residual-vb": ("vb", dict(_COMPACT, base="training-free")),
    "residual-compact": ("cnf", dict(_COMPACT_CNF, base="training-free")),
    # the τ-capable embedded model (pervfi-own-tau): the normalizing-flow decoder (Eq. 10-17) models the
    # residual to today's training-free engine (motion trust on)
    "residual-cnf": ("cnf", dict(_COMPACT_CNF, base="training-free-trust")),
    # the same residual model wider, with about 3x the parameters (2.4 M, under 10 MB exported), for GPUs
    # (bench/device_train.sh); untrained it too gives exactly the training-free frame at τ = 0
    "residual-cnf-wide": ("cnf", dict(encoder_channels=(24, 32, 48), metric_rows=(16, 24, 32, 48),
                                      dcn_groups=(3, 4, 4), n_steps=6, coupling_hidden=48, fuse_width=32,
                                      fuse_branches=(24, 32, 48), base="training-free-trust")),
    # the smallest valid set, for tests and smoke runs
    "tiny": ("cnf", dict(encoder_channels=(13, 16, 16), metric_rows=(16, 8, 8, 8), dcn_groups=(2, 2, 2), n_steps=2,
                         coupling_hidden=8, fuse_width=8, fuse_branches=(8, 8, 8))),
}
ALIASES = {"pervfi-v00": "v00", "pervfi-vb": "vb"}  # the weights-manifest architecture ids
#: Names from before the normalizing-flow decoder was named the decoder, as the shipped weights' metadata,
#: older exports and commands still spell them -> today's: config names, config keys, the decoder kind.
RENAMED = {"residual-flow": "residual-cnf", "residual-flow-wide": "residual-cnf-wide",
           "n_flows": "n_steps", "flow_hidden": "coupling_hidden", "flow": "cnf"}

#: Residual bases (``base=`` in a config): keyword arguments of the training-free engine whose frame the
#: decoder corrects. "training-free" is the engine as pervfi-own was trained on it, before motion trust;
#: "training-free-trust" is today's engine (motion trust on, the training-free frames).
BASES = {"training-free": dict(trust_gain=0.0), "training-free-trust": {}}


def network(**config) -> PerVFI:
    """:class:`PerVFI` from a full config (``base`` a name of :data:`BASES`, composed as an engine), in eval
    mode; ``network.config`` keeps the base's name so that the config travels with the weights."""
    base = config.pop("base", None)
    if base is not None and base not in BASES:
        raise InputError(f"base: expected None or one of {tuple(BASES)}, got {base!r}")
    model = PerVFI(**config, base=None if base is None else TrainingFreeVFI(**BASES[base]))
    if base is not None:  # only then: official configs keep exactly the official config keys
        model.config["base"] = base
    return model.eval()


def config_name(name: str) -> str:
    """Today's name of a config: an alias of :data:`ALIASES` or an old name of :data:`RENAMED` resolved."""
    return ALIASES.get(name, RENAMED.get(name, name))


def build_model(config: str = "v00", **overrides):
    """A PerVFI model with random weights, in eval mode, for ``config`` (a name of :data:`CONFIGS` or an
    alias of :data:`ALIASES`); keyword ``overrides`` (see :class:`~pervfi_core.model.PerVFI`) on top."""
    name = config_name(config)
    if name not in CONFIGS:
        raise InputError(f"config: expected one of {(*CONFIGS, *ALIASES)}, got {config!r}")
    decoder, base = CONFIGS[name]
    return network(decoder=decoder, **{**base, **overrides})


def config_metadata(model, name: str) -> dict[str, str]:
    """safetensors metadata that rebuilds ``model``: ``pervfi_model_config`` (JSON of ``model.config``),
    ``pervfi_config_name``, ``pervfi_architecture``."""
    return {META_MODEL_CONFIG: json.dumps(model.config, sort_keys=True), META_CONFIG_NAME: name,
            "pervfi_architecture": model.arch}


def model_from_metadata(metadata: dict[str, str]):
    """Rebuild the (untrained) model described by :func:`config_metadata`'s metadata (old names read
    through :data:`RENAMED`)."""
    if META_MODEL_CONFIG not in metadata:
        raise InputError(f"weights metadata has no {META_MODEL_CONFIG!r}: not a file written by pervfi_core.train")
    cfg = {RENAMED.get(k, k): tuple(v) if isinstance(v, list) else v
           for k, v in json.loads(metadata[META_MODEL_CONFIG]).items()}
    if "decoder" in cfg:
        cfg["decoder"] = RENAMED.get(cfg["decoder"], cfg["decoder"])
    return network(**cfg)
