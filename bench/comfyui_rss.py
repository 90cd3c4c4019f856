"""Peak resident memory of a real ComfyUI server while the pack interpolates a clip (IMAGE and VIDEO paths).

    python bench/comfyui_rss.py --comfyui DIR [--python PY] [--cases 300x448x252 600x448x252 120x1920x1080]
                                [--paths image video] [--out bench/results/comfyui-rss.md]

For each case a test clip (moving gradient and shapes, H.264) is written into ``DIR/input``; a fresh server
(``--cpu``, only this pack) runs one graph per path, x2, default engine and motion:
IMAGE: Load Video -> Get Video Components -> PerVFI Interpolate Frames -> Create Video -> Save Video;
VIDEO: Load Video -> PerVFI Interpolate Video -> Save Video.
The server's RSS (with its child processes, e.g. ffmpeg) is sampled every 0.2 s; the table gives the RSS
before the prompt, the peak, and the output's size as float32 frames (what the IMAGE path must hold).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from comfyui_smoke import PACK, stop as stop_server, submit, wait_up  # noqa: E402
from report import write_report  # noqa: E402


def rss_mb(pid: int) -> float:
    """RSS of ``pid`` and its children, MB (from /proc)."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / 2 ** 20


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 25) -> None:
    from pervfi_core.video import ffmpeg_exe

    if path.is_file():
        return
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    yy, xx = np.mgrid[0:height, 0:width]
    for k in range(frames):
        img = np.stack([(xx + 3 * k) % 256, (yy + 2 * k) % 256, (xx + yy) // 4 % 256], -1).astype(np.uint8)
        cx, cy = (40 + 4 * k) % width, height // 2
        img[max(0, cy - 30):cy + 30, max(0, cx - 30):cx + 30] = (250, 40, 40)
        proc.stdin.write(img.tobytes())
    proc.stdin.close()
    proc.wait()


def graph(path: str, clip: str) -> dict:
    from example_workflows.make_workflows import choice

    loaders = {"3": {"class_type": "PerVFILoadModel", "inputs": {"checkpoint": choice("PerVFILoadModel", "checkpoint",
                                                                                         "training-free"), "dtype": "auto"}},
               "4": {"class_type": "PerVFILoadFlowModel", "inputs": {
                   "estimator": choice("PerVFILoadFlowModel", "estimator", "auto"),
                   "checkpoint": choice("PerVFILoadFlowModel", "checkpoint", "default")}}}
    save = {"format": "auto", "codec": "auto"}
    if path == "video":
        return {"1": {"class_type": "LoadVideo", "inputs": {"file": clip}}, **loaders,
                "5": {"class_type": "PerVFIInterpolateVideo", "inputs": {"video": ["1", 0], "model": ["3", 0],
                                                                         "flow_model": ["4", 0], "multiplier": 2,
                                                                         "tau": 0.3, "seed": 0}},
                "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "pervfi/rss", **save}}}
    return {"1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
            "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}, **loaders,
            "5": {"class_type": "PerVFIInterpolate", "inputs": {"frames": ["2", 0], "model": ["3", 0],
                                                                "flow_model": ["4", 0], "multiplier": 2, "tau": 0.3,
                                                                "seed": 0, "source_fps": ["2", 2]}},
            "6": {"class_type": "CreateVideo", "inputs": {"images": ["5", 0], "fps": ["5", 1]}},
            "7": {"class_type": "SaveVideo", "inputs": {"video": ["6", 0], "filename_prefix": "pervfi/rss", **save}}}


def measure(comfy: Path, python: str, port: int, path: str, clip: str, limit: float) -> dict:
    cmd = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
           "--disable-api-nodes", "--disable-all-custom-nodes", "--whitelist-custom-nodes", PACK]
    base = f"http://127.0.0.1:{port}"
    log = open(f"/tmp/comfyui-rss-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=comfy, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_up(base, proc, limit=900)  # a busy machine starts ComfyUI slowly
        time.sleep(2)
        before = rss_mb(proc.pid)
        peak, stop = [before], threading.Event()

        def sample():
            while not stop.is_set():
                peak.append(rss_mb(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = submit(base, graph(path, clip), limit)
        stop.set()
        sampler.join()
        return {"before": before, "peak": max(peak), **result}
    finally:
        stop_server(proc)
        log.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comfyui", type=Path, required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--port", type=int, default=8199)
    p.add_argument("--cases", nargs="*", default=["300x448x252", "600x448x252", "120x1920x1080"])
    p.add_argument("--paths", nargs="*", default=["image", "video"])
    p.add_argument("--limit", type=float, default=1800, help="seconds per run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "comfyui-rss.md")
    args = p.parse_args(argv)
    comfy = args.comfyui.resolve()
    rows = []
    for case in args.cases:
        n, w, h = (int(v) for v in case.split("x"))
        clip = f"pervfi_rss_{n}_{w}x{h}.mp4"
        make_clip(comfy / "input" / clip, n, w, h)
        out_gb = (2 * n - 1) * w * h * 3 * 4 / 2 ** 30
        for path in args.paths:
            r = measure(comfy, args.python, args.port, path, clip, args.limit)
            row = (f"| {n} | {w}x{h} | {path.upper()} | {r['status']} | {r['seconds']:.0f} | {r['before']:.0f} | "
                   f"{r['peak']:.0f} | {r['peak'] - r['before']:.0f} | {out_gb:.2f} |")
            rows.append(row)
            print(row, flush=True)
    lines = ["| frames in | size | path | result | seconds | RSS before (MB) | peak RSS (MB) | growth (MB) | "
             "output as float32 (GB) |", "|---|---|---|---|---|---|---|---|---|", *rows]
    write_report(args.out, ["## Peak server RSS in ComfyUI (x2, default engine, `python bench/comfyui_rss.py`)", "", *lines])
    return 0


if __name__ == "__main__":
    sys.exit(main())
