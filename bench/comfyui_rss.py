"""Peak resident memory of a real ComfyUI server while the pack interpolates a clip (IMAGE and VIDEO paths).

    python bench/comfyui_rss.py --comfyui DIR [--python PY] [--cases 300x448x252 600x448x252 120x1920x1080]
                                [--paths image video] [--source VIDEO] [--phases] [--samples DIR]
                                [--out bench/results/comfyui-rss.md]

For each case a test clip (H.264: a moving gradient and square, or ``--source`` scaled and played forwards
and backwards) is written into ``DIR/input``; a fresh server (``--cpu``, only this pack) runs one graph per
path, x2, the training-free engine (memory, not quality, is measured; it needs no weights) and auto
motion (DIS on a CPU):
IMAGE: Load Video -> Get Video Components -> PerVFI Interpolate Frames -> Create Video -> Save Video;
VIDEO: Load Video -> PerVFI Interpolate Video -> Save Video.
The server's RSS (with its child processes, e.g. ffmpeg) is sampled every 0.2 s; the table gives the RSS
before the prompt (the idle server: the baseline), the peak, the RSS once the prompt is done (what ComfyUI's
cache of the outputs keeps), and the output's size as float32 frames (what the IMAGE path must hold). Per node
(the server's websocket says which node runs when) the RSS when it starts, its peak and the RSS when it ends
separate what each core node holds from what the pack's node holds (``--phases``: one line per node).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
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


class Timeline(threading.Thread):
    """The nodes a prompt runs, in order, with the time each starts (the server's ``executing`` messages)."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.url = base.replace("http", "ws", 1) + "/ws?clientId=" + (client := uuid.uuid4().hex)
        self.client_id, self.events, self.ready, self.done = client, [], threading.Event(), threading.Event()

    def run(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            self.ready.set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                doc = json.loads(msg.data)
                if doc.get("type") == "executing":
                    node = doc["data"].get("node")
                    self.events.append((time.time(), node))
                    if node is None:
                        self.done.set()
                        return


def phases(events: list, samples: list, prompt: dict) -> list[tuple[str, float, float, float, float]]:
    """(node, RSS at its start, its lowest, its peak, RSS at its end) in MB for each node run, from the timeline
    and the (time, RSS) samples. The lowest shows what a node let go of first (the pack's nodes give the
    heap's free pages back before they run: pervfi_core/allocator.py)."""
    out = []
    for (t0, node), (t1, _) in zip(events, events[1:]):
        at = lambda t: min(samples, key=lambda s: abs(s[0] - t))[1]  # noqa: E731
        around = [at(t0), at(t1), *(r for t, r in samples if t0 <= t <= t1)]
        out.append((f"{node} {prompt[node]['class_type']}", at(t0), min(around), max(around), at(t1)))
    return out


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 25, source: Path | None = None) -> None:
    """A test clip of ``frames`` frames: from ``source`` (scaled to the size, played forwards and backwards
    until long enough: real motion, no jump), else synthetic (a moving gradient and square)."""
    from pervfi_core.video import ffmpeg_exe

    if path.is_file():
        return
    if source is not None:
        chain = (f"[0:v]scale={width}:{height}:flags=bicubic,setsar=1,split=2[f][b];[b]reverse[r];"
                 f"[f][r]concat=n=2:v=1:a=0,loop=loop=-1:size=32767")
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(source), "-filter_complex", chain,
                        "-frames:v", str(frames), "-r", str(fps), "-an", "-c:v", "libx264", "-crf", "18",
                        "-pix_fmt", "yuv420p", str(path)], check=True)
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
        samples, stop = [(time.time(), before)], threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.time(), rss_mb(proc.pid)))
                time.sleep(0.2)

        timeline = Timeline(base)
        timeline.start()
        timeline.ready.wait(30)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        prompt = graph(path, clip)
        result = submit(base, prompt, limit, client_id=timeline.client_id)
        timeline.done.wait(10)
        time.sleep(3)  # the prompt is done: what stays is ComfyUI's cache of the outputs
        stop.set()
        sampler.join()
        return {"before": before, "peak": max(r for _, r in samples), "after": samples[-1][1],
                "samples": samples, "events": timeline.events,
                "phases": phases(timeline.events, samples, prompt), **result}
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
    p.add_argument("--phases", action="store_true", help="also write the per-node table")
    p.add_argument("--source", type=Path, help="make the clips from this video (e.g. samples/bigbuckbunny_448x252.mp4) "
                                               "instead of synthetic frames")
    p.add_argument("--samples", type=Path, help="a folder for each run's (time, RSS) samples and node timeline (JSON)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "comfyui-rss.md")
    args = p.parse_args(argv)
    comfy = args.comfyui.resolve()
    rows, per_node = [], []
    for case in args.cases:
        n, w, h = (int(v) for v in case.split("x"))
        clip = f"pervfi_rss_{n}_{w}x{h}{'_' + args.source.stem if args.source else ''}.mp4"
        make_clip(comfy / "input" / clip, n, w, h, source=args.source)
        out_mb = (2 * n - 1) * w * h * 3 * 4 / 2 ** 20
        for path in args.paths:
            r = measure(comfy, args.python, args.port, path, clip, args.limit)
            row = (f"| {n} | {w}x{h} | {path.upper()} | {r['status']} | {r['seconds']:.0f} | {r['before']:.0f} | "
                   f"{r['peak']:.0f} | {r['peak'] - r['before']:.0f} | {r['after']:.0f} | {out_mb:.0f} |")
            rows.append(row)
            print(row, flush=True)
            if args.samples:
                args.samples.mkdir(parents=True, exist_ok=True)
                (args.samples / f"{n}x{w}x{h}-{path}.json").write_text(json.dumps(
                    {"samples": r["samples"], "events": [(t, e and graph(path, clip)[e]["class_type"])
                                                         for t, e in r["events"]]}))
            for node, start, low, top, end in r["phases"]:
                line = f"| {n} {w}x{h} {path.upper()} | {node} | {start:.0f} | {low:.0f} | {top:.0f} | {end:.0f} |"
                per_node.append(line)
                print(line, flush=True)
    lines = ["| frames in | size | path | result | seconds | RSS before (MB) | peak RSS (MB) | growth (MB) | "
             "RSS after (MB) | output as float32 (MB) |", "|---|---|---|---|---|---|---|---|---|---|", *rows]
    if args.phases:
        lines += ["", "| run | node | RSS at start (MB) | lowest (MB) | peak (MB) | RSS at end (MB) |",
                  "|---|---|---|---|---|---|",
                  *per_node]
    write_report(args.out, ["## Peak server RSS in ComfyUI (x2, training-free engine, auto motion, "
                            "`python bench/comfyui_rss.py`)", "", *lines])
    return 0


if __name__ == "__main__":
    sys.exit(main())
