#!/usr/bin/env bash
# The whole GPU benchmark in one command: our path vs the float32 eager baseline.
#
#   bash benchmarks/gpu_suite.sh OUT_DIR [extra `unet-zoo benchmark` options, e.g. --train-batch 16]
#
# Writes into OUT_DIR (at most 8 files, all at most one folder down):
#   nvidia-smi.txt        the GPU, driver and clocks
#   smoke/results.{json,md}  a tiny smoke run first (catches CUDA / torch.compile errors in ~1 min)
#   results.json, results.md the full suite: training step of `original` (572 px, batch 8), inference
#                        of 4096^2 images with `original` and `padded`, with and without TTA, augmentation,
#                        a torch.profiler table of our training step, measured bf16/fp32 matmul rates
#   log.txt              progress log of the full run
#   reproduce/results.{json,md}  only with REPRODUCE=1 (and DATA_DIR=<ISBI folder> unless $UNET_ZOO_DATA_DIR
#                        is set): wall time and held-out scores of `unet-zoo reproduce isbi --variant original`
#                        (`unet-zoo benchmark --only reproduce`; long: not within a 10-minute lease call)
# Expects the package importable (installs it editable, without dependencies, if it is not).
set -euo pipefail

out="${1:?usage: bash benchmarks/gpu_suite.sh OUT_DIR [unet-zoo benchmark options]}"
shift
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.."

python3 -c "import unet_zoo" 2>/dev/null || python3 -m pip install -q --no-deps -e .
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible: this suite needs a GPU')"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available" > "$out/nvidia-smi.txt"

echo "== smoke run (tiny sizes, checks the CUDA and compile paths)"
python3 -m unet_zoo benchmark --device cuda --smoke --out "$out/smoke" > /dev/null

echo "== full suite"
python3 -m unet_zoo benchmark --device cuda --profile --out "$out" "$@" 2>&1 | tee "$out/log.txt"

if [[ "${REPRODUCE:-0}" == "1" ]]; then
  echo "== unet-zoo reproduce isbi (wall time)"
  python3 -m unet_zoo benchmark --device cuda --only reproduce --reproduce-full --reproduce-variant original \
    ${DATA_DIR:+--data-dir "$DATA_DIR"} --out "$out/reproduce" 2>&1 | tail -8
fi
echo "results: $out/results.md"
