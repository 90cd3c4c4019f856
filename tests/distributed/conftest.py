"""A local Ray cluster for the session (127.0.0.1 only, 2 CPUs), small clips, and reference outputs.

Tests that need Ray skip, with the install command, where it is absent. The reference is the
single-process run (``interpolate_file``) that every distributed output must equal frame for frame.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pervfi_core.distributed.ray_runner import Cluster, LOOPBACK_ENV
from testkit.clips import SAMPLE
from testkit.frames import ENGINE

NO_RAY = 'Ray is not installed (pip install "ray[default]"): distributed runs untested'
# Before any test imports Ray (it reads this once): every cluster of the session listens on 127.0.0.1 only.
os.environ.setdefault(LOOPBACK_ENV, "0")


@pytest.fixture(scope="session")
def cluster():
    ray = pytest.importorskip("ray", reason=NO_RAY)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        yield Cluster(ray, owned=False, address=ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def cut_clip(tmp_path_factory) -> Path:
    """40 frames: the sample's first 20, then 20 of its colour negative (a scene cut between 19 and 20)."""
    out = tmp_path_factory.mktemp("clips") / "cut.mp4"
    graph = ("[0:v]trim=end_frame=20,setpts=PTS-STARTPTS[a];[0:v]trim=start_frame=20,negate,setpts=PTS-STARTPTS[b];"
             "[a][b]concat=n=2:v=1[v]")
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-filter_complex", graph,
                    "-map", "[v]", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Path:
    """The sample three times (120 frames, keyframes every 25): segments after the first seek."""
    out = tmp_path_factory.mktemp("clips") / "long.mp4"
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "2", "-i", str(SAMPLE),
                    "-c:v", "libx264", "-g", "25", "-bf", "2", "-an", str(out)], check=True)
    return out


@pytest.fixture
def one_thread():
    """torch on one thread for the test: on 2 shared cores one thread is far faster than two contending ones."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """``reference(clip, multiplier=2, fps=None)`` -> PNG folder of the single-process run (cached)."""
    import torch

    from pervfi_core.engines import load_estimator, load_engine
    from pervfi_core.pipeline.loop import interpolate_file

    cache: dict = {}
    root = tmp_path_factory.mktemp("reference")

    def make(clip: Path, multiplier: int | None = 2, fps: float | None = None) -> Path:
        key = (str(clip), multiplier, fps)
        if key not in cache:
            out = root / f"{Path(clip).stem}-{multiplier}-{fps}"
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # 2 cores shared: one thread is far faster than two contending ones
            try:
                interpolate_file(clip, out, load_engine(ENGINE), load_estimator("auto"), multiplier=multiplier, fps=fps)
            finally:
                torch.set_num_threads(threads)
            cache[key] = out
        return cache[key]

    return make
