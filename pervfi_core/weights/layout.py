"""State-dict layouts: canonical form, layout fingerprint, architecture detection.

Everything that looks at *names and shapes* of a checkpoint lives here (spandrel style: an
architecture is recognised from its key names, its hyperparameters are read from tensor shapes).
Nothing here reads files or touches the network; see :mod:`pervfi_core.weights`.

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
import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import WeightsError

LAYOUT_VERSION = "lf1"
BOOKKEEPING_BUFFERS = frozenset({"num_batches_tracked", "initialized"})

#: Detected architecture ids (families); hyperparameters are reported separately.
ARCHITECTURES = ("pervfi-v00", "pervfi-vb", "raft", "raft-small", "gmflow", "gmflow-refine", "rife")

_CONTAINER_KEYS = ("model", "state_dict", "params", "net")


def _shape_of(value: Any) -> tuple[int, ...]:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return tuple(int(d) for d in value)  # already a shape (e.g. from a keys_*.json listing)


def layout_lines(layout: Mapping[str, Any]) -> list[str]:
    """Sorted ``key<TAB>shape`` lines that the fingerprint hashes (bookkeeping buffers left out).

    ``layout`` maps key -> tensor, or key -> shape (list/tuple of ints).
    """
    lines = []
    for key in sorted(layout):
        if key.rsplit(".", 1)[-1] in BOOKKEEPING_BUFFERS:
            continue
        lines.append(f"{key}\t{'x'.join(str(d) for d in _shape_of(layout[key]))}\n")
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


def _count(keys, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := rx.match(k))})


def _pervfi_config(sd: Mapping[str, Any]) -> dict[str, Any]:
    enc = "featurePyramid.netEncode.net{}.0.weight"
    cfg: dict[str, Any] = {
        "pyramid_channels": [_shape_of(sd[enc.format(n)])[0] for n in ("One", "Two", "Thr")],
        "fuse_out_channels": [_shape_of(sd[f"multiscaleFuse.final_layers.{i}.weight"])[0] for i in range(3)],
    }
    if any(k.startswith("condFLownet.") for k in sd):
        keys = list(sd)
        n_blocks = _count(keys, r"condFLownet\.blocks\.(\d+)\.")
        cfg.update(
            n_blocks=n_blocks,  # L: scales of the normalising flow
            n_flows=_count(keys, r"condFLownet\.blocks\.0\.flows\.(\d+)\."),  # K: steps per scale
            hidden=_shape_of(sd["condFLownet.blocks.0.flows.0.coupling.affine.tail.0.weight"])[0],
            z_channels=[_shape_of(sd[f"condFLownet.blocks.{b}.actnorm.loc"])[1] for b in range(n_blocks)],
        )
    return cfg


def _raft_config(sd: Mapping[str, Any]) -> dict[str, Any]:
    small = "update_block.gru.convz.weight" in sd
    gru = "update_block.gru.convz.weight" if small else "update_block.gru.convz1.weight"
    hidden = _shape_of(sd[gru])[0]
    levels = 4  # RAFT's correlation pyramid depth (not visible in the weights; fixed by the design)
    corr_planes = _shape_of(sd["update_block.encoder.convc1.weight"])[1]  # = levels * (2r+1)^2
    radius = (math.isqrt(corr_planes // levels) - 1) // 2
    return {
        "small": small,
        "hidden_dim": hidden,
        "context_dim": _shape_of(sd["cnet.conv2.weight"])[0] - hidden,
        "feature_dim": _shape_of(sd["fnet.conv2.weight"])[0],
        "corr_levels": levels,
        "corr_radius": radius,
    }


def _gmflow_config(sd: Mapping[str, Any]) -> dict[str, Any]:
    up_out = _shape_of(sd["upsampler.2.weight"])[0]  # 9 * factor^2 (convex upsampling weights)
    c = _shape_of(sd["backbone.conv2.weight"])[0]
    return {
        "feature_channels": c,
        "num_scales": 2 if "backbone.trident_conv.weight" in sd else 1,
        "upsample_factor": math.isqrt(up_out // 9),
        "num_transformer_layers": _count(sd, r"transformer\.layers\.(\d+)\."),
        "ffn_dim_expansion": _shape_of(sd["transformer.layers.0.cross_attn_ffn.mlp.0.weight"])[0] // (2 * c),
    }


def _rife_config(sd: Mapping[str, Any]) -> dict[str, Any]:
    blocks = _count(sd, r"block(\d+)\.conv0\.")
    return {
        "widths": [_shape_of(sd[f"block{i}.convblock.0.conv.weight"])[0] for i in range(blocks)],
        "head_channels": _shape_of(sd["encode.cnn3.weight"])[1],
        # the release also carries its training-only distillation teacher; copies without it are the same network
        "training_parts": any(k.startswith(("teacher.", "caltime.")) for k in sd),
    }


def detect(sd: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(architecture id, hyperparameters read from shapes)`` of a canonical state dict.

    Raises :class:`WeightsError` when the keys match no known architecture.
    """
    try:
        if "featurePyramid.netEncode.netOne.0.weight" in sd:
            if any(k.startswith("condFLownet.") for k in sd):
                return "pervfi-v00", _pervfi_config(sd)
            if "generator.tail.weight" in sd:
                return "pervfi-vb", _pervfi_config(sd)
        if "update_block.flow_head.conv1.weight" in sd and "fnet.conv1.weight" in sd:
            cfg = _raft_config(sd)
            return ("raft-small" if cfg["small"] else "raft"), cfg
        if "backbone.conv1.weight" in sd and "transformer.layers.0.self_attn.q_proj.weight" in sd:
            cfg = _gmflow_config(sd)
            return ("gmflow-refine" if cfg["num_scales"] == 2 else "gmflow"), cfg
        if "encode.cnn0.weight" in sd and "block0.convblock.0.beta" in sd:
            return "rife", _rife_config(sd)
    except KeyError as err:  # the family's marker keys are there, but a key we read is not
        raise WeightsError(f"checkpoint looks like a known architecture but lacks the key {err}") from None
    sample = ", ".join(sorted(sd)[:5])
    raise WeightsError(
        f"unrecognised checkpoint: its {len(sd)} keys (e.g. {sample}) match none of the known "
        f"architectures {', '.join(ARCHITECTURES)}"
    )
