"""Fixtures of the generator tests: official-layout weights (random values) from the parity folder."""
from __future__ import annotations

import json

import pytest
import torch


def _under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="session")
def v00_weights(load_parity):
    return load_parity("weights/pervfi_v00")


@pytest.fixture(scope="session")
def vb_weights(load_parity):
    return load_parity("weights/pervfi_vb")


@pytest.fixture(scope="session")
def official_keys(parity_dir):
    """``official_keys("pervfi_v00", "condFLownet.")`` -> {relative key: (shape, dtype name)}."""

    def keys(arch: str, prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
        table = json.loads((parity_dir / "weights" / f"keys_{arch}.json").read_text())
        return {k[len(prefix):]: (tuple(s), d) for k, (s, d) in table.items() if k.startswith(prefix)}

    return keys


def _layout(module: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()}


@torch.no_grad()
def _randomize(module: torch.nn.Module, *, gain: float = 0.5, seed: int = 0) -> torch.nn.Module:
    """Give every parameter non-trivial random values (zero-initialised layers included) and mark
    every ActNorm as initialised, so that property tests exercise every term."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim >= 2:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * gain / fan_in**0.5)
        else:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
    for name, b in module.named_buffers():
        if name.endswith("initialized"):
            b.fill_(1)
    for name, m in module.named_modules():
        if name.endswith("invconv"):  # well conditioned, not orthogonal
            c = m.weight.shape[0]
            q, _ = torch.linalg.qr(torch.randn(c, c, generator=g, dtype=m.weight.dtype))
            m.weight.copy_((q + 0.1 * torch.randn(c, c, generator=g, dtype=q.dtype) / c**0.5)[:, :, None, None])
    return module


@pytest.fixture(scope="session")
def under():
    """``under(state, "condFLownet.")`` -> the sub-state with the prefix stripped."""
    return _under


@pytest.fixture(scope="session")
def layout():
    """``layout(module)`` -> {key: (shape, dtype name)} of its state dict."""
    return _layout


@pytest.fixture(scope="session")
def randomize():
    """``randomize(module, gain=0.5, seed=0)`` -> the module with random non-trivial weights."""
    return _randomize
