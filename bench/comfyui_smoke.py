"""Run the pack in a real, headless ComfyUI: import, node list, every example workflow, self-built graphs.

    python bench/comfyui_smoke.py --comfyui DIR [--python PY] [--port 8199] [--workflows NAME ...]
                                  [--out bench/results/comfyui.md]

``DIR`` is a ComfyUI checkout whose Python (``--python``, default the current one) has ComfyUI's
requirements and this pack's (``requirements.txt``). The script links this checkout into
``DIR/custom_nodes/comfyui-pervfi`` (if nothing is there yet), copies ``example_workflows/inputs`` into
``DIR/input``, starts ``main.py --cpu`` on 127.0.0.1 with only this pack enabled, checks that the pack
imported and that ``/object_info`` lists every node of ``nodes.NODE_CLASS_MAPPINGS`` with the same
inputs and search aliases, runs each API-format workflow through ``POST /prompt``, then two graphs built
around core nodes (Load Video -> Get Video Components -> PerVFI Interpolate Frames -> Upscale Image (using
Model) -> Create Video -> Save Video; and Motion -> Asymmetric Blend -> Decode), each queued three times
unchanged (counting how often the PerVFI nodes really ran: ComfyUI's history lists the cached ones) and
once more with another seed; checks that 'dis' with an official RAFT checkpoint is refused at validation;
and stops the server. The upscale graph needs an ESRGAN-family model named ``--upscale-model`` in
``DIR/models/upscale_models``. Writes a markdown summary; exit status 0 when everything ran, 1 otherwise.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import write_report  # noqa: E402

WORKFLOWS = ROOT / "example_workflows"
PACK = "comfyui-pervfi"


def _get(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post(url: str, doc: dict):
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def stop(proc) -> None:
    """End the server we started: politely, then for sure."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_up(base: str, proc, limit: float = 180) -> None:
    end = time.time() + limit
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"ComfyUI exited early with status {proc.returncode}")
        try:
            _get(f"{base}/system_stats", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(1)
    raise SystemExit("ComfyUI did not answer within the start-up limit")


def check_nodes(info: dict) -> list[str]:
    """Our nodes as ComfyUI lists them, against their V3 schemas: missing nodes, inputs or search aliases."""
    import nodes

    problems = []
    for cls in nodes.NODES:
        schema = cls.define_schema()
        name = schema.node_id
        if name not in info:
            problems.append(f"{name}: not listed")
            continue
        listed = {k for section in ("required", "optional") for k in info[name]["input"].get(section, {})}
        missing = {i.id for i in schema.inputs} - listed
        if missing:
            problems.append(f"{name}: inputs {sorted(missing)} not listed")
        if not info[name].get("search_aliases"):
            problems.append(f"{name}: no search aliases listed")
    return problems


def _options(entry) -> list:
    """A combo's choices from /object_info (V3: ["COMBO", {"options": [...]}]; V1: [[...], {...}])."""
    return entry[1].get("options", []) if entry and entry[0] == "COMBO" else (entry[0] if entry else [])


def submit(base: str, prompt: dict, limit: float, client_id: str | None = None) -> dict:
    """POST one prompt and wait: {status, seconds, detail, ran (node ids executed), cached (node ids reused)}.
    ``client_id``: the websocket client that gets the prompt's progress messages."""
    start = time.time()
    status, reply = _post(f"{base}/prompt", {"prompt": prompt, **({"client_id": client_id} if client_id else {})})
    if status != 200:
        return {"status": "refused", "seconds": 0.0, "ran": [], "cached": [],
                "detail": json.dumps(reply.get("node_errors") or reply, ensure_ascii=False)[:600]}
    pid = reply["prompt_id"]
    while time.time() - start < limit:
        try:
            hist = _get(f"{base}/history/{pid}", timeout=60)
        except (urllib.error.URLError, TimeoutError, ConnectionError):  # a busy server answers late: ask again
            continue
        if pid in hist:
            st = hist[pid].get("status", {})
            messages = dict((m[0], m[1]) for m in st.get("messages", []))
            cached = messages.get("execution_cached", {}).get("nodes", [])
            out = {"seconds": time.time() - start, "cached": cached,
                   "ran": [k for k in prompt if k not in cached]}
            if st.get("status_str") == "success":
                return {**out, "status": "success", "detail": f"{len(hist[pid].get('outputs', {}))} output nodes"}
            detail = messages.get("execution_error", st)
            text = (f"node {detail.get('node_id')} {detail.get('exception_type')}: {detail.get('exception_message')}"
                    if isinstance(detail, dict) else str(detail))
            return {**out, "status": "error", "detail": text.strip()[:400]}
        time.sleep(1)
    return {"status": "timeout", "seconds": time.time() - start, "ran": [], "cached": [],
            "detail": f"no result within {limit:.0f} s"}


def run_workflow(base: str, name: str, limit: float) -> tuple[str, float, str]:
    r = submit(base, json.loads((WORKFLOWS / "api" / f"{name}.json").read_text()), limit)
    return r["status"], r["seconds"], r["detail"]


def widget_defaults(node_class: str) -> dict:
    """Our node's widgets at their defaults, as a freshly added node has them (the loaders: their first choice)."""
    from example_workflows.make_workflows import OURS, ports

    return {name: default for name, _, _, default in ports(OURS[node_class])[1] if default is not None}


def self_built_graphs(upscale_model: str) -> dict:
    """Graphs a user builds around core nodes (API format), every PerVFI widget at its default (the default
    engine and motion included)."""
    load = {"1": {"class_type": "LoadVideo", "inputs": {"file": "pervfi_bunny_192x108.mp4"}},
            "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
            "3": {"class_type": "PerVFILoadModel", "inputs": widget_defaults("PerVFILoadModel")},
            "4": {"class_type": "PerVFILoadFlowModel", "inputs": widget_defaults("PerVFILoadFlowModel")}}
    upscale = {**load,
               "5": {"class_type": "PerVFIInterpolate", "inputs": {**widget_defaults("PerVFIInterpolate"),
                                                                   "frames": ["2", 0], "model": ["3", 0],
                                                                   "flow_model": ["4", 0], "source_fps": ["2", 2]}},
               "6": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": upscale_model}},
               "7": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["6", 0], "image": ["5", 0]}},
               "8": {"class_type": "CreateVideo", "inputs": {"images": ["7", 0], "fps": ["5", 1], "audio": ["2", 1]}},
               "9": {"class_type": "SaveVideo", "inputs": {"video": ["8", 0], "filename_prefix": "pervfi/self_upscale",
                                                           "format": "auto", "codec": "auto"}}}
    split = {**load,
             "5": {"class_type": "PerVFIFlowEstimation", "inputs": {"frames": ["2", 0], "flow_model": ["4", 0]}},
             "6": {"class_type": "PerVFIASBBlend", "inputs": {**widget_defaults("PerVFIASBBlend"), "frames": ["2", 0],
                                                              "flow": ["5", 0], "model": ["3", 0],
                                                              "source_fps": ["2", 2]}},
             "7": {"class_type": "PerVFIFlowDecode", "inputs": {**widget_defaults("PerVFIFlowDecode"),
                                                                "blend": ["6", 0], "model": ["3", 0]}},
             "8": {"class_type": "CreateVideo", "inputs": {"images": ["7", 0], "fps": ["7", 1]}},
             "9": {"class_type": "SaveVideo", "inputs": {"video": ["8", 0], "filename_prefix": "pervfi/self_split",
                                                         "format": "auto", "codec": "auto"}}}
    return {"interpolate -> upscale model": (upscale, ["5"], "5"), "motion -> blend -> decode": (split, ["5", "6", "7"], "7")}


def queue_three_times(base: str, graph: dict, ours: list, seed_node: str, limit: float, log_path: Path) -> list[str]:
    """Queue ``graph`` three times unchanged, then with another seed; one line per Queue."""
    lines = []
    for k in range(4):
        prompt = json.loads(json.dumps(graph))
        if k == 3:
            prompt[seed_node]["inputs"]["seed"] = 12345
        reused_before = log_path.read_text().count("reused its last result")
        r = submit(base, prompt, limit)
        reused = log_path.read_text().count("reused its last result") - reused_before
        ran = [n for n in ours if n in r["ran"]]
        what = "unchanged" if k < 3 else "seed 0 -> 12345"
        lines.append(f"Queue {k + 1} ({what}): {r['status']} in {r['seconds']:.1f} s; PerVFI nodes executed: "
                     f"{ran or 'none (all cached)'}; handed back their last result without work: {reused}")
    return lines


def refusal(base: str, log_path: Path) -> str:
    """'dis' with an official RAFT checkpoint: refused at validation, nothing downloaded."""
    from example_workflows.make_workflows import choice

    prompt = self_built_graphs("x")["motion -> blend -> decode"][0]
    prompt["4"]["inputs"] = {"estimator": choice("PerVFILoadFlowModel", "estimator", "dis"),
                             "checkpoint": choice("PerVFILoadFlowModel", "checkpoint", "raft-sintel")}
    before = log_path.read_text().count("downloading")
    start = time.time()
    r = submit(base, prompt, 60)
    downloads = log_path.read_text().count("downloading") - before
    return (f"dis + raft-sintel: {r['status']} after {time.time() - start:.2f} s, download attempts: {downloads}; "
            f"{r['detail']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comfyui", type=Path, required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--port", type=int, default=8199)
    p.add_argument("--workflows", nargs="*", default=sorted(f.stem for f in (WORKFLOWS / "api").glob("*.json")))
    p.add_argument("--limit", type=float, default=600, help="seconds per workflow")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "comfyui.md")
    p.add_argument("--temp-directory", type=Path,
                   help="the server's temp folder (ComfyUI empties it at start-up): set it beside another running server")
    p.add_argument("--upscale-model", default="RealESRGAN_x2plus.pth",
                   help="a file in DIR/models/upscale_models (any ESRGAN-family model)")
    args = p.parse_args(argv)
    comfy = args.comfyui.resolve()
    link = comfy / "custom_nodes" / PACK
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    (comfy / "input").mkdir(exist_ok=True)
    for f in (WORKFLOWS / "inputs").glob("*.mp4"):
        shutil.copy(f, comfy / "input" / f.name)
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"comfyui-smoke-{args.port}.log"
    cmd = [args.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(args.port), "--disable-auto-launch",
           "--disable-api-nodes", "--disable-all-custom-nodes", "--whitelist-custom-nodes", PACK,
           *(["--temp-directory", str(args.temp_directory)] if args.temp_directory else [])]
    base = f"http://127.0.0.1:{args.port}"
    rows, problems, extra_lines = [], [], []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=comfy, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_up(base, proc)
            text = log_path.read_text()
            imported = [line.strip() for line in text.splitlines() if PACK in line and "custom_nodes" in line]
            if not imported or any("IMPORT FAILED" in line for line in imported):
                problems.append(f"pack import: {imported or 'not in the import list'}")
            info = _get(f"{base}/object_info", timeout=60)
            problems += check_nodes(info)
            estimators = _options(info.get("PerVFILoadFlowModel", {}).get("input", {}).get("required", {}).get("estimator"))
            engines = _options(info.get("PerVFILoadModel", {}).get("input", {}).get("required", {}).get("checkpoint"))
            for name in args.workflows:
                status, seconds, detail = run_workflow(base, name, args.limit)
                rows.append((name, status, seconds, detail))
                print(f"{name}: {status} in {seconds:.1f} s ({detail})", flush=True)
            for title, (graph, ours, seed_node) in self_built_graphs(args.upscale_model).items():
                queued = queue_three_times(base, graph, ours, seed_node, args.limit, log_path)
                extra_lines += [f"**{title}**", "", *[f"* {q}" for q in queued], ""]
                print("\n".join(queued), flush=True)
                problems += [f"{title}: {q}" for q in queued if ": success" not in q]
            refused = refusal(base, log_path)
            extra_lines += ["**validation**", "", f"* {refused}", ""]
            print(refused, flush=True)
        finally:
            stop(proc)
    version = next((line.split("ComfyUI version:", 1)[1].strip() for line in log_path.read_text().splitlines()
                    if "ComfyUI version:" in line), "unknown")  # log lines carry a coloured level prefix
    lines = [f"## The pack in a real headless ComfyUI ({datetime.date.today()})", "",
             f"`python bench/comfyui_smoke.py --comfyui DIR` — ComfyUI {version}, `--cpu`, headless, only this pack "
             "enabled; every example workflow (API format) through `POST /prompt`.", "",
             f"Nodes listed with all their inputs: {'yes' if not problems else 'NO: ' + '; '.join(problems)}.",
             f"Flow loader estimators: {', '.join(estimators)}.", f"Engine choices: {', '.join(engines)}.", "",
             "| workflow | result | seconds | detail |", "|---|---|---|---|",
             *[f"| {n} | {s} | {t:.1f} | {d.replace('|', '/')} |" for n, s, t, d in rows], "",
             "Self-built graphs around core nodes, queued three times unchanged with the default widgets, then "
             f"with another seed (upscale model: `{args.upscale_model}`):", "", *extra_lines]
    write_report(args.out, lines)
    return 0 if not problems and all(r[1] == "success" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
