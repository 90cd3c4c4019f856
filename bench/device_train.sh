#!/usr/bin/env bash
# GPU training recipe: train the wide τ-capable residual model (config residual-cnf-wide) on prepared
# items, in one short run.
#
#   bash bench/device_train.sh OUT          # on a GPU: --device cuda --amp, under 9 minutes, <= 8 files in OUT
#   bash bench/device_train.sh --cpu OUT    # a few steps on the CPU: checks that the recipe works
#
# The GPU machine reaches no registry, so the items travel prepared (bench/prepare_device_items.py,
# git-ignored, passed with carry). Environment: DEVICE_ITEMS (default bench/device_items.pt),
# DEVICE_CONFIG (default residual-cnf-wide; residual-cnf continues the shipped narrow model),
# DEVICE_INIT (default: weights/pervfi_own_flow.safetensors for residual-cnf, none otherwise: untrained,
# a residual config already gives the training-free frame at τ = 0, which is all the shipped narrow
# weights reach on held-out clips; "none" starts from scratch), DEVICE_TRAIN_S (training wall time,
# default 420 s), PYTHON. OUT gets weights.safetensors, metrics.jsonl, environment.json, summary.md and
# log.txt. Evaluate the weights here with bench/bench_tau.py --weights. Exit status: 0 trained and exported,
# 2 usage / missing items, 124 over the time limit, else the training CLI's.
#
# DEVICE_ENGINE=pervfi-rife trains pervfi-rife's head instead (pervfi_core/train/pervfi_rife.py) on the
# frozen RIFE trunk's outputs, prepared here (`python -m pervfi_core.train.pervfi_rife prepare --out DIR`,
# a folder of trunk_*.pt, carried) in DEVICE_ITEMS (default bench/device_items_rife); OUT gets
# weights.safetensors (the head, for weights/pervfi_rife_head.safetensors), metrics.jsonl (its learning
# curve), environment.json, summary.md, log.txt. Evaluate with bench/bench_validation.py.
set -u
CPU=""
OUT=""
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU=1 ;;
    -h|--help) sed -n 2,22p "$0"; exit 0 ;;
    *) OUT="$arg" ;;
  esac
done
[ -n "$OUT" ] || { echo "usage: bash bench/device_train.sh [--cpu] OUT" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
if [ "${DEVICE_ENGINE:-}" = "pervfi-rife" ]; then
  . "$ROOT/bench/device_train_rife.sh"  # uses the CPU, OUT, ROOT and PYTHON read above
  exit $?
fi
ITEMS="${DEVICE_ITEMS:-$ROOT/bench/device_items.pt}"
CONFIG="${DEVICE_CONFIG:-residual-cnf-wide}"
SHIPPED="none"
case "$CONFIG" in residual-cnf|residual-flow) SHIPPED="$ROOT/weights/pervfi_own_flow.safetensors";; esac  # residual-flow: its old name
INIT="${DEVICE_INIT:-$SHIPPED}"
[ -f "$ITEMS" ] || { echo "no prepared items at $ITEMS: run bench/prepare_device_items.py first" >&2; exit 2; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ITEMS="$(realpath "$ITEMS")"
RUN="$(mktemp -d)"  # checkpoint and optimiser state stay off OUT (it brings back at most 8 files)
trap 'rm -rf "$RUN"' EXIT
if [ -n "$CPU" ]; then
  ARGS=(--device cpu --steps 3 --batch 2 --val-every 3 --time-limit "${DEVICE_TRAIN_S:-60}")
else
  # batch 32 at 128 px; the schedule spans the wall time (the run stops at the limit, steps is an upper bound)
  ARGS=(--device cuda --amp --steps 20000 --batch 32 --lr 2e-4 --halve-every 4000 --val-every 250
        --workers 4 --time-limit "${DEVICE_TRAIN_S:-420}")
fi
INIT_ARGS=()
if [ "$INIT" != "none" ] && [ -f "$INIT" ]; then INIT_ARGS=(--init "$(realpath "$INIT")"); fi
{
  echo "device_train: config $CONFIG, items $(basename "$ITEMS"), init ${INIT_ARGS[*]:-none}"
  "$PYTHON" - "$OUT/environment.json" <<'EOF'
import json, platform, sys, torch
env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(env)
EOF
  cd "$ROOT" && timeout 520 "$PYTHON" -m pervfi_core train --config "$CONFIG" --prepared "$ITEMS" "${INIT_ARGS[@]}" \
    "${ARGS[@]}" --ckpt-every 500 --out "$RUN" --export "$OUT/weights.safetensors"
} 2>&1 | tee "$OUT/log.txt"
STATUS="${PIPESTATUS[0]}"
[ -f "$RUN/metrics.jsonl" ] && cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
"$PYTHON" - "$OUT" "$STATUS" <<'EOF' || true
import json, sys
from pathlib import Path
out, status = Path(sys.argv[1]), sys.argv[2]
recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()] if (out / "metrics.jsonl").is_file() else []
val = [(r["step"], r["val_psnr"]) for r in recs if "val_psnr" in r]
lines = [f"# device_train ({'exit ' + status})", "",
         f"steps: {recs[-1]['step'] if recs else 0}, wall time {recs[-1]['time_s'] if recs else 0} s", "",
         "| step | validation PSNR (dB, tau 0) |", "|---|---|", *[f"| {s} | {p:.2f} |" for s, p in val]]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
exit "$STATUS"
