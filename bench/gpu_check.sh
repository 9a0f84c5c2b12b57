#!/usr/bin/env bash
# One prepared GPU session (ENGINEERING.md section 5): build with CUDA, run the CUDA and Triton tests,
# run the kernel benchmarks against their anchors, write everything to one folder.
#
#   bash bench/gpu_check.sh [OUT_DIR]          # default: bench/results
#
# Needs: an NVIDIA GPU, nvcc, torch with CUDA, triton, pybind11, scikit-build-core, pytest and
# pytest-benchmark; smplx, vector-quantize-pytorch and opencv for the anchors (missing ones: those
# tests skip, those benchmarks fail with a message and the script goes on). Each step has a time
# limit so that a hang cannot eat a short device lease; the exit status is the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).lower().replace('nvidia ', '').replace(' ', '-'))") \
  || { echo "no CUDA GPU visible to torch"; exit 1; }
day=$(date -u +%F)
failed=0
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/${name}_${gpu}_${day}.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}
step build 300 env BEINGH0_WITH_CUDA=ON python3 -m pip install -q --no-build-isolation --no-deps .
# `pytest` (not `python -m pytest`): the installed package is tested, not the source folder.
step tests 240 pytest -q -p no:cacheprovider tests/ops -k "cuda or triton"
step bench-grq 240 beingh0 bench grq --device cuda --baseline-max-n 262144 --json "$out/grq_${gpu}_${day}.json"
step bench-warp 180 beingh0 bench warp --device cuda --json "$out/warp_${gpu}_${day}.json"
step bench-mano 180 beingh0 bench mano --device cuda --json "$out/mano_${gpu}_${day}.json"
echo "failed steps: $failed; results in $out"
exit "$failed"
