#!/usr/bin/env bash
# pervfi-rife's head on a GPU: the part of bench/device_train.sh for DEVICE_ENGINE=pervfi-rife, sourced by it after
# it has read its arguments (CPU, OUT, ROOT, PYTHON); run bench/device_train.sh, see there.
#
#   DEVICE_ENGINE=pervfi-rife bash bench/device_train.sh OUT        # GPU: batch 16 at 256 px, DEVICE_TRAIN_S (420 s)
#   DEVICE_ENGINE=pervfi-rife bash bench/device_train.sh --cpu OUT  # three steps on the CPU: the recipe works
ITEMS="${DEVICE_ITEMS:-$ROOT/bench/device_items_rife}"
ls "$ITEMS"/trunk_*.pt >/dev/null 2>&1 || {
  echo "no prepared trunk outputs in $ITEMS: run python -m pervfi_core.train.pervfi_rife prepare --out $ITEMS" >&2; exit 2; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ITEMS="$(cd "$ITEMS" && pwd)"
RUN="$(mktemp -d)"  # checkpoint and optimiser state stay off OUT (it brings back at most 8 files)
trap 'rm -rf "$RUN"' EXIT
if [ -n "$CPU" ]; then
  ARGS=(--device cpu --steps 3 --batch 2 --crop 64 --held-out 2 --eval-every 3 --time-limit "${DEVICE_TRAIN_S:-60}")
else
  ARGS=(--device cuda --steps 20000 --batch 16 --crop 256 --eval-every 250 --time-limit "${DEVICE_TRAIN_S:-420}")
fi
{
  "$PYTHON" - "$OUT/environment.json" <<'PY'
import json, platform, sys, torch
env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(env)
PY
  cd "$ROOT" && timeout 520 "$PYTHON" -m pervfi_core.train.pervfi_rife fit --items "$ITEMS" --out "$RUN" \
    "${ARGS[@]}" --save-every 500 --export "$OUT/weights.safetensors"
} 2>&1 | tee "$OUT/log.txt"
STATUS="${PIPESTATUS[0]}"
[ -f "$RUN/curve.jsonl" ] && cp "$RUN/curve.jsonl" "$OUT/metrics.jsonl"
"$PYTHON" - "$OUT" "$STATUS" <<'PY' || true
import json, sys
from pathlib import Path
out, status = Path(sys.argv[1]), sys.argv[2]
f = out / "metrics.jsonl"
recs = [json.loads(l) for l in f.read_text().splitlines()] if f.is_file() else []
lines = [f"# device_train pervfi-rife ({'exit ' + status})", "",
         "| step | s | held-out LPIPS-alex (τ 0) | blend | RIFE | PSNR (τ 0) | RIFE |", "|---|---|---|---|---|---|---|"]
lines += [f"| {r['step']} | {r.get('seconds', 0)} | {r['alex']:.4f} | {r['alex_blend']:.4f} | {r['alex_rife']:.4f} | "
          f"{r['psnr']:.2f} | {r['psnr_rife']:.2f} |" for r in recs]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit "$STATUS"
