"""Run the pack in a real, headless ComfyUI: import, node list, and every example workflow.

    python bench/comfyui_smoke.py --comfyui DIR [--python PY] [--port 8199] [--workflows NAME ...]
                                  [--out bench/results/comfyui.md]

``DIR`` is a ComfyUI checkout whose Python (``--python``, default the current one) has ComfyUI's
requirements and this pack's (``requirements.txt``). The script links this checkout into
``DIR/custom_nodes/comfyui-pervfi`` (if nothing is there yet), copies ``example_workflows/inputs`` into
``DIR/input``, starts ``main.py --cpu`` on 127.0.0.1 with only this pack enabled, checks that the pack
imported and that ``/object_info`` lists every node of ``nodes.NODE_CLASS_MAPPINGS`` with the same
inputs, runs each API-format workflow through ``POST /prompt``, waits for its history, and stops the
server. Writes a markdown summary; exit status 0 when everything ran, 1 otherwise.
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
    """Our nodes as ComfyUI lists them, against the classes: missing nodes or inputs."""
    import nodes

    problems = []
    for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
        if name not in info:
            problems.append(f"{name}: not listed")
            continue
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            listed = set(info[name]["input"].get(section, {}))
            missing = set(spec.get(section, {})) - listed
            if missing:
                problems.append(f"{name}: {section} inputs {sorted(missing)} not listed")
    return problems


def run_workflow(base: str, name: str, limit: float) -> tuple[str, float, str]:
    prompt = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    start = time.time()
    status, reply = _post(f"{base}/prompt", {"prompt": prompt})
    if status != 200:
        return "refused", 0.0, json.dumps(reply.get("node_errors") or reply)[:400]
    pid = reply["prompt_id"]
    while time.time() - start < limit:
        hist = _get(f"{base}/history/{pid}")
        if pid in hist:
            st = hist[pid].get("status", {})
            if st.get("status_str") == "success":
                outputs = hist[pid].get("outputs", {})
                return "success", time.time() - start, f"{len(outputs)} output nodes"
            msgs = [m for m in st.get("messages", []) if m[0] == "execution_error"]
            detail = msgs[0][1] if msgs else st
            text = (f"node {detail.get('node_id')} {detail.get('exception_type')}: {detail.get('exception_message')}"
                    if isinstance(detail, dict) else str(detail))
            return "error", time.time() - start, text.strip()[:400]
        time.sleep(1)
    return "timeout", time.time() - start, f"no result within {limit:.0f} s"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comfyui", type=Path, required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--port", type=int, default=8199)
    p.add_argument("--workflows", nargs="*", default=sorted(f.stem for f in (WORKFLOWS / "api").glob("*.json")))
    p.add_argument("--limit", type=float, default=600, help="seconds per workflow")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "comfyui.md")
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
           "--disable-api-nodes", "--disable-all-custom-nodes", "--whitelist-custom-nodes", PACK]
    base = f"http://127.0.0.1:{args.port}"
    rows, problems = [], []
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
            estimators = info.get("PerVFILoadFlowModel", {}).get("input", {}).get("required", {}).get("estimator", [[]])[0]
            engines = info.get("PerVFILoadModel", {}).get("input", {}).get("required", {}).get("checkpoint", [[]])[0]
            for name in args.workflows:
                status, seconds, detail = run_workflow(base, name, args.limit)
                rows.append((name, status, seconds, detail))
                print(f"{name}: {status} in {seconds:.1f} s ({detail})", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    version = next((line.split("ComfyUI version:", 1)[1].strip() for line in log_path.read_text().splitlines()
                    if "ComfyUI version:" in line), "unknown")  # log lines carry a coloured level prefix
    lines = [f"## The pack in a real headless ComfyUI ({datetime.date.today()})", "",
             f"`python bench/comfyui_smoke.py --comfyui DIR` — ComfyUI {version}, `--cpu`, headless, only this pack "
             "enabled; every example workflow (API format) through `POST /prompt`.", "",
             f"Nodes listed with all their inputs: {'yes' if not problems else 'NO: ' + '; '.join(problems)}.",
             f"Flow loader estimators: {', '.join(estimators)}.", f"Engine choices: {', '.join(engines)}.", "",
             "| workflow | result | seconds | detail |", "|---|---|---|---|",
             *[f"| {n} | {s} | {t:.1f} | {d.replace('|', '/')} |" for n, s, t, d in rows]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if not problems and all(r[1] == "success" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
