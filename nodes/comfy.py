"""The one module of the pack that imports ComfyUI, with stand-alone fallbacks.

Inside ComfyUI it reaches ``comfy.model_management`` (devices, the model manager, cache,
interruption, out-of-memory detection), ``comfy.model_patcher`` (the ModelPatcher the models
travel in), ``comfy.utils.ProgressBar``, ``folder_paths`` (model folders, so that
``extra_model_paths.yaml`` works) and ``comfy_api.latest`` (the VIDEO type). Outside ComfyUI (tests,
scripts) the same functions fall back to plain PyTorch: the best available device, CPU for
intermediates, plain engines instead of patchers, no progress bar, a small VIDEO stand-in, and an
interrupt flag that :func:`request_interrupt` raises at the next check.

ComfyUI modules are looked up on first use, except ComfyUI's V3 node API (``comfy_api.latest``), which the
node classes are built on when they are defined: :data:`io` and :data:`ComfyExtension` are ComfyUI's when
it is importable, else the stand-ins of :mod:`nodes.standin_io`.
"""
from __future__ import annotations

import functools
import importlib
import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import torch

from pervfi_core import engines, weights
from pervfi_core.errors import InputError
from pervfi_core.pipeline import Hooks

log = logging.getLogger(__name__)


def _node_api():
    """ComfyUI's V3 node API, else the stand-in (tests and scripts outside ComfyUI)."""
    try:
        from comfy_api.latest import ComfyExtension as extension
        from comfy_api.latest import io as api
        return api, extension, True
    except Exception:  # noqa: BLE001 - any failure means "not inside a working ComfyUI"
        from . import standin_io
        return standin_io, standin_io.ComfyExtension, False


io, ComfyExtension, REAL_API = _node_api()

# ComfyUI model folder names -> the pervfi_core.weights kinds they feed (same names).
MODEL_FOLDERS = ("pervfi", "pervfi_flow")
FRAME_INTERPOLATION = "frame_interpolation"  # where RIFE checkpoints of other frame-interpolation nodes live
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
    return SimpleNamespace(mm=mm, utils=utils, folder_paths=folder_paths, patcher=_optional("comfy.model_patcher"),
                           api=_optional("comfy_api.latest"))


def _optional(name: str):
    """A ComfyUI module that older versions lack (then the pack works without what it offers)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------- devices and memory
def torch_device() -> torch.device:
    """The device models run on: ComfyUI's choice, else the core's ``auto``."""
    c = _comfy()
    return c.mm.get_torch_device() if c is not None else engines.pick_device("auto")


def intermediate_device() -> torch.device:
    """Where results and parked blends wait between nodes (ComfyUI: CPU unless --gpu-only)."""
    c = _comfy()
    return c.mm.intermediate_device() if c is not None else torch.device("cpu")


def offload_device() -> torch.device:
    """Where models wait between runs (ComfyUI: its offload device, the CPU unless --highvram)."""
    c = _comfy()
    return c.mm.unet_offload_device() if c is not None else torch_device()


# ---------------------------------------------------------------- the model manager
class ManagedModel(torch.nn.Module):
    """What a ComfyUI ModelPatcher holds: an engine or a motion estimator, as a submodule.

    The patcher moves this module (hence the engine) between its load and offload devices and writes
    the placement to ``self.device``; the engines' own ``device`` is a read-only property of their
    parameters, which it could not write. ComfyUI's log names the class ("Requested to load ...").
    """

    def __init__(self, inner: torch.nn.Module, device):
        super().__init__()
        self.inner = inner
        self.device = torch.device(device)

    def get_dtype(self) -> torch.dtype:  # what ModelPatcher.model_dtype() reports
        return self.inner.dtype


class PerVFIGenerator(ManagedModel):
    """A PerVFI engine (PerVFI network or the training-free engine) under ComfyUI's model manager."""


class PerVFIMotion(ManagedModel):
    """A motion estimator under ComfyUI's model manager."""


def manage(model, *, kind: str = "generator"):
    """Inside ComfyUI: ``model`` (on :func:`offload_device`) in a ModelPatcher, load device
    :func:`torch_device`. ``CoreModelPatcher`` is looked up now, not at import: ComfyUI rebinds it when
    dynamic VRAM is on. Stand-alone (or a ComfyUI without ModelPatcher): ``model`` itself."""
    c = _comfy()
    if c is None or c.patcher is None or not isinstance(model, torch.nn.Module):
        return model
    wrapper = (PerVFIMotion if kind == "motion" else PerVFIGenerator)(model, offload_device())
    patcher_cls = getattr(c.patcher, "CoreModelPatcher", None) or c.patcher.ModelPatcher
    return patcher_cls(wrapper, load_device=torch_device(), offload_device=offload_device())


def unwrap(model):
    """The engine or estimator inside a ModelPatcher made by :func:`manage`, else ``model`` itself."""
    inner = getattr(model, "model", None)
    return inner.inner if isinstance(inner, ManagedModel) else model


def prepare(*models, memory_required: int = 0) -> list:
    """Before a run: ComfyUI's model manager loads the patchers among ``models`` onto their load device
    and frees ``memory_required`` bytes there for the run (unloading other models if need be); returns
    the engines / estimators to run. Plain engines (stand-alone use) are returned as they are.

    Loaded whole (``force_full_load``): plain PyTorch modules cannot run split between devices. Engines
    read their device from their parameters, i.e. from where the manager put them for this run; nothing
    here holds them there afterwards, so the manager offloads them when other models need the memory.
    """
    c = _comfy()
    patchers = [m for m in models if unwrap(m) is not m]
    if patchers and c is not None and hasattr(c.mm, "load_models_gpu"):
        c.mm.load_models_gpu(patchers, memory_required=int(memory_required), force_full_load=True)
    return [unwrap(m) for m in models]


# ---------------------------------------------------------------- VIDEO
@dataclass
class VideoParts:
    """A VIDEO's content: IMAGE ``[B, H, W, 3]`` float in [0, 1], exact frame rate, AUDIO (or None)."""

    images: torch.Tensor
    frame_rate: Fraction
    audio: dict | None = None


class StandaloneVideo:
    """The VIDEO stand-in outside ComfyUI (tests, scripts): ``get_components()`` like ComfyUI's VideoInput."""

    def __init__(self, parts: VideoParts):
        self._parts = parts

    def get_components(self) -> VideoParts:
        return self._parts


def video_parts(video) -> VideoParts:
    """ComfyUI VIDEO (or :class:`StandaloneVideo`) -> :class:`VideoParts`; decodes a file-backed video."""
    if not hasattr(video, "get_components"):
        raise InputError(f"video: expected a VIDEO (e.g. from Load Video or Create Video), got {type(video).__name__}")
    parts = video.get_components()
    return VideoParts(parts.images, Fraction(parts.frame_rate), getattr(parts, "audio", None))


def make_video(images: torch.Tensor, frame_rate: Fraction, audio: dict | None = None):
    """IMAGE ``[B, H, W, 3]`` + exact frame rate + AUDIO -> a VIDEO ComfyUI's Save Video writes."""
    c = _comfy()
    api = c.api if c is not None else None
    if api is None:
        return StandaloneVideo(VideoParts(images, Fraction(frame_rate), audio))
    return api.InputImpl.VideoFromComponents(api.Types.VideoComponents(images=images, audio=audio,
                                                                       frame_rate=Fraction(frame_rate)))


def video_file(video) -> Path | None:
    """The file a VIDEO reads, when it is a whole file on disk (Load Video's VideoFromFile, untrimmed), else None
    (a VIDEO built from images, a file held in memory, a trimmed clip): only then can it be streamed."""
    source = getattr(video, "get_stream_source", None)
    if source is None:
        return None
    path = source()
    trim = getattr(video, "get_active_trim_window", None)
    if not isinstance(path, (str, Path)) or (trim is not None and any(trim())):
        return None
    return Path(path) if Path(path).is_file() else None


def video_from_file(path: Path):
    """A VIDEO backed by the file at ``path`` (ComfyUI's VideoFromFile; stand-alone, a :class:`StandaloneVideoFile`)."""
    c = _comfy()
    api = c.api if c is not None else None
    if api is None:
        return StandaloneVideoFile(path)
    return api.InputImpl.VideoFromFile(str(path))


class StandaloneVideoFile:
    """The file-backed VIDEO stand-in outside ComfyUI: ``get_stream_source()`` like ComfyUI's VideoFromFile."""

    def __init__(self, path):
        self.path = Path(path)

    def get_stream_source(self) -> str:
        return str(self.path)


def output_file(prefix: str, suffix: str = ".mp4") -> Path:
    """A new file name in ComfyUI's temp folder (emptied when ComfyUI starts), else the system's."""
    import tempfile
    import uuid

    c = _comfy()
    folder = Path(c.folder_paths.get_temp_directory()) if c is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{prefix}_{uuid.uuid4().hex[:12]}{suffix}"


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
    if c is not None:  # RIFE checkpoints kept for other frame-interpolation nodes: the 'rife' estimator reads them
        dirs["pervfi_flow"] += [p for p in _frame_interpolation_dirs(c.folder_paths) if p not in dirs["pervfi_flow"]]
    for kind, paths in dirs.items():
        weights.register_model_dirs(kind, paths)
    return dirs


def _frame_interpolation_dirs(fp) -> list[Path]:
    """ComfyUI's ``frame_interpolation`` model folders, when it declares them, else ``models/frame_interpolation``
    when that folder exists. Only read: downloads still go to ``models/pervfi_flow``."""
    if FRAME_INTERPOLATION in getattr(fp, "folder_names_and_paths", {}):
        return [Path(p) for p in fp.get_folder_paths(FRAME_INTERPOLATION)]
    default = Path(fp.models_dir) / FRAME_INTERPOLATION
    return [default] if default.is_dir() else []


# ---------------------------------------------------------------- pipeline hooks and loading helpers
def hooks(total_pairs: int | None = None, label: str = "PerVFI", *, model=None):
    """:class:`pervfi_core.pipeline.Hooks` wired to ComfyUI (or the stand-alone fallbacks).

    Frames run on the engine's device and in its float type (else
    :func:`torch_device`, float32); blends are parked on :func:`intermediate_device` between the
    blend and decode nodes; progress goes to a ProgressBar per frame pair; every pair checks for
    interruption; out-of-memory errors free the cache and the pipeline retries smaller.
    """
    model = unwrap(model)  # its placement now, after prepare(): where the manager loaded it for this run
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
    """Loader dtype choice -> torch dtype (the core's rule). For ``auto`` ComfyUI says which half type is
    fast on ``device``: bfloat16 first (float32's range: softmax-splatting weights are exponentials),
    then float16, else float32. The normalizing-flow decoder stays float32 either way (engines.load_engine)."""
    c = _comfy()
    half = None
    if name == "auto" and c is not None:
        if getattr(c.mm, "should_use_bf16", None) is not None and c.mm.should_use_bf16(device):
            half = torch.bfloat16
        elif getattr(c.mm, "should_use_fp16", None) is not None and c.mm.should_use_fp16(device):
            half = torch.float16
    return engines.pick_dtype(name, device, half=half)


def download_progress(label: str):
    """A ``(bytes_done, bytes_total)`` callback showing a weights download on a ProgressBar."""
    state: dict[str, Progress] = {}

    def report(done: int, total: int | None) -> None:
        if total:
            bar = state.setdefault("bar", Progress(total, label=label))
            bar.update(done - bar.done)

    return report
