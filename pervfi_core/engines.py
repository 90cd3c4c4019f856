"""Loading an engine or a motion estimator by name, manifest id or file, over the registries.

``load_engine(None)`` / ``"default"`` is :data:`DEFAULT_ENGINE`. Otherwise the name is a registered engine
(its default weights are fetched on first use), a manifest id, or a checkpoint file: the architecture is
read from the state dict (:func:`pervfi_core.registry.detect`), the weights are verified and loaded
strictly, and the spec builds the engine. Why the default is what it is: BENCHMARKS.md.
:func:`engine_choices` / :func:`estimator_choices` are what the CLI's help and the loader nodes list;
:data:`MEMORY_PER_PIXEL` and :func:`estimator_memory` are read off the specs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from . import weights
from .devices import DTYPES, pick_device, pick_dtype  # noqa: F401  (re-exported: the hosts' one import)
from .engine import EngineInfo
from .errors import ArchitectureMismatchError, InputError, PerVFIError, WeightsError
from .flow.dis import import_cv2
from .flow.registry import AUTO, CPU_MAX_SIDE, ESTIMATORS, build_estimator
from .registry import ENGINES, detect

logger = logging.getLogger(__name__)

DEFAULT = "default"
#: The default engine on every device (BENCHMARKS.md, "Choosing the default"): pervfi-rife measured best of the
#: product's engines on the real footage of ../shared/validation (bench/results/validation.md). Its RIFE trunk is
#: fetched on first use; when it cannot be, the default says so in one line and falls back to FALLBACK_ENGINE.
DEFAULT_ENGINE = "pervfi-rife"
#: The best engine without weights.
FALLBACK_ENGINE = "training-free"

#: Working bytes per pixel of each registered engine at its official/default width (float32, measured).
MEMORY_PER_PIXEL = {s.name: s.memory_per_pixel({}) for s in ENGINES}
#: Motion estimators: bytes = a * px + b * px**2 on the frames they see.
ESTIMATOR_MEMORY = {s.name: s.memory for s in ESTIMATORS}


def estimator_memory(estimator, height: int, width: int, *, max_pixels: int | None = None) -> int:
    """Bytes one motion estimate on H x W frames needs on the estimator's device (frames above ``max_pixels``
    are estimated downscaled to it). Unknown estimators get the largest figure."""
    px = height * width if not max_pixels else min(height * width, max_pixels)
    a, b = ESTIMATOR_MEMORY.get(getattr(estimator, "name", ""), max(ESTIMATOR_MEMORY.values()))
    return int(a * px + b * px * px)


# ------------------------------------------------------------------------------ catalogs
def engine_choices(*, local: bool = True) -> list[str]:
    """The engines a user can pick, in display order: the default, the engines without weights, the
    manifest's PerVFI checkpoints (ids are stable before and after download), other files in the model folders."""
    entries = [e for e in weights.default_manifest().entries if e.kind == "pervfi" and e.available]
    known = {e.filename for e in entries}
    files = [n for n in weights.list_local("pervfi") if n.rsplit("/", 1)[-1] not in known] if local else []
    free = [s.name for s in ENGINES if s.architecture is None]
    return [DEFAULT, *free, *(e.id for e in entries), *files]


def estimator_choices() -> list[str]:
    """The motion estimators a user can pick: ``auto`` then every registered one."""
    return [AUTO, *ESTIMATORS.names()]


def estimator_checkpoints(*, local: bool = True) -> list[str]:
    """Motion-estimator weights a user can pick: the estimator's own (``default``), manifest ids, local files."""
    entries = [e for e in weights.default_manifest().entries if e.kind == "pervfi_flow" and e.available]
    known = {e.filename for e in entries}
    files = [n for n in weights.list_local("pervfi_flow") if n.rsplit("/", 1)[-1] not in known] if local else []
    return [DEFAULT, *(e.id for e in entries), *files]


def checkpoint_entry(name: str):
    """The manifest entry of a checkpoint id (architecture, size, sources), None for an engine without weights,
    a file or an unknown name: what a host shows beside a choice."""
    return weights.default_manifest().get(name)


def missing_checkpoint(name: str | None):
    """The manifest entry of ``name`` when loading it will download it first (not on disk yet), else None."""
    entry = checkpoint_entry(name) if name else None
    return entry if entry is not None and weights.find_local(entry, weights.default_manifest()) is None else None


# ------------------------------------------------------------------------------ loading
def load_engine(name: str | None = None, *, device=None, dtype: torch.dtype = torch.float32, progress=None,
                estimator_option: str = "--flow"):
    """The engine for ``name``, in eval mode, on ``device``: None / "default" (:data:`DEFAULT_ENGINE`), a
    registered engine name, or a manifest id, alias or checkpoint file (downloaded and verified on first use;
    ``progress(done, total)`` sees the download). Weights written by the training CLI carry their
    configuration (:mod:`pervfi_core.configs`). A ``dtype`` other than float32 is applied where the engine
    allows it (``set_dtype``). Motion-estimator weights raise :class:`ArchitectureMismatchError` pointing
    to ``estimator_option``, where they belong."""
    if name in (None, DEFAULT) and DEFAULT_ENGINE != FALLBACK_ENGINE:
        try:
            return load_engine(DEFAULT_ENGINE, device=device, dtype=dtype, progress=progress,
                               estimator_option=estimator_option)
        except WeightsError as err:  # e.g. its first-use fetch failed: say so once, run the best engine without weights
            logger.warning("the default engine %s could not load its weights (%s); using %s instead",
                           DEFAULT_ENGINE, err, FALLBACK_ENGINE)
            name = FALLBACK_ENGINE
    name = DEFAULT_ENGINE if name in (None, DEFAULT) else name
    if name in ENGINES and ENGINES.get(name).architecture is None:
        engine = ENGINES.get(name).build()
    else:
        source = ENGINES.get(name).default_weights if name in ENGINES else name
        loaded = weights.load(source, progress=progress)
        arch = loaded.info.architecture
        if arch not in ENGINES:
            raise ArchitectureMismatchError(
                f"{name}: this checkpoint is a {arch!r} network, not an engine ({', '.join(ENGINES.names())}); "
                f"motion-estimator weights belong in {estimator_option}")
        spec = ENGINES.get(arch)
        extra = {} if spec.estimator is None else {"estimator": load_estimator(
            spec.estimator, checkpoint=_users_copy(spec.estimator), progress=progress)}
        engine = spec.build(loaded.state_dict, loaded.metadata, **extra)
        entry = weights.default_manifest().get(loaded.info.manifest_id) if loaded.info.manifest_id else None
        step = loaded.metadata.get("trained_steps")  # written by the training CLI's export
        engine.info = EngineInfo(id=loaded.info.manifest_id or str(name), architecture=arch,
                                 config=dict(engine.info.config), source=str(loaded.info.path),
                                 sha256=entry.sha256 if entry else None,
                                 trained_step=int(step) if step and str(step).isdigit() else None)
        logger.info("loaded %s (%s)", engine.name, arch)
    engine = engine.to(device=device).eval()
    if dtype != torch.float32 and hasattr(engine, "set_dtype"):
        engine.set_dtype(dtype)
    return engine


#: Published estimator weights that hosts keep under their own names (ComfyUI's models/frame_interpolation is a
#: pervfi_flow folder there), newest first: an engine built on that estimator uses them before fetching.
USER_COPIES = {"rife": ("rife426.pth", "rife425.pth")}


def _users_copy(name: str) -> str | None:
    local = {n.rsplit("/", 1)[-1]: n for n in weights.list_local("pervfi_flow")}
    return next((local[f] for f in USER_COPIES.get(name, ()) if f in local), None)


def _auto(device: torch.device) -> tuple[str, int | None]:
    """``auto``: GMFlow-refine on a GPU; DIS on a CPU when OpenCV imports, else GMFlow-refine at reduced size."""
    if device.type != "cpu":
        return "gmflow-refine", None
    try:
        import_cv2()
        return "dis", None
    except PerVFIError as err:  # OpenCV missing or broken: fall back to the network, smaller
        logger.warning("auto: DIS unavailable (%s); using gmflow-refine at max side %d px", err, CPU_MAX_SIDE)
        return "gmflow-refine", CPU_MAX_SIDE


def load_estimator(name: str | None = AUTO, *, checkpoint=None, device=None, progress=None):
    """A motion estimator: ``name`` is ``auto``, a registered estimator or a checkpoint id/path (its architecture
    picks the estimator). ``checkpoint`` (with a name) replaces that estimator's default weights: a manifest
    id, a file or a state dict; its architecture must match, and a weight-free estimator takes none.
    ``progress(done, total)`` sees a first-use download."""
    device = torch.device(device if device is not None else "cpu")
    name = AUTO if name is None else name
    checkpoint = None if isinstance(checkpoint, str) and checkpoint == DEFAULT else checkpoint
    max_side = None
    if name == AUTO:
        name, max_side = _auto(device)
    if name in ESTIMATORS:
        spec = ESTIMATORS.get(name)
        if not spec.needs_weights:
            if checkpoint is not None:
                raise InputError(f"the {name!r} motion estimator takes no weights; leave its checkpoint at "
                                 f"'default' or pick an estimator that has weights")
            return build_estimator(name, device=device)
        source = spec.default_weights if checkpoint is None else checkpoint
    elif checkpoint is not None or not (Path(name).expanduser().is_file() or weights.default_manifest().get(name)):
        raise InputError(f"unknown motion estimator {name!r}; valid names: {', '.join(estimator_choices())} "
                         "(or a checkpoint file or manifest id)")
    else:
        spec, source = None, name
    sd = dict(source) if isinstance(source, dict) else weights.load(source, progress=progress).state_dict
    arch = detect(sd)[0]
    if arch not in ESTIMATORS:
        raise ArchitectureMismatchError(f"{source if isinstance(source, str) else 'checkpoint'}: this checkpoint is a "
                                        f"{arch!r} network, not a motion estimator ({', '.join(ESTIMATORS.names())}); "
                                        "engine checkpoints go to --model")
    if spec is not None and spec.name != arch:
        raise ArchitectureMismatchError(f"{source if isinstance(source, str) else 'the checkpoint'} holds {arch} "
                                        f"weights, not {spec.name}; pick a {spec.name} checkpoint or the {arch} estimator")
    est = build_estimator(arch, weights=sd, device=device)
    if max_side is not None:
        est.max_side = max_side
    return est
