"""Run every benchmark and write BENCHMARKS.md.

    python bench/run_all.py [--quick] [--only core core-malloc flow pipeline pipeline-own pipeline-v00 quality training]

Each benchmark is its own script (run it alone for more options); this one runs them in sequence in
child processes, keeps each one's markdown in bench/results/<name>.md and assembles BENCHMARKS.md
at the top of the checkout: a header with the machine, then every section. A benchmark that fails
keeps its previous section and the failure is reported (never silently dropped).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# name -> (title, command, markdown source: "stdout" or a file the script writes)
BENCHES = {
    "core": ("PerVFI core: seconds per stage and peak memory (flow excluded)",
             ["bench_core.py", "--threads", "2"], "stdout"),
    "core-malloc": ("PerVFI core with glibc's default malloc (without pervfi_core.tune_malloc())",
                    ["bench_core.py", "--threads", "2", "--sizes", "448x256", "--dtypes", "float32",
                     "--default-malloc"], "stdout"),
    "flow": ("Motion estimators: accuracy and speed (640x480 pairs with exact motion)",
             ["bench_flow.py", "--pairs", "3"], "stdout"),
    "pipeline": ("Training-free engine through the pipeline: seconds per output frame and peak memory",
                 ["bench_pipeline.py", "--model", "training-free"], "stdout"),
    "pipeline-own": ("The project's trained weights (pervfi-own) through the pipeline",
                     ["bench_pipeline.py", "--model", "pervfi-own", "--sizes", "448x256", "1280x720", "--pairs", "2"],
                     "stdout"),
    "pipeline-v00": ("Official v00 (parity-fixture weights: same cost) through the pipeline, incl. a tiled 3840x2160 frame",
                     ["bench_pipeline.py", "--model", "../shared/fixtures/parity/weights/pervfi_v00.safetensors",
                      "--sizes", "448x256", "3840x2160", "--pairs", "1", "--no-warmup", "--threads", "2"], "stdout"),
    "pipeline-own-tau": ("The τ-capable embedded model (pervfi-own-tau) through the pipeline",
                          ["bench_pipeline.py", "--model", "pervfi-own-tau", "--sizes", "448x256", "1280x720",
                           "--pairs", "2"], "stdout"),
    "default": ("Choosing the default engine: the offline engines on every registry clip",
                ["bench_default.py"], "results/default.md"),
    "motion": ("Motion for the default engine: DIS presets, RIFE 4.25/4.26 and half-size GMFlow on every registry clip",
               ["bench_motion.py"], "results/motion.md"),
    "consistency": ("Forward-backward consistency as an occlusion cue in the default engine",
                    ["bench_consistency.py"], "results/consistency.md"),
    "tau": ("τ sweep and flicker of the τ-capable embedded model on held-out clips",
            ["bench_tau.py", "--weights", "weights/pervfi_own_flow.safetensors"], "results/tau.md"),
    "validation": ("Validation on real footage (../shared/validation): engines against RIFE 4.25/4.26 and frame averaging",
                   ["bench_validation.py", "--light-taus", "--full-taus", "0", "0.2", "0.3", "0.4", "--time-repeats", "7",
                    "--engines", "training-free", *(f"pervfi-rife:tau={t}" for t in ("0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.7", "1"))],
                   "results/validation.md"),
    "rife-tau": ("pervfi-rife: what τ changes, and flicker on a real clip",
                 ["bench_rife_tau.py", "--tau", "0.5"], "results/rife_tau.md"),
    "trunk-variants": ("Inference-time changes to RIFE 4.25/4.26's frame (sharpening, half-scale motion) on the validation set",
                       ["bench_trunk_variants.py"], "results/trunk-variants.md"),
    "carry": ("Alpha and bit depth: what each output keeps (codec and pixel format read back)",
              ["bench_carry.py"], "results/carry.md"),
    "quality": ("Interpolation quality on real clips",
                ["bench_quality.py"], "results/quality.md"),
    "training": ("The project's trained model against the training-free default",
                 ["bench_training.py"], "stdout"),
    "memory": ("Working memory per pixel: what ComfyUI's model manager is told",
               ["memory_per_pixel.py"], "stdout"),
    "ray": ("Many machines: Ray workers against the plain CLI, and the cost of a segment",
            ["bench_ray.py"], "stdout"),
}
# sections written by hand from a run elsewhere (bench/device_check.sh needs a GPU) or a long run, kept as they are
# soak: bench/soak.py takes as long as its clip (20 minutes of video); comfyui: bench/comfyui_smoke.py needs a
# ComfyUI checkout with its own environment (comfyui-rss: bench/comfyui_rss.py, the same); hotloop:
# bench/bench_hotloop.py --baseline REV, a before/after of one change; scene-cuts: bench/bench_scenes.py needs
# opencv-doc's videos (its own --out writes the bare table, results/scenes.md)
EXTERNAL = ("device", "device-train", "soak", "comfyui", "comfyui-rss", "hotloop", "scene-cuts")
# summary: what the figures decide, written by hand from the sections (the README links to it); it comes first
SUMMARY = "summary"
QUICK = {"core": ["--sizes", "448x256", "--repeats", "1"], "core-malloc": ["--repeats", "1"], "flow": ["--pairs", "1"], "pipeline": ["--pairs", "2"],
         "quality": ["--triplets", "2"]}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}), GPU: {gpu}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def sections() -> dict[str, str]:
    """The bench/results sections of BENCHMARKS.md by name, in order: summary, benches, external ones."""
    files = [RESULTS / f"{n}.md" for n in (SUMMARY, *BENCHES, *EXTERNAL)]
    return {f.stem: f.read_text() for f in files if f.is_file()}


def run(name: str, quick: bool) -> tuple[bool, str]:
    title, cmd, source = BENCHES[name]
    script = HERE / cmd[0]
    if not script.is_file():
        return False, f"{cmd[0]} not found"
    args = [sys.executable, str(script), *cmd[1:], *(QUICK.get(name, []) if quick else [])]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return False, f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"
    text = proc.stdout if source == "stdout" else (HERE / source).read_text()
    command = "python bench/" + " ".join(args[1:]).replace(str(HERE) + os.sep, "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(f"## {title}\n\n`{command}`\n\n{text.strip()}\n")
    return True, command


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    ap.add_argument("--quick", action="store_true", help="fewer repeats/pairs (a smoke run)")
    args = ap.parse_args()
    failures = []
    for name in args.only:
        print(f"[bench] {name} ...", flush=True)
        ok, info = run(name, args.quick)
        print(f"[bench] {name}: {'ok' if ok else 'FAILED ' + info}", flush=True)
        if not ok:
            failures.append(f"- {name}: {info}")
    header = (f"# Benchmarks\n\nWritten by `python bench/run_all.py` on {datetime.date.today()}: {machine()}.\n"
              "Each section names the command that produced it; timings on a shared 2-core CPU are "
              "indicative (re-run for your machine).\n")
    if failures:
        header += "\nLast run, benchmarks that failed (their sections are from an earlier run or absent):\n" + "\n".join(failures) + "\n"
    (ROOT / "BENCHMARKS.md").write_text(header + "\n" + "\n".join(sections().values()))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
