"""Fixtures for the node tests: real frames, ComfyUI-style node calls, a fake ComfyUI.

Frames come from the pack's example clip (example_workflows/inputs), a real 4-frame excerpt of
Big Buck Bunny, scaled to 96x54 (54 is not a multiple of 8: padding is exercised).
"""
from __future__ import annotations

import dataclasses
import sys
import types
from fractions import Fraction

import pytest
import torch

from testkit.nodes import CLIP


@pytest.fixture(scope="session")
def clip() -> torch.Tensor:
    """IMAGE [4, 54, 96, 3] float32 in [0, 1] (ComfyUI layout)."""
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(cv2.resize(bgr, (96, 54), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        frames.append(torch.from_numpy(rgb).float() / 255)
    cap.release()
    assert len(frames) == 4, f"expected 4 frames in {CLIP.name}, decoded {len(frames)}"
    return torch.stack(frames)


@pytest.fixture
def fake_comfyui(tmp_path, monkeypatch):
    """Minimal stand-ins for comfy.model_management (incl. the model manager), comfy.model_patcher,
    comfy.utils, folder_paths and comfy_api.latest (VIDEO); records calls.

    ``calls.loads``: one ``(patchers, memory_required, force_full_load)`` per ``load_models_gpu`` call,
    which, like ComfyUI's, moves each patcher's model to its load device. ``calls.patchers``: every
    ModelPatcher built. ``calls.bf16`` / ``calls.fp16``: what should_use_bf16 / should_use_fp16 answer.
    """
    from nodes import comfy as rt
    from pervfi_core.weights.fetch import clear_model_dirs

    calls = types.SimpleNamespace(interrupt_checks=0, progress=[], interrupt_after=None, loads=[], patchers=[],
                                  bf16=False, fp16=False)

    class InterruptProcessingException(Exception):
        pass

    mm = types.ModuleType("comfy.model_management")
    mm.InterruptProcessingException = InterruptProcessingException
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.soft_empty_cache = lambda force=False: None
    mm.is_oom = lambda e: "out of memory" in str(e)

    def throw():
        calls.interrupt_checks += 1
        if calls.interrupt_after is not None and calls.interrupt_checks > calls.interrupt_after:
            raise InterruptProcessingException()

    mm.throw_exception_if_processing_interrupted = throw
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.should_use_bf16 = lambda device=None, **kw: calls.bf16
    mm.should_use_fp16 = lambda device=None, **kw: calls.fp16

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        calls.loads.append((list(models), memory_required, force_full_load))
        for patcher in models:
            patcher.model.to(patcher.load_device)
            patcher.model.device = patcher.load_device

    mm.load_models_gpu = load_models_gpu

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            calls.patchers.append(self)

        def current_loaded_device(self):
            return self.model.device

        def model_dtype(self):
            return self.model.get_dtype()

    class CoreModelPatcher(ModelPatcher):  # what main.py rebinds when dynamic VRAM is on
        pass

    patcher_mod = types.ModuleType("comfy.model_patcher")
    patcher_mod.ModelPatcher, patcher_mod.CoreModelPatcher = ModelPatcher, CoreModelPatcher

    @dataclasses.dataclass
    class VideoComponents:
        images: torch.Tensor
        frame_rate: Fraction
        audio: dict | None = None
        metadata: dict | None = None

    class VideoFromComponents:
        def __init__(self, components, bit_depth=8):
            self._components = components

        def get_components(self):
            return self._components

    api = types.ModuleType("comfy_api.latest")
    api.Types = types.SimpleNamespace(VideoComponents=VideoComponents)
    api.InputImpl = types.SimpleNamespace(VideoFromComponents=VideoFromComponents)

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            calls.progress.append((value, total or self.total))

    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path / "models")
    fp.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        paths = fp.folder_names_and_paths.setdefault(name, ([], set()))[0]
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[name][0])
    pkg = types.ModuleType("comfy")
    pkg.model_management, pkg.utils, pkg.model_patcher = mm, utils, patcher_mod
    api_pkg = types.ModuleType("comfy_api")
    api_pkg.latest = api
    for name, mod in {"comfy": pkg, "comfy.model_management": mm, "comfy.utils": utils, "folder_paths": fp,
                      "comfy.model_patcher": patcher_mod, "comfy_api": api_pkg, "comfy_api.latest": api}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    rt._comfy.cache_clear()
    calls.mm, calls.folder_paths, calls.tmp, calls.api = mm, fp, tmp_path, api
    calls.ModelPatcher, calls.CoreModelPatcher = ModelPatcher, CoreModelPatcher
    yield calls
    rt._comfy.cache_clear()
    clear_model_dirs()
