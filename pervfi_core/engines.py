"""Engines: the one contract the pipeline runs, and loading an engine or a motion estimator by id/path.

An *engine* makes new frames from two frames and their flows in two steps, ``blend`` (the
expensive, reusable part) and ``decode`` (the part τ and the seed act on). Two implement
:class:`Engine`: :class:`pervfi_core.model.PerVFI` (ASB + generator, paper Fig. 2) and
:class:`pervfi_core.training_free.TrainingFreeVFI` (PerVFI's asymmetric blending on images). The
pipeline reads only what the protocol declares; each engine carries an :class:`EngineInfo`
descriptor of what was loaded (spandrel's ``ModelDescriptor`` in spirit).

``load_model(None)`` / ``"default"`` is the default engine, :data:`DEFAULT_MODEL`: the weight-free
engine (``"training-free"``, PerVFI's asymmetric blending on images with motion trust), which measured
better than the project's own trained weights (``pervfi-own``, shipped in ``weights/``, offline;
weights/MODEL_CARD.md) and is about 15x faster on a CPU. Otherwise the spec is a manifest id or a file path;
the architecture is read from the state dict and the weights are loaded strictly.
:func:`model_choices` / :func:`estimator_choices` are what the CLI's help and the loader nodes list.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from .errors import ArchitectureMismatchError, InputError

logger = logging.getLogger(__name__)

# The default on every device: on the 7 registry clips measured (bench/results/default.md) the weight-free
# engine with motion trust beats the project's trained pervfi-own in PSNR on every clip and in LPIPS on all
# but one subset (within 0.0002 there), overall LPIPS-alex 0.0265 against 0.0382, at 1/15 of its CPU cost.
# The τ-capable pervfi-own-flow comes within 0.0001 of it on four held-out clips but beats it on none
# (bench/results/tau.md), so no embedded model earns the default on any device.
DEFAULT_MODEL = "training-free"
DEFAULT = "default"
TRAINING_FREE = "training-free"
ESTIMATORS = ("auto", "dis", "rife", "gmflow-refine", "gmflow", "raft", "raft-small")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is and where it came from.

    id: manifest id, file name or engine name (what reports show); architecture: ``pervfi-v00``,
    ``pervfi-vb`` or ``training-free``; config: the model's hyperparameters; source: the file loaded
    (None when built in memory); sha256: its hash when the manifest pins one; trained_step: the
    training step recorded by the training CLI's export (None for official weights).
    """

    id: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    sha256: str | None = None
    trained_step: int | None = None


@runtime_checkable
class Engine(Protocol):
    """The contract between the pipeline and a frame generator.

    ``blend(img0, img1, fflow, bflow, t) -> blend``: frames (B,3,H,W) in [0,1], F0->1 on frame 0's grid
    and F1->0 on frame 1's, (B,2,H,W) in pixels, ``t`` (B,) in [0,1]; the result has ``.to(device)``,
    ``.masks`` (finest first, (B,1,H',W')), ``.select(start, stop)`` and ``.nbytes()``.
    ``decode(blend, tau, seed) -> (B,3,H,W)`` in [0,1]. ``stochastic``: whether τ and the seed change
    the output. ``max_pixels``: the most pixels (batch x H x W) one call should see (None: no limit of
    its own). ``size_multiple``: the grid it pads to internally. ``device``/``dtype``: where and in which
    float type ``blend`` computes. ``memory_per_pixel``: bytes of working memory one blend + decode call
    needs per pixel it sees (batch x H x W), float32 (:data:`MEMORY_PER_PIXEL`).
    """

    info: EngineInfo

    @property
    def name(self) -> str: ...

    @property
    def stochastic(self) -> bool: ...

    @property
    def max_pixels(self) -> int | None: ...

    @property
    def size_multiple(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def memory_per_pixel(self) -> int: ...

    def blend(self, img0, img1, fflow, bflow, t): ...

    def decode(self, blend, tau: float = ..., seed: int = ...) -> torch.Tensor: ...


# ------------------------------------------------------------------------------ device and dtype
def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; ``cpu``/``cuda``/``cuda:1``/``mps`` as given."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available to this PyTorch; use --device cpu")
    if device.type == "mps" and not has_mps:
        raise InputError("--device mps: Apple's MPS backend is not available; use --device cpu")
    return device


def pick_dtype(name: str = "auto", device: torch.device | None = None, *, half: torch.dtype | None = None
               ) -> torch.dtype:
    """The compute dtype for a choice of :data:`DTYPES` or ``auto``.

    ``auto`` is float32 (the reference; PerVFI's flow generator and softmax splatting want its accuracy)
    unless the host says a half type is fast on its device (``half``: ComfyUI's model manager does).
    Half precision on a CPU is allowed but slow; it is said so in the log.
    """
    if name == "auto":
        return half or torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype: expected auto or one of {sorted(DTYPES)}, got {name!r}")
    dtype = DTYPES[name]
    if dtype != torch.float32 and device is not None and torch.device(device).type == "cpu":
        logger.warning("%s on a CPU is several times slower than float32 (CPUs have few half-precision "
                       "kernels); use float32 unless memory is the limit", name)
    return dtype


# ------------------------------------------------------------------------------ working memory
# Bytes per pixel of one blend + decode call (batch x H x W), float32: the peak of live tensor bytes
# (allocations minus frees, torch profiler on the CPU, weights and inputs excluded) of model.blend ->
# model.decode on one 256x448 and one 512x896 frame, batch 1, t = 0.5 (bench/memory_per_pixel.py; the
# same figure at both sizes: the engines are convolutional). v00 and vb peak in the shared blend stage
# (fusion at full resolution), hence the same figure. On a GPU the caching allocator and convolution
# workspaces add to it (bench/device_check.py measures the real peak). Half precision needs less; the
# float32 figure is kept (the safe side). ComfyUI's model manager is told bytes/px x the run's largest call.
MEMORY_PER_PIXEL = {"pervfi-v00": 3157, "pervfi-vb": 3157, "pervfi-own": 1031, "training-free": 186}

# Motion estimators: bytes = a * px + b * px**2 on the frames they see (RAFT's all-pairs correlation
# volume is quadratic), fitted through the same two sizes with random weights of each layout
# (bench/memory_per_pixel.py; GMFlow measured linear at these sizes). "gmflow" (single scale) is charged
# the two-scale figure; DIS runs on the CPU (nothing on the device).
ESTIMATOR_MEMORY = {"gmflow-refine": (5672, 0.0), "gmflow": (5672, 0.0), "raft": (1259, 0.00165),
                    "raft-small": (429, 0.0033), "dis": (0, 0.0)}


def memory_per_pixel(architecture: str, config: dict | None = None) -> int:
    """:data:`MEMORY_PER_PIXEL` of a PerVFI network: the official figure for the official widths, the
    project's compact figure for compact widths with the vb decoder; a compact flow decoder is charged
    the official v00 figure (not measured: the safe side)."""
    compact = bool(config) and config.get("fuse_width", 64) < 64
    if compact and architecture == "pervfi-vb":
        return MEMORY_PER_PIXEL["pervfi-own"]
    return MEMORY_PER_PIXEL.get(architecture, max(MEMORY_PER_PIXEL.values()))


def estimator_memory(estimator, height: int, width: int, *, max_pixels: int | None = None) -> int:
    """Bytes one motion estimate on H x W frames needs on the estimator's device (:data:`ESTIMATOR_MEMORY`;
    frames above ``max_pixels`` are estimated downscaled to it). Unknown estimators get the largest figure."""
    px = height * width if not max_pixels else min(height * width, max_pixels)
    a, b = ESTIMATOR_MEMORY.get(getattr(estimator, "name", ""), max(ESTIMATOR_MEMORY.values()))
    return int(a * px + b * px * px)


# ------------------------------------------------------------------------------ catalogs
def model_choices(*, local: bool = True) -> list[str]:
    """The engines a user can pick, in display order: the default, the weight-free engine, the manifest's
    PerVFI checkpoints (ids are stable before and after download), other files in the model folders."""
    from . import weights

    entries = [e for e in weights.default_manifest().entries if e.kind == "pervfi" and e.available]
    known = {e.filename for e in entries}
    files = [n for n in weights.list_local("pervfi") if n.rsplit("/", 1)[-1] not in known] if local else []
    return [DEFAULT, TRAINING_FREE, *(e.id for e in entries), *files]


def estimator_checkpoints(*, local: bool = True) -> list[str]:
    """Motion-estimator weights a user can pick: the estimator's own (``default``), manifest ids, local files."""
    from . import weights

    entries = [e for e in weights.default_manifest().entries if e.kind == "pervfi_flow" and e.available]
    known = {e.filename for e in entries}
    files = [n for n in weights.list_local("pervfi_flow") if n.rsplit("/", 1)[-1] not in known] if local else []
    return [DEFAULT, *(e.id for e in entries), *files]


# ------------------------------------------------------------------------------ loading
def load_model(spec: str | None = None, *, device=None, dtype: torch.dtype = torch.float32, progress=None,
               estimator_option: str = "--flow"):
    """The engine for ``spec``, in eval mode, on ``device``: None / "default" (the embedded default,
    :data:`DEFAULT_MODEL`), "training-free", or a manifest id, alias or checkpoint file (downloaded and
    verified on first use; ``progress(done, total)`` sees the download). Weights written by the
    training CLI carry their configuration (:mod:`pervfi_core.configs`) and rebuild the model they
    came from. A ``dtype`` other than float32 runs blend() in it; the normalizing flow stays float32
    (:meth:`PerVFI.set_blend_dtype`), the deterministic vb decoder follows ``dtype``. Motion-estimator
    weights raise :class:`ArchitectureMismatchError` pointing to ``estimator_option``, where they belong."""
    if spec is None or spec == DEFAULT:
        spec = DEFAULT_MODEL
    if spec == TRAINING_FREE:
        from .training_free import TrainingFreeVFI

        return TrainingFreeVFI().eval().to(device=device)
    from . import weights
    from .configs import META_CONFIG_NAME, META_MODEL_CONFIG, build_model, model_from_metadata

    loaded = weights.load(spec, progress=progress)
    arch = loaded.info.architecture
    if not arch.startswith("pervfi-"):
        raise ArchitectureMismatchError(
            f"{spec}: this checkpoint is a {arch!r} network, not a PerVFI generator (pervfi-v00, pervfi-vb); "
            f"motion-estimator weights belong in {estimator_option}")
    meta = loaded.metadata
    model = model_from_metadata(meta) if META_MODEL_CONFIG in meta else build_model(arch)
    model.load_state_dict(loaded.state_dict)
    entry = weights.default_manifest().get(loaded.info.manifest_id) if loaded.info.manifest_id else None
    step = meta.get("trained_steps")  # written by the training CLI's export
    model.info = EngineInfo(id=loaded.info.manifest_id or str(spec), architecture=arch, config=dict(model.config),
                            source=str(loaded.info.path), sha256=entry.sha256 if entry else None,
                            trained_step=int(step) if step and str(step).isdigit() else None)
    logger.info("loaded %s (PerVFI, %s architecture%s)", model.name, arch,
                f", config {meta[META_CONFIG_NAME]}" if META_CONFIG_NAME in meta else "")
    model = model.to(device=device).eval()
    if dtype != torch.float32:
        model.set_blend_dtype(dtype)
        if not model.stochastic:
            model.to(dtype)
    return model


def load_estimator(spec: str | None = "auto", *, checkpoint: str | None = None, device=None, progress=None):
    """A motion estimator: ``spec`` is a name of :data:`ESTIMATORS` or a checkpoint id/path (its
    architecture picks the estimator). ``checkpoint`` (with a name) replaces that estimator's default
    weights; its architecture must match. ``progress(done, total)`` sees a first-use download."""
    from . import weights
    from .flow import build_estimator, default_registry

    if checkpoint in (None, DEFAULT) and spec in ESTIMATORS:
        default = default_registry().get(spec).default_weights
        # resolve here so that a first-use download reaches the caller's progress bar
        path = weights.resolve(default, progress=progress) if default and progress is not None else None
        return build_estimator(spec, weights=path, device=device)
    source = spec if checkpoint in (None, DEFAULT) else checkpoint
    path = weights.resolve(source, progress=progress)
    arch = weights.detect_architecture(weights.load_state_dict(path))
    if arch not in ESTIMATORS:
        raise ArchitectureMismatchError(f"{source}: this checkpoint is a {arch!r} network, not a motion estimator "
                                        f"({', '.join(ESTIMATORS[2:])}); PerVFI checkpoints go to --model")
    if checkpoint not in (None, DEFAULT) and spec not in (None, "auto", arch):
        raise ArchitectureMismatchError(f"{source} holds {arch} weights, not {spec}; pick a {spec} checkpoint "
                                        f"or the {arch} estimator")
    return build_estimator(arch, weights=path, device=device)
