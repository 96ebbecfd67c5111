#!/usr/bin/env bash
# Train one published checkpoint's GPU recipe within a wall-clock budget per call, resumably.
#
#   bash benchmarks/gpu_reproduce.sh VARIANT OUT_DIR      # VARIANT: original, padded or small
#
# Each call trains for at most $BUDGET_S seconds (default 540) and then sends SIGTERM: the trainer
# finishes the step, checkpoints it and exits 143. Call the script again and it continues with
# `--resume latest` until training, evaluation and the card are done (useful where jobs are limited
# in time). It then packs cards/isbi-<variant>/ into OUT_DIR as a tar cut into 15 MB parts, plus
# scores.json to read at a glance. To unpack and check the card elsewhere:
#
#   cat OUT_DIR/isbi-original.tar.part-* | tar -x -C cards/
#   python3 -c "import unet_zoo; unet_zoo.from_pretrained('./cards/isbi-original')"   # checks the sha256 in config.json
#
# Data: $UNET_ZOO_DATA_DIR, else .device-carry/isbi2012 (a copy of the ISBI 2012 folder inside the checkout).
# Exit codes: 0 = card packed in OUT_DIR; 3 = training stopped at the budget, call again; other = error.
# CPU check of the script itself: DEVICE=cpu QUICK=1 bash benchmarks/gpu_reproduce.sh small /tmp/out
set -uo pipefail

variant="${1:?usage: bash benchmarks/gpu_reproduce.sh original|padded|small OUT_DIR}"
out="${2:?usage: bash benchmarks/gpu_reproduce.sh original|padded|small OUT_DIR}"
budget="${BUDGET_S:-540}"
cd "$(dirname "$0")/.."
mkdir -p "$out"

python3 -c "import unet_zoo" 2>/dev/null || python3 -m pip install -q --no-deps -e . || exit 1
export UNET_ZOO_DATA_DIR="${UNET_ZOO_DATA_DIR:-$PWD/.device-carry/isbi2012}"
[[ -f "$UNET_ZOO_DATA_DIR/train-volume.tif" ]] || { echo "no ISBI data in $UNET_ZOO_DATA_DIR (see this script's header)"; exit 1; }

args=(reproduce isbi --variant "$variant" --device "${DEVICE:-cuda}")
name="isbi-$variant"
if [[ "${QUICK:-0}" == "1" ]]; then
  args=(reproduce isbi --quick --device "${DEVICE:-cuda}" --out "cards/$name")
  name="isbi-quick"
fi
if compgen -G "runs/$name-*/checkpoint.safetensors" > /dev/null; then
  args+=(--resume latest)
  echo "== resuming the newest runs/$name-* run"
fi

start=$(date +%s)
timeout --signal=TERM --kill-after=60 "$budget" python3 -m unet_zoo "${args[@]}" 2>&1 | tee -a "$out/log.txt"
rc=${PIPESTATUS[0]}
echo "== unet-zoo ${args[*]}: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$out/log.txt"
if [[ $rc -eq 143 || $rc -eq 124 ]]; then
  echo "== stopped at the time budget; call this script again to continue"
  exit 3
fi
[[ $rc -eq 0 ]] || exit "$rc"

card="cards/isbi-$variant"
cp "$card/scores.json" "$out/scores.json"
tar -C cards -cf - "isbi-$variant" | split -b 15000000 -d - "$out/isbi-$variant.tar.part-"
ls -l "$out"
