"""Helpers for the ASB stage tests: official sub-state-dicts and tolerances from the fixtures."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="session")
def sub_state_dict(load_parity):
    """``sub_state_dict("v00", "deformableAlign.")`` -> that sub-tree with the prefix stripped."""

    def get(arch: str, prefix: str) -> dict[str, torch.Tensor]:
        weights = load_parity(f"weights/pervfi_{arch}")
        return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}

    return get


@pytest.fixture(scope="session")
def fp64_tolerance(parity_dir):
    """``fp64_tolerance("pervfi_v00_t0.5", "pyr.Ft2")`` -> 10x the official float32-vs-float64 noise."""
    table = json.loads((parity_dir / "tolerances.json").read_text())

    def get(file: str, name: str) -> float:
        entry = table[f"{file}.safetensors"][name]
        return 10 * max(entry.get("fp64_max_abs", 0.0), entry.get("splat_order_max_abs", 0.0))

    return get
