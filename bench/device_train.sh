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
# curve), environment.json, summary.md, log.txt (GPU: batch 16 at 256 px), with the shipped head's objective
# (LPIPS-alex + DISTS, trained with g = 1, exported with the envelope L = 8); the LPIPS/DISTS weights come from
# PERVFI_HOME. Evaluate with bench/bench_validation.py.
#
# DEVICE_ENGINE=trunk-refine fine-tunes the two finest blocks of pervfi-rife's RIFE trunk for perception
# (pervfi_core/train/trunk_refine.py) on the training clips in DEVICE_ITEMS (default bench/device_clips: a folder
# of .mp4/.avi, carried; never validation footage), without synthetic scenes unless the registry photos are in the
# carried PERVFI_HOME (DEVICE_SYNTHETIC, default 0); the RIFE and LPIPS/DISTS weights come from PERVFI_HOME too.
# OUT gets weights.safetensors (the shipped head with the new blocks under trunk.), metrics.jsonl, environment.json,
# summary.md, log.txt (GPU: batch 16 at 256 px). The recipes differ in their items, trainer and arguments; the
# run around them is one.
set -u
CPU=""
OUT=""
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU=1 ;;
    -h|--help) sed -n 2,31p "$0"; exit 0 ;;
    *) OUT="$arg" ;;
  esac
done
[ -n "$OUT" ] || { echo "usage: bash bench/device_train.sh [--cpu] OUT" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
if [ "${DEVICE_ENGINE:-}" = "trunk-refine" ]; then
  ITEMS="${DEVICE_ITEMS:-$ROOT/bench/device_clips}"
  CLIPS=()
  for f in "$ITEMS"/*.mp4 "$ITEMS"/*.avi; do [ -f "$f" ] && CLIPS+=("$(realpath "$f")"); done
  [ "${#CLIPS[@]}" -gt 0 ] || { echo "no training clips (.mp4/.avi) in $ITEMS" >&2; exit 2; }
  HEADER="device_train: trunk-refine, ${#CLIPS[@]} clips from $(basename "$ITEMS")"
  if [ -n "$CPU" ]; then
    ARGS=(--device cpu --steps 3 --batch 1 --crop 128 --max-frames 20 --time-limit "${DEVICE_TRAIN_S:-60}")
  else
    ARGS=(--device cuda --steps 4000 --batch 16 --crop 256 --time-limit "${DEVICE_TRAIN_S:-420}")
  fi
  TRAIN=(-m pervfi_core.train.trunk_refine fit --clip "${CLIPS[@]}" --synthetic-share "${DEVICE_SYNTHETIC:-0}" "${ARGS[@]}")
  CURVE=curve.jsonl
elif [ "${DEVICE_ENGINE:-}" = "pervfi-rife" ]; then
  ITEMS="${DEVICE_ITEMS:-$ROOT/bench/device_items_rife}"
  ls "$ITEMS"/trunk_*.pt >/dev/null 2>&1 || {
    echo "no prepared trunk outputs in $ITEMS: run python -m pervfi_core.train.pervfi_rife prepare --out $ITEMS" >&2
    exit 2; }
  ITEMS="$(realpath "$ITEMS")"
  HEADER="device_train: pervfi-rife head, items $(basename "$ITEMS")"
  if [ -n "$CPU" ]; then
    ARGS=(--device cpu --steps 3 --batch 2 --crop 64 --held-out 2 --eval-every 3 --time-limit "${DEVICE_TRAIN_S:-60}")
  else
    ARGS=(--device cuda --steps 20000 --batch 16 --crop 256 --eval-every 250 --time-limit "${DEVICE_TRAIN_S:-420}")
  fi
  TRAIN=(-m pervfi_core.train.pervfi_rife fit --items "$ITEMS" --perceptual alex-dists --envelope 0 --export-envelope 8
         "${ARGS[@]}" --save-every 500)
  CURVE=curve.jsonl
else
  ITEMS="${DEVICE_ITEMS:-$ROOT/bench/device_items.pt}"
  CONFIG="${DEVICE_CONFIG:-residual-cnf-wide}"
  SHIPPED="none"
  case "$CONFIG" in residual-cnf|residual-flow) SHIPPED="$ROOT/weights/pervfi_own_flow.safetensors";; esac  # residual-flow: its old name
  INIT="${DEVICE_INIT:-$SHIPPED}"
  [ -f "$ITEMS" ] || { echo "no prepared items at $ITEMS: run bench/prepare_device_items.py first" >&2; exit 2; }
  ITEMS="$(realpath "$ITEMS")"
  if [ -n "$CPU" ]; then
    ARGS=(--device cpu --steps 3 --batch 2 --val-every 3 --time-limit "${DEVICE_TRAIN_S:-60}")
  else
    # batch 32 at 128 px; the schedule spans the wall time (the run stops at the limit, steps is an upper bound)
    ARGS=(--device cuda --amp --steps 20000 --batch 32 --lr 2e-4 --halve-every 4000 --val-every 250
          --workers 4 --time-limit "${DEVICE_TRAIN_S:-420}")
  fi
  INIT_ARGS=()
  if [ "$INIT" != "none" ] && [ -f "$INIT" ]; then INIT_ARGS=(--init "$(realpath "$INIT")"); fi
  HEADER="device_train: config $CONFIG, items $(basename "$ITEMS"), init ${INIT_ARGS[*]:-none}"
  TRAIN=(-m pervfi_core train --config "$CONFIG" --prepared "$ITEMS" "${INIT_ARGS[@]}" "${ARGS[@]}" --ckpt-every 500)
  CURVE=metrics.jsonl
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RUN="$(mktemp -d)"  # checkpoint and optimiser state stay off OUT (it brings back at most 8 files)
trap 'rm -rf "$RUN"' EXIT
{
  echo "$HEADER"
  "$PYTHON" - "$OUT/environment.json" <<'EOF'
import json, platform, sys, torch
env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(env)
EOF
  if [ "${DEVICE_ENGINE:-}" = "trunk-refine" ]; then
    cd "$ROOT" && timeout 520 "$PYTHON" "${TRAIN[@]}" --out "$RUN" \
      && cp "$ROOT/weights/pervfi_rife_head.safetensors" "$OUT/weights.safetensors" \
      && "$PYTHON" -m pervfi_core.train.trunk_refine export --out "$RUN" --into "$OUT/weights.safetensors"
  else
    cd "$ROOT" && timeout 520 "$PYTHON" "${TRAIN[@]}" --out "$RUN" --export "$OUT/weights.safetensors"
  fi
} 2>&1 | tee "$OUT/log.txt"
STATUS="${PIPESTATUS[0]}"
[ -f "$RUN/$CURVE" ] && cp "$RUN/$CURVE" "$OUT/metrics.jsonl"
"$PYTHON" - "$OUT" "$STATUS" "${DEVICE_ENGINE:-}" <<'EOF' || true
import json, sys
from pathlib import Path
out, status, engine = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
f = out / "metrics.jsonl"
recs = [json.loads(line) for line in f.read_text().splitlines()] if f.is_file() else []
if engine == "trunk-refine":  # the training terms every 25 steps
    lines = [f"# device_train trunk-refine (exit {status})", "", "| step | s | Charbonnier | LPIPS-alex | DISTS |",
             "|---|---|---|---|---|", *(f"| {r['step']} | {r['s']} | {r['l1']:.4f} | {r['alex']:.4f} | {r['dists']:.4f} |"
                                        for r in recs)]
elif engine == "pervfi-rife":  # the head's held-out curve against its blend and RIFE
    lines = [f"# device_train pervfi-rife (exit {status})", "",
             "| step | s | held-out LPIPS-alex (τ 0) | blend | RIFE | PSNR (τ 0) | RIFE |", "|---|---|---|---|---|---|---|",
             *(f"| {r['step']} | {r.get('seconds', 0)} | {r['alex']:.4f} | {r['alex_blend']:.4f} | {r['alex_rife']:.4f} | "
               f"{r['psnr']:.2f} | {r['psnr_rife']:.2f} |" for r in recs)]
else:
    val = [(r["step"], r["val_psnr"]) for r in recs if "val_psnr" in r]
    lines = [f"# device_train (exit {status})", "",
             f"steps: {recs[-1]['step'] if recs else 0}, wall time {recs[-1]['time_s'] if recs else 0} s", "",
             "| step | validation PSNR (dB, tau 0) |", "|---|---|", *[f"| {s} | {p:.2f} |" for s, p in val]]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
exit "$STATUS"
