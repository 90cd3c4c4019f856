"""Fixtures for the node tests: real frames, ComfyUI-style node calls, a fake ComfyUI.

Frames come from the pack's example clip (example_workflows/inputs), a real 4-frame excerpt of
Big Buck Bunny, scaled to 96x54 (54 is not a multiple of 8: padding is exercised).
"""
from __future__ import annotations

import sys
import types

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
    """Minimal stand-ins for comfy.model_management, comfy.utils and folder_paths; records calls."""
    from nodes import comfy as rt
    from pervfi_core.weights.fetch import clear_model_dirs

    calls = types.SimpleNamespace(interrupt_checks=0, progress=[], interrupt_after=None)

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
    pkg.model_management, pkg.utils = mm, utils
    for name, mod in {"comfy": pkg, "comfy.model_management": mm, "comfy.utils": utils, "folder_paths": fp}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    rt._comfy.cache_clear()
    calls.mm, calls.folder_paths, calls.tmp = mm, fp, tmp_path
    yield calls
    rt._comfy.cache_clear()
    clear_model_dirs()
