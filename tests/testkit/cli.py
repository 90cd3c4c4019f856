"""Running the command line in tests: in-process (fast) or as a subprocess (signals, resource limits),
inputs that are broken on purpose, and the check that a failed run left nothing behind."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from .clips import ffmpeg

ROOT = Path(__file__).resolve().parents[2]


def run_main(capsys, argv: list[str]) -> tuple[int, str]:
    """``pervfi_core.cli.main(argv)`` -> (exit status, stderr); argparse's usage errors give status 2 too."""
    from pervfi_core.cli import main

    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: a value that is not even a number
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


def cli_command(*argv) -> list[str]:
    return [sys.executable, "-m", "pervfi_core", *map(str, argv)]


def cli_env(**extra: str) -> dict[str, str]:
    """The test session's environment (PERVFI_HOME already points at the test cache), run from the checkout."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def leftovers(folder: Path) -> list[str]:
    """Every name under ``folder`` (hidden temporary files included), relative to it, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*"))


def output_layout(path: Path) -> str:
    """``"<codec> <pix_fmt>"`` of an output, as ffprobe names them: a video file's first video stream
    (``"prores yuva444p12le"``), or a frame folder's first PNG (``"png rgba64le"``)."""
    import re

    path = Path(path)
    if path.is_dir():
        from pervfi_core.video import FrameFolderReader

        return f"png {FrameFolderReader(path).info.pixel_format}"
    text = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    m = re.search(r"Video: (\w+)[^,]*, (\w+)", text)
    return f"{m.group(1)} {m.group(2)}" if m else text


def ffmpeg_run(*args: str) -> None:
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


def noise_clip(path: Path, *, frames: int, size: int, fps: int = 25) -> Path:
    """Random noise, losslessly coded: its interpolated output hardly compresses (fills a disk fast)."""
    ffmpeg_run("-f", "lavfi", "-i", f"color=c=gray:s={size}x{size}:r={fps},noise=alls=100:allf=t+u",
               "-frames:v", str(frames), "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv444p", str(path))
    return path


def write_png(path: Path, array: np.ndarray) -> Path:
    """PNG of an (H,W), (H,W,3) or (H,W,4) array, uint8 or uint16, channels in RGB(A) order."""
    import cv2

    if array.ndim == 3:
        array = array[:, :, [2, 1, 0, 3][:array.shape[2]]]  # RGB(A) -> BGR(A) for OpenCV
    if not cv2.imwrite(str(path), np.ascontiguousarray(array)):
        raise OSError(f"could not write {path}")
    return path


@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    """A tmpfs mounted at ``path`` with ``options`` (needs root with mount rights); yields None where it fails."""
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                                       capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def readonly_folder(path: Path):
    """An empty folder nobody may write to: permission bits, or a read-only tmpfs for root (whom
    permission bits do not stop). Yields None where neither is possible."""
    path.mkdir(parents=True, exist_ok=True)
    if os.name != "posix":
        yield None
        return
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with _tmpfs(path, "ro,size=64k") as mounted:
        yield mounted


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m"):
    """A tiny writable tmpfs (root with mount rights only); yields None elsewhere."""
    path.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0:
        yield None
        return
    with _tmpfs(path, f"size={size}") as mounted:
        yield mounted


@contextlib.contextmanager
def lock_held_elsewhere(output: Path):
    """Another process holding the write lock of ``output`` (as a live run would) until the block ends."""
    code = ("import sys; from pervfi_core.video import OutputLock; lock = OutputLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); sys.stdin.read(); lock.release()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(output)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=cli_env(), text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line contains ``text`` (Linux: /proc), this one excepted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found
