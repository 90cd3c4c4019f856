"""Fakes and small clips for the pipeline, CLI and node tests.

``ZeroFlow`` and ``LinearBlend`` stand in for a motion estimator and a blending engine where a test
checks the pipeline's structure (ordering, counts, memory, cuts) rather than image quality:
LinearBlend's new frame at t is exactly (1-t)·I0 + t·I1, so where each output came from can be read
off its values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pervfi_core.engine import EngineInfo
from pervfi_core.model import Blend
from pervfi_core.ops.padding import padding_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "bigbuckbunny_448x252.mp4"


class ZeroFlow:
    name = "zero"

    def __init__(self):
        self.calls = 0

    def __call__(self, img0, img1):
        self.calls += 1
        z = torch.zeros_like(img0[:, :2])
        return z, z.clone()


class LinearBlend:
    """An :class:`~pervfi_core.engines.Engine`: blend -> (1-t)·I0 + t·I1. ``fail_above``: raise an
    out-of-memory error for batches larger than that; ``fail_pixels_above``: for larger crops."""

    stochastic = False
    needs_motion = True
    name = "linear"
    info = EngineInfo(id="linear", architecture="linear")
    size_multiple = 1
    device = torch.device("cpu")
    dtype = torch.float32
    memory_per_pixel = 64  # what a host's memory manager would be told per pixel (pipeline/memory.py)

    def __init__(self, fail_above: int | None = None, fail_pixels_above: int | None = None):
        self.fail_above, self.fail_pixels_above = fail_above, fail_pixels_above
        self.batches: list[int] = []
        self.max_pixels: int | None = None  # a test may give it a per-call budget of its own

    def blend(self, img0, img1, fflow, bflow, t):
        b = img0.shape[0]
        if self.fail_above is not None and b > self.fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        if self.fail_pixels_above is not None and img0.shape[-1] * img0.shape[-2] > self.fail_pixels_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate (fake)")
        self.batches.append(b)
        t = torch.as_tensor(t, dtype=img0.dtype).reshape(-1, 1, 1, 1)
        size = tuple(img0.shape[-2:])
        return Blend([(1 - t) * img0 + t * img1], [torch.zeros_like(img0[:, :1])], size, padding_for(size, 1))

    def decode(self, b, tau=0.3, seed=0, z=None):
        return b.conds[0]


class SeededNoise(LinearBlend):
    """A stochastic :class:`LinearBlend`: decode adds τ-scaled noise drawn from ``seed`` (the pipeline's
    seeds per output frame become visible in the values)."""

    stochastic = True
    name = "seeded-noise"
    info = EngineInfo(id="seeded-noise", architecture="linear")

    def decode(self, b, tau=0.3, seed=0, z=None):
        y = b.conds[0]
        noise = torch.rand(y.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
        return (y + tau * (noise.to(y) - 0.5)).clamp(0, 1)


class OwnMotion(LinearBlend):
    """An engine that finds its own motion (like one built on RIFE's IFNet): ``needs_motion`` False; its
    blend insists on None flows, so a pipeline that estimated motion for it fails loudly."""

    needs_motion = False
    name = "own-motion"
    info = EngineInfo(id="own-motion", architecture="linear")

    def blend(self, img0, img1, fflow, bflow, t):
        assert fflow is None and bflow is None, "an engine with its own motion was given flows"
        return super().blend(img0, img1, fflow, bflow, t)


class NoEstimator:
    """A motion estimator that must never run (for an engine that finds its own motion)."""

    name = "never"

    def __call__(self, img0, img1):
        raise AssertionError("the estimator ran for an engine that finds its own motion")


def textured_frames(count: int = 6) -> list[np.ndarray]:
    """``count`` 24x40 frames (uint8 HWC) with distinct constant colours plus texture (every frame differs)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 60, size=(24, 40, 3))
    return [np.clip(base + 30 * k, 0, 255).astype(np.uint8) for k in range(count)]


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(path: Path, *, frames: int = 6, size: str = "64x48", fps: int = 25, audio: bool = False) -> Path:
    """A tiny test-pattern video (and a 440 Hz sine track) made with the ffmpeg binary."""
    import subprocess

    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={size}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-shortest"]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv444p", "-crf", "0", str(path)]
    subprocess.run(cmd, check=True)
    return path


def _ffmpeg_make(path: Path, *args: str) -> Path:
    import subprocess

    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(path)], check=True)
    return path


# Inputs that carry what a pipe of 8-bit RGB does not (timing, alpha, depth, aspect): each is a few tiny
# frames made with the bundled ffmpeg, one maker per case of the corpus (tests/test_bad_inputs.py).
def bframe_avi(path: Path, *, seconds: float = 2, fps: int = 25, size: str = "32x24") -> Path:
    """MPEG-4 part 2 with B-frames in AVI (as Xvid files are): only the decode times are stored."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}", "-f", "lavfi",
                        "-i", f"sine=duration={seconds}", "-t", str(seconds), "-c:v", "mpeg4", "-bf", "2",
                        "-c:a", "mp3")


def dropped_frames_avi(path: Path, *, frames: int = 48, fps: int = 25) -> Path:
    """A constant-rate AVI of noise (every picture differs) with two dropped frames: a gap after frame 10."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", f"color=c=gray:s=32x24:r={fps},noise=alls=100:allf=t+u",
                        "-frames:v", str(frames),
                        "-vf", "setpts='N+2*gte(N\\,10)'", "-fps_mode", "passthrough", "-c:v", "mpeg4",
                        "-enc_time_base", f"1/{fps}")


def alpha_mov(path: Path, *, frames: int = 4) -> Path:
    """QuickTime Animation (qtrle) with an alpha channel."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", str(frames),
                        "-vf", "format=argb", "-c:v", "qtrle")


def png_in_mov(path: Path, *, frames: int = 4) -> Path:
    """PNG frames with alpha in a QuickTime file (as screen recorders and motion-graphics tools write)."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", str(frames),
                        "-vf", "format=rgba", "-c:v", "png")


def prores_mov(path: Path, *, frames: int = 4, alpha: bool = False) -> Path:
    """ProRes 422 HQ (yuv422p10le), or ProRes 4444 with alpha (which ffmpeg decodes as yuva444p12le)."""
    profile, pix_fmt = ("4444", "yuva444p10le") if alpha else ("3", "yuv422p10le")
    return _ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", str(frames),
                        "-vf", f"format={pix_fmt}", "-c:v", "prores_ks", "-profile:v", profile)


def hevc_10_bit_mkv(path: Path, *, frames: int = 4) -> Path:
    """10-bit HEVC (Main 10, yuv420p10le), as phones and cameras record HDR."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", str(frames),
                        "-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le")


def moving_square_rgba(folder: Path, *, frames: int = 3, step: int = 12, side: int = 16) -> Path:
    """RGBA PNG frames 64x48: a textured opaque square moving ``step`` pixels right per frame over a fully
    transparent background (the square's left edge at 8 + k * step, its top at 16)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    texture = np.random.default_rng(5).integers(40, 256, (side, side, 3), dtype=np.uint8)
    for k in range(frames):
        rgba = np.zeros((48, 64, 4), np.uint8)
        x = 8 + k * step
        rgba[16:16 + side, x:x + side, :3] = texture
        rgba[16:16 + side, x:x + side, 3] = 255
        cv2.imwrite(str(folder / f"f{k:03d}.png"), rgba[:, :, [2, 1, 0, 3]])
    return folder


def ten_bit_mkv(path: Path, *, frames: int = 4) -> Path:
    """10-bit 4:2:0 H.264 (yuv420p10le)."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", str(frames),
                        "-c:v", "libx264", "-pix_fmt", "yuv420p10le")


def anamorphic_mp4(path: Path, *, frames: int = 4, sar: str = "16/9") -> Path:
    """Square-coded frames with a non-square pixel aspect ratio (SAR)."""
    return _ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=32x32:rate=25", "-frames:v", str(frames),
                        "-vf", f"setsar={sar}", "-c:v", "libx264", "-pix_fmt", "yuv444p")
