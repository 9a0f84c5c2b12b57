#!/usr/bin/env bash
# One short GPU lease (docs/gpu.md; ENGINEERING.md sections 5-6): install the prepared wheels, run
# the CUDA tests, the Triton tests (their own step: Triton compiles on first use) and the kernel
# benchmarks against their anchors; every step time-limited, the whole run inside a budget.
#
#   bash bench/build_gpu_wheel.sh            # here, on a CPU machine: .whl/ (CUDA wheel for sm_90 + test wheels)
#   bash bench/gpu_check.sh                  # on the GPU machine (device tool: carry [".whl"])
#   bash bench/gpu_check.sh --dry-run        # here: builds the wheels and runs every step but the GPU ones
#
# Options: --dry-run; --no-build (dry run without rebuilding .whl/); OUT_DIR (default bench/results,
# a temporary folder for --dry-run). Env: GPU_CHECK_BUDGET (seconds for all steps, default 420).
# Never installs torch: the GPU image has its own CUDA torch, and the GPU machine has no network.
# Logs `<step>_<gpu>_<date>.log`, the benchmarks' JSON `<op>_<gpu>_<date>.json`, pytest's JUnit XML and
# `summary_<gpu>_<date>.json` go to OUT_DIR; where the device tool's $OUT is set, they are also packed
# into $OUT/gpu_check_<gpu>_<date>.tar.gz (the tool brings back at most 8 files). Exit status: the
# number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0 build=1 out=""
for a in "$@"; do
  case "$a" in
    --dry-run) dry=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "gpu_check: unknown option $a"; exit 2 ;;
    *) out=$a ;;
  esac
done
T0=$SECONDS
budget=${GPU_CHECK_BUDGET:-420}
day=$(date -u +%F)
export PYTHONUNBUFFERED=1
py=python3
site=$(mktemp -d /tmp/beingh0-site.XXXXXX)
if [ "$dry" = 1 ]; then
  gpu=dry-run
  out=${out:-$(mktemp -d /tmp/gpu_check_dry.XXXXXX)}
else
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr 'A-Z ' 'a-z-' | sed 's/^nvidia-//')
  [ -n "$gpu" ] || { echo "gpu_check: no NVIDIA GPU (nvidia-smi); use --dry-run on a CPU machine"; exit 1; }
  out=${out:-bench/results}
fi
mkdir -p "$out"
steps_json="$out/.steps_${gpu}_${day}.jsonl"
: >"$steps_json"
failed=0
export py site out gpu day

step() {  # step NAME LIMIT_SECONDS CMD...: time-limited, logged; skipped when the budget is spent
  local name=$1 limit=$2; shift 2
  local left=$((budget - (SECONDS - T0)))
  local log="$out/${name}_${gpu}_${day}.log"
  if [ "$left" -lt 15 ]; then
    echo "=== $name: SKIPPED (budget of ${budget}s spent)" | tee "$log"
    echo "{\"step\": \"$name\", \"status\": \"skipped\", \"limit_s\": $limit, \"seconds\": 0, \"exit\": null}" >>"$steps_json"
    failed=$((failed + 1)); return
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "=== $name (limit ${limit}s, ${left}s of the budget left)"
  local t0=$SECONDS
  # bash -c: the step may be one of this script's (exported) functions
  timeout -k 5 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]} status=ok
  [ "$rc" -eq 0 ] || status=failed
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || status=timeout
  echo "=== $name: $status (exit $rc) after $((SECONDS - t0)) s"
  echo "{\"step\": \"$name\", \"status\": \"$status\", \"limit_s\": $limit, \"seconds\": $((SECONDS - t0)), \"exit\": $rc}" >>"$steps_json"
  [ "$status" = ok ] || failed=$((failed + 1))
}

gpu_step() {  # a step that needs the GPU: in a dry run, say what would run
  if [ "$dry" = 1 ]; then
    echo "=== $1 (limit $2 s): GPU step, not run (--dry-run): ${*:3}"
    echo "{\"step\": \"$1\", \"status\": \"dry-run\", \"limit_s\": $2, \"seconds\": 0, \"exit\": null}" >>"$steps_json"
  else
    step "$@"
  fi
}

# ---------------------------------------------------------------- 1. wheels (dry run: built here)
if [ "$dry" = 1 ]; then
  if [ "$build" = 1 ]; then
    budget=$((budget + 900)); step build-wheels 900 bash bench/build_gpu_wheel.sh
    budget=$((budget - 900)); T0=$SECONDS   # the budget is the GPU machine's: it starts after the build
  fi
  # the Python 3.12 that built the wheel stands in for the GPU image's python3 (3.12) for the install
  py=${GPU_BUILD_VENV:-/tmp/beingh0-py312-build}/bin/python
fi
ls .whl/beingh0-*.whl >/dev/null 2>&1 || { echo "gpu_check: no .whl/beingh0-*.whl: run bash bench/build_gpu_wheel.sh here first"; exit 1; }
carry_check() {  # what a device call sends: the tree (tracked + untracked, not ignored) and .whl/
  local tree whl
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  whl=$(du -cb .whl/*.whl | tail -1 | cut -f1)
  echo "working tree $((tree / 1024)) KiB + .whl $((whl / 1024)) KiB = $(((tree + whl) / 1024)) KiB (limit 65536 KiB)"
  ls -l .whl/*.whl
  [ $((tree + whl)) -lt $((64 * 1024 * 1024)) ]
}
export -f carry_check
[ "$dry" = 0 ] || step carry-size 30 carry_check

# ---------------------------------------------------------------- 2. install (no index, no deps, never torch)
install() {
  if ls .whl/torch-* >/dev/null 2>&1; then echo "refusing to install a torch wheel"; return 1; fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
}
export -f install
step install 60 install
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"

# ---------------------------------------------------------------- 3. what is there
if [ "$dry" = 1 ]; then
  # no torch for Python 3.12 here: load the compiled module alone (it must import with no CUDA driver)
  step env 30 "$py" -c "
import glob, importlib.machinery as m, importlib.util as u
p = glob.glob('$site/beingh0/_C*.so')[0]
spec = u.spec_from_file_location('beingh0._C', p, loader=m.ExtensionFileLoader('beingh0._C', p))
C = u.module_from_spec(spec); spec.loader.exec_module(C)
cuda = sorted(n for n in dir(C) if n.endswith('_cuda'))
print('module', p); print('has_cuda', C.has_cuda(), 'has_openmp', C.has_openmp()); print('CUDA entry points', cuda)
assert C.has_cuda() and cuda, 'the wheel has no CUDA kernels'"
else
  step env 60 "$py" -P -c "
import torch, beingh0, beingh0._C as C
from beingh0.ops.backend import availability
print('beingh0', beingh0.__file__, 'has_cuda', C.has_cuda())
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
try:
    import triton; print('triton', triton.__version__)
except ImportError as e: print('no triton', e)
for b, (ok, why) in availability().items(): print(f'{b.value:10s} {ok} {why}')
assert C.has_cuda() and torch.cuda.is_available()"
  nvidia-smi >"$out/nvidia-smi_${gpu}_${day}.log" 2>&1 || true
fi

# ---------------------------------------------------------------- 4. tests (installed package: python -P, not the source folder)
tests() {  # tests NAME -k EXPR
  "$py" -P -m pytest -q -p no:cacheprovider tests/ops -k "$2" --junitxml="$out/$1_${gpu}_${day}.xml"
}
export -f tests
export TRITON_CACHE_DIR="$site/.triton"   # the benchmarks reuse what the Triton tests compiled
gpu_step tests-cuda 120 tests tests-cuda "cuda and not triton"
# Triton compiles every kernel variant on first use (seconds each): its own step and limit.
gpu_step tests-triton 150 tests tests-triton "triton"
if [ "$dry" = 1 ]; then  # the selections collect (source tree, this machine's Python)
  step collect 120 env PYTHONPATH="$PWD" python3 -m pytest -qq -p no:cacheprovider --collect-only tests/ops \
    -k "cuda or triton"
fi

# ---------------------------------------------------------------- 5. benchmarks against their anchors
bench() { "$py" -P -m beingh0 bench "$@"; }
export -f bench
gpu_step bench-mano 60 bench mano --device cuda --batch 1 1024 65536 --json "$out/mano_${gpu}_${day}.json"
gpu_step bench-mano-backward 60 "$py" -P -c "
from beingh0.benchmark.mano import run_mano_backward_bench
run_mano_backward_bench(device='cuda', batches=[1, 1024, 65536], json_path='$out/mano_backward_${gpu}_${day}.json')"
gpu_step bench-grq 90 bench grq --device cuda --baseline-max-n 262144 --json "$out/grq_${gpu}_${day}.json"
gpu_step bench-warp 60 bench warp --device cuda --json "$out/warp_${gpu}_${day}.json"
gpu_step bench-ce 60 bench ce --device cuda --json "$out/ce_${gpu}_${day}.json"
# the 1B pretraining step needs transformers on the device image (not carried: too large); skipped without it
if "$py" -c "import transformers, tokenizers" >/dev/null 2>&1 || [ "$dry" = 1 ]; then
  gpu_step bench-pretrain-1b 90 bench pretrain --device cuda --config 1b --json "$out/pretrain_${gpu}_${day}.json"
else
  echo "=== bench-pretrain-1b: skipped (transformers/tokenizers not installed on this machine)"
fi
# deployment: the 1B policy stand-in (bf16, random weights) end to end -- image + state in, action chunk out --
# eager vs torch.compile + CUDA graphs (target p50 <= 8 ms, p99 <= 12 ms, >= 5x eager) and ONNX Runtime's
# CUDA provider when installed (beingh0/benchmark/deploy.py); needs transformers like the step above
if "$py" -c "import transformers, tokenizers" >/dev/null 2>&1 || [ "$dry" = 1 ]; then
  gpu_step bench-deploy-1b 240 env OMP_WAIT_POLICY=PASSIVE "$py" -P -m beingh0.benchmark.deploy --device cuda --json "$out/policy_e2e_${gpu}_${day}.json"
else
  echo "=== bench-deploy-1b: skipped (transformers/tokenizers not installed on this machine)"
fi

# ---------------------------------------------------------------- 6. summary (and $OUT for the device tool)
"$py" - "$steps_json" "$out/summary_${gpu}_${day}.json" "$gpu" "$day" "$dry" "$((SECONDS - T0))" "$budget" <<'EOF'
import json, sys
src, dst, gpu, day, dry, total, budget = sys.argv[1:]
import os, xml.etree.ElementTree as ET
steps = [json.loads(line) for line in open(src) if line.strip()]
for st in steps:  # pytest's counts: a GPU test that skipped on the GPU is a finding too
    xml = os.path.join(os.path.dirname(dst), f"{st['step']}_{gpu}_{day}.xml")
    if os.path.exists(xml):
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        st["pytest"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
json.dump({"gpu": gpu, "date": day, "dry_run": dry == "1", "total_s": int(total), "budget_s": int(budget),
           "wheel": "beingh0 built for sm_90 only (bench/build_gpu_wheel.sh)", "steps": steps}, open(dst, "w"), indent=1)
EOF
rm -f "$steps_json"
if [ "$dry" = 0 ] && [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  (cd "$out" && tar czf "$OUT/gpu_check_${gpu}_${day}.tar.gz" ./*_"${gpu}_${day}".*) && cp "$out/summary_${gpu}_${day}.json" "$OUT/"
fi
rm -rf "$site"
echo "gpu_check: $failed failed step(s) in $((SECONDS - T0)) s (budget ${budget}s); results in $out"
exit "$failed"
