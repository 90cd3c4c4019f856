"""Synthetic frame triplets with exact ground truth, rendered from real photographs.

A background photo moves under a smooth camera motion (translation, rotation and zoom that grow
linearly with time) and an elliptical foreground patch cut from another photo moves on top of it
with its own translation and spin, occluding and revealing background. Every frame, the in-between
frame at time ``t`` and the true motion are rendered from the same continuous model, so the ground
truth is exact (up to the bilinear resampling of the photos). Used for training (paper §4.1 trains
on real triplets; this is the offline substitute) and for measuring motion-estimator accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Motion:
    """A similarity motion ``p(s) = c + R(rot·s)·zoom**s·(p0 - c) + shift·s`` in pixels, s in [0, 1]."""

    shift: tuple[float, float]
    rot: float  # radians at s = 1
    zoom: float  # scale factor at s = 1

    def matrix(self, s: float, centre: tuple[float, float]) -> torch.Tensor:
        """3×3 homogeneous matrix mapping positions at time 0 to positions at time ``s``."""
        a, k = self.rot * s, self.zoom**s
        cx, cy = centre
        c, si = math.cos(a) * k, math.sin(a) * k
        tx = cx - c * cx + si * cy + self.shift[0] * s
        ty = cy - si * cx - c * cy + self.shift[1] * s
        return torch.tensor([[c, -si, tx], [si, c, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _sample(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear sample ``img`` (C, H, W) at pixel ``coords`` (h, w, 2) (x, y), border padding."""
    h, w = img.shape[-2:]
    grid = torch.stack([coords[..., 0] / (w - 1) * 2 - 1, coords[..., 1] / (h - 1) * 2 - 1], dim=-1)
    return F.grid_sample(img[None], grid[None].float(), mode="bilinear", padding_mode="border", align_corners=True)[0]


def _pixel_grid(h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (h, w, 3) homogeneous


def _apply(m: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return (grid @ m.T)[..., :2]


@dataclass
class Scene:
    """One synthetic scene: a background photo and a foreground patch with their motions."""

    background: torch.Tensor  # (3, Hb, Wb) in [0, 1]
    foreground: torch.Tensor  # (3, Hf, Wf) in [0, 1]
    origin: tuple[float, float]  # top-left of the crop in background pixels at s = 0
    bg_motion: Motion
    fg_motion: Motion
    fg_centre: tuple[float, float]  # object centre in output pixels at s = 0
    fg_radii: tuple[float, float]
    size: tuple[int, int]  # (H, W) of the rendered frames

    def _bg_map(self, s: float) -> torch.Tensor:
        """Output pixel -> background-photo pixel at time ``s`` (the camera moves, so invert)."""
        h, w = self.size
        m = self.bg_motion.matrix(s, (w / 2, h / 2))
        shift = torch.tensor([[1, 0, self.origin[0]], [0, 1, self.origin[1]], [0, 0, 1]], dtype=torch.float64)
        return shift @ torch.linalg.inv(m)

    def _fg_map(self, s: float) -> torch.Tensor:
        """Output pixel -> object-local pixel (object centre at the patch centre) at time ``s``."""
        m = self.fg_motion.matrix(s, self.fg_centre)
        hf, wf = self.foreground.shape[-2:]
        to_patch = torch.tensor(
            [[1, 0, wf / 2 - self.fg_centre[0]], [0, 1, hf / 2 - self.fg_centre[1]], [0, 0, 1]], dtype=torch.float64
        )
        return to_patch @ torch.linalg.inv(m)

    def _alpha(self, local: torch.Tensor) -> torch.Tensor:
        hf, wf = self.foreground.shape[-2:]
        dx = (local[..., 0] - wf / 2) / self.fg_radii[0]
        dy = (local[..., 1] - hf / 2) / self.fg_radii[1]
        r = torch.sqrt(dx**2 + dy**2)
        return (1.0 - r).mul(min(self.fg_radii) / 1.5).clamp(0, 1).float()  # ~1.5 px antialiased edge

    def render(self, s: float) -> torch.Tensor:
        """The frame at time ``s`` in [0, 1]: (3, H, W), values in [0, 1]."""
        grid = _pixel_grid(*self.size)
        bg = _sample(self.background, _apply(self._bg_map(s), grid))
        local = _apply(self._fg_map(s), grid)
        fg = _sample(self.foreground, local)
        alpha = self._alpha(local)
        return (alpha * fg + (1 - alpha) * bg).clamp(0, 1)

    def flow(self, s0: float, s1: float) -> torch.Tensor:
        """True motion of every pixel of frame ``s0`` to frame ``s1``: (2, H, W), px, channel 0 = x.

        A pixel belongs to the foreground where its alpha at ``s0`` is at least 0.5.
        """
        grid = _pixel_grid(*self.size)
        bg_to = _apply(torch.linalg.inv(self._bg_map(s1)) @ self._bg_map(s0), grid)
        fg_to = _apply(torch.linalg.inv(self._fg_map(s1)) @ self._fg_map(s0), grid)
        is_fg = (self._alpha(_apply(self._fg_map(s0), grid)) >= 0.5)[..., None]
        target = torch.where(is_fg, fg_to, bg_to)
        return (target - grid[..., :2]).permute(2, 0, 1).float()


def random_scene(
    background: torch.Tensor,
    foreground: torch.Tensor,
    *,
    size: tuple[int, int] = (256, 256),
    max_shift: float = 24.0,
    generator: torch.Generator | None = None,
) -> Scene:
    """Draw a scene: camera shift up to ``max_shift`` px, ±3° rotation, ±4 % zoom, and a foreground
    ellipse with semi-axes of 8–18 % of the frame moving up to ``1.5·max_shift`` px with ±10° spin."""
    g = generator

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    h, w = size
    hb, wb = background.shape[-2:]
    if hb < h + 2 * max_shift or wb < w + 2 * max_shift:
        background = F.interpolate(background[None], scale_factor=max((h + 2 * max_shift) / hb, (w + 2 * max_shift) / wb) * 1.05,
                                   mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)
        hb, wb = background.shape[-2:]
    origin = (u(max_shift, wb - w - max_shift), u(max_shift, hb - h - max_shift))
    polar = lambda r: (r * math.cos(a := u(0, 2 * math.pi)), r * math.sin(a))  # noqa: E731
    bg_motion = Motion(shift=polar(u(0, max_shift)), rot=math.radians(u(-3, 3)), zoom=u(0.96, 1.04))
    radii = (u(0.08, 0.18) * w, u(0.08, 0.18) * h)
    fg_motion = Motion(shift=polar(u(0, 1.5 * max_shift)), rot=math.radians(u(-10, 10)), zoom=u(0.95, 1.05))
    hf, wf = foreground.shape[-2:]
    need = 2 * max(radii) + 4
    if min(hf, wf) < need:
        foreground = F.interpolate(foreground[None], scale_factor=need / min(hf, wf) * 1.05, mode="bilinear",
                                   align_corners=False)[0].clamp(0, 1)
        hf, wf = foreground.shape[-2:]
    top, left = int(u(0, hf - need)), int(u(0, wf - need))
    patch = foreground[:, top: top + int(need), left: left + int(need)]
    centre = (u(0.25 * w, 0.75 * w), u(0.25 * h, 0.75 * h))
    return Scene(background, patch, origin, bg_motion, fg_motion, centre, radii, size)


def synthetic_triplet(scene: Scene, t: float = 0.5) -> dict[str, torch.Tensor]:
    """``{"img0", "gt", "img1"}`` (3, H, W) frames at times 0, ``t``, 1, the exact flows
    ``"flow01"``, ``"flow10"`` (2, H, W) px, and ``"t"``."""
    return {
        "img0": scene.render(0.0),
        "gt": scene.render(t),
        "img1": scene.render(1.0),
        "flow01": scene.flow(0.0, 1.0),
        "flow10": scene.flow(1.0, 0.0),
        "t": torch.tensor(t, dtype=torch.float32),
    }
