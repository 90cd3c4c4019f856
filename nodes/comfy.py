"""The one module of the pack that imports ComfyUI, with stand-alone fallbacks.

Inside ComfyUI it reaches ``comfy.model_management`` (devices, cache, interruption, out-of-memory
detection), ``comfy.utils.ProgressBar`` and ``folder_paths`` (model folders, so that
``extra_model_paths.yaml`` works). Outside ComfyUI (tests, scripts) the same functions fall back
to plain PyTorch: the best available device, CPU for intermediates, no progress bar, and an
interrupt flag that :func:`request_interrupt` raises at the next check.

Nothing happens at import: ComfyUI modules are looked up on first use.
"""
from __future__ import annotations

import functools
import importlib
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import torch

from pervfi_core import engines, weights
from pervfi_core.pipeline import Hooks

log = logging.getLogger(__name__)

# ComfyUI model folder names -> the pervfi_core.weights kinds they feed (same names).
MODEL_FOLDERS = ("pervfi", "pervfi_flow")
MODEL_EXTENSIONS = (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".pkl")


class Interrupted(RuntimeError):
    """Raised outside ComfyUI when :func:`request_interrupt` was called (ComfyUI raises its own)."""


@functools.lru_cache(maxsize=1)
def _comfy() -> SimpleNamespace | None:
    """ComfyUI's modules, or ``None`` when this process is not ComfyUI."""
    try:
        mm = importlib.import_module("comfy.model_management")
        utils = importlib.import_module("comfy.utils")
        folder_paths = importlib.import_module("folder_paths")
    except Exception:  # noqa: BLE001 - any failure means "not inside a working ComfyUI"
        return None
    return SimpleNamespace(mm=mm, utils=utils, folder_paths=folder_paths)


# ---------------------------------------------------------------- devices and memory
def torch_device() -> torch.device:
    """The device models run on: ComfyUI's choice, else the core's ``auto``."""
    c = _comfy()
    return c.mm.get_torch_device() if c is not None else engines.pick_device("auto")


def intermediate_device() -> torch.device:
    """Where results and parked blends wait between nodes (ComfyUI: CPU unless --gpu-only)."""
    c = _comfy()
    return c.mm.intermediate_device() if c is not None else torch.device("cpu")




# ---------------------------------------------------------------- interruption and progress
_interrupt = threading.Event()


def request_interrupt() -> None:
    """Stand-alone equivalent of ComfyUI's Cancel button: the next :func:`check_interrupt` raises."""
    _interrupt.set()


def check_interrupt() -> None:
    """Raise if the user cancelled; called at least once per frame pair."""
    c = _comfy()
    if c is not None:
        c.mm.throw_exception_if_processing_interrupted()
    if _interrupt.is_set():
        _interrupt.clear()
        raise Interrupted("PerVFI: processing interrupted")


class Progress:
    """Progress over ``total`` units (frame pairs): ComfyUI's ProgressBar, or a log line."""

    def __init__(self, total: int, *, label: str = "PerVFI"):
        self.total = max(int(total), 1)
        self.done = 0
        self.label = label
        c = _comfy()
        self._bar = c.utils.ProgressBar(self.total) if c is not None else None

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)
        else:
            log.debug("%s: %d/%d", self.label, self.done, self.total)


# ---------------------------------------------------------------- model folders
def register_model_folders() -> dict[str, list[Path]]:
    """Declare the ``pervfi`` and ``pervfi_flow`` model folders and hand them to pervfi_core.

    In ComfyUI: ``models/pervfi`` and ``models/pervfi_flow`` become ``folder_paths`` entries
    (kept first-registered paths from ``extra_model_paths.yaml`` too). Idempotent; cheap enough
    to call from ``INPUT_TYPES`` so that files added while ComfyUI runs show up after a refresh.
    """
    dirs: dict[str, list[Path]] = {}
    c = _comfy()
    for kind in MODEL_FOLDERS:
        if c is None:
            dirs[kind] = []
            continue
        fp = c.folder_paths
        default = str(Path(fp.models_dir) / kind)
        fp.add_model_folder_path(kind, default, is_default=False)
        paths, exts = fp.folder_names_and_paths[kind]
        fp.folder_names_and_paths[kind] = (paths, set(exts) | set(MODEL_EXTENSIONS))
        dirs[kind] = [Path(p) for p in fp.get_folder_paths(kind)]
    for kind, paths in dirs.items():
        weights.register_model_dirs(kind, paths)
    return dirs


# ---------------------------------------------------------------- pipeline hooks and loading helpers
def hooks(total_pairs: int | None = None, label: str = "PerVFI", *, model=None):
    """:class:`pervfi_core.pipeline.Hooks` wired to ComfyUI (or the stand-alone fallbacks).

    Frames run on the engine's device and in its float type (else
    :func:`torch_device`, float32); blends are parked on :func:`intermediate_device` between the
    blend and decode nodes; progress goes to a ProgressBar per frame pair; every pair checks for
    interruption; out-of-memory errors free the cache and the pipeline retries smaller.
    """
    device, dtype = (model.device, model.dtype) if model is not None else (torch_device(), torch.float32)
    bar = Progress(total_pairs or 1, label=label)

    def progress(done: int, total: int | None) -> None:
        if total is not None and total != bar.total:
            bar.total = max(int(total), 1)
        bar.update(done - bar.done)

    c = _comfy()
    host = {} if c is None else dict(empty_cache=c.mm.soft_empty_cache, **(
        {"is_oom": c.mm.is_oom} if hasattr(c.mm, "is_oom") else {}))  # ComfyUI's, else the core's defaults
    return Hooks(device=device, dtype=dtype, park_device=intermediate_device(), progress=progress,
                 check_interrupt=check_interrupt, **host)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Loader dtype choice -> torch dtype (the core's rule); for ``auto`` ComfyUI says whether fp16 is fast here."""
    c = _comfy()
    half = None
    if name == "auto" and c is not None and hasattr(c.mm, "should_use_fp16"):
        half = torch.float16 if c.mm.should_use_fp16(device) else None
    return engines.pick_dtype(name, device, half=half)


def download_progress(label: str):
    """A ``(bytes_done, bytes_total)`` callback showing a weights download on a ProgressBar."""
    state: dict[str, Progress] = {}

    def report(done: int, total: int | None) -> None:
        if total:
            bar = state.setdefault("bar", Progress(total, label=label))
            bar.update(done - bar.done)

    return report
