"""Reading and writing checkpoint files safely.

* ``.pth`` / ``.pt`` / ``.pkl`` (torch.save archives, zip or legacy pickle) are read **only** with
  ``torch.load(weights_only=True)``: a pickle that references anything beyond tensors and plain
  containers is refused with :class:`UnsafeCheckpointError` before any of its code can run.
* ``.safetensors`` files are read with safetensors (no code at all); their metadata is returned.

The format is recognised from the file's first bytes, not its name, so a ``.part`` file being
verified during a download reads the same way as the final file.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import torch

from ..errors import UnsafeCheckpointError, WeightsError

_ZIP_MAGIC = b"PK\x03\x04"


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sniff_format(path: Path) -> str:
    """``"safetensors"``, ``"torch-zip"`` or ``"torch-pickle"`` from the first bytes of ``path``."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(_ZIP_MAGIC):
        return "torch-zip"
    if len(head) >= 9 and head[8:9] == b"{":  # u64 little-endian header size, then a JSON header
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol marker (legacy, non-zip torch.save)
        return "torch-pickle"
    raise WeightsError(
        f"{path.name}: not a checkpoint this package reads (expected a .safetensors file or a "
        f"torch.save .pth/.pt archive); first bytes {head[:8]!r}. A partly downloaded or HTML error "
        "page saved under this name looks like this: download it again."
    )


def read_raw(path: Path) -> tuple[object, dict[str, str]]:
    """``(object, metadata)`` read from ``path`` without running any code from it.

    ``object`` is whatever the file holds (a state dict or a container around one); metadata is
    the safetensors header metadata (``{}`` for torch archives).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint file not found: {path}")
    fmt = sniff_format(path)
    if fmt == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise WeightsError(f"{path.name}: unreadable safetensors file ({err}); download it again") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True), {}
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path.name}: refused. The file is a pickle that asks to run code or build objects other "
            "than tensors while loading (torch.load(weights_only=True) rejected it: "
            f"{str(err).splitlines()[0][:300]}). Nothing from it was executed. Use the official file "
            "from the source in weights_manifest.json, or a .safetensors file; never load an "
            "untrusted pickle with weights_only=False."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise WeightsError(
            f"{path.name}: unreadable torch checkpoint ({str(err).splitlines()[0][:300]}); "
            "the file is probably truncated or corrupt: download it again"
        ) from err


def _unshared(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous copies, with tensors that share memory duplicated.

    safetensors refuses aliased tensors; RAFT's ``cnet.layer2.0.norm3`` and ``downsample.1`` are
    one module stored under two names, so both keys are kept with equal values.
    """
    seen: set[int] = set()
    out = {}
    for key in sorted(sd):
        t = sd[key].detach().cpu()
        storage = t.untyped_storage()
        whole = t.is_contiguous() and storage.nbytes() == t.numel() * t.element_size()
        if storage.data_ptr() in seen or not whole:
            t = t.contiguous().clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def write_safetensors(sd: dict[str, torch.Tensor], dest: Path, metadata: dict[str, str]) -> Path:
    """Write ``sd`` to ``dest`` (via ``dest.part`` and an atomic rename) with string ``metadata``."""
    from safetensors.torch import save_file

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    meta = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in metadata.items()}
    try:
        save_file(_unshared(sd), str(tmp), metadata=meta)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
