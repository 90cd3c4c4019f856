"""Helpers for the ASB stage tests: official sub-state-dicts (tolerances: tests/conftest.py)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def sub_state_dict(load_parity):
    """``sub_state_dict("v00", "deformableAlign.")`` -> that sub-tree with the prefix stripped."""

    def get(arch: str, prefix: str) -> dict[str, torch.Tensor]:
        weights = load_parity(f"weights/pervfi_{arch}")
        return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}

    return get
