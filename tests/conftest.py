"""Shared test fixtures.

Parity tests read ``../shared/fixtures/parity`` (numbers from the official PerVFI code). That folder
sits beside the project in CI; in a user's clone it is absent and those tests skip with the reason.
``PERVFI_PARITY_DIR`` points elsewhere if needed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("PERVFI_PARITY_DIR", ROOT.parent / "shared" / "fixtures" / "parity"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not (PARITY_DIR / "manifest.json").is_file():
        pytest.skip(
            f"parity fixtures not found at {PARITY_DIR} (they live in ../shared beside the project in CI; "
            "set PERVFI_PARITY_DIR to run them elsewhere)"
        )
    return PARITY_DIR


@pytest.fixture(scope="session")
def load_parity(parity_dir):
    """``load_parity("pervfi_inputs")`` -> dict of tensors from ``<name>.safetensors``."""
    from safetensors.torch import load_file

    cache: dict[str, dict[str, torch.Tensor]] = {}

    def load(name: str) -> dict[str, torch.Tensor]:
        if name not in cache:
            cache[name] = load_file(str(parity_dir / f"{name}.safetensors"))
        return cache[name]

    return load


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
