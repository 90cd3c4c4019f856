#!/usr/bin/env bash
# The device check (bench/device_check.py): parity, half precision, speed and memory, in one short run.
#
#   bash bench/device_check.sh OUT          # on a GPU machine: under 8 minutes, at most 8 files in OUT
#   bash bench/device_check.sh --cpu OUT    # tiny sizes on the CPU: checks that the script works
#
# Runs from a checkout with ../shared/fixtures/parity beside it; needs torch, einops, safetensors,
# OpenCV; no network. OUT gets environment.json, parity.json, precision.json, speed_memory.json,
# summary.md and log.txt (this run's output). Exit status: 0 all parity checks within tolerance,
# 1 a parity check failed, 2 usage / missing fixtures, 124 over the time limit.
set -u
CPU=""
OUT=""
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU="--cpu" ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) OUT="$arg" ;;
  esac
done
[ -n "$OUT" ] || { echo "usage: bash bench/device_check.sh [--cpu] OUT" >&2; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python}"
LIMIT="${DEVICE_CHECK_LIMIT:-470}"  # seconds; the whole check must stay under 8 minutes
mkdir -p "$OUT"
timeout "$LIMIT" "$PYTHON" "$HERE/device_check.py" "$OUT" $CPU 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
