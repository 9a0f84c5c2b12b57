#!/usr/bin/env bash
# Build, on a CPU machine, everything a short GPU lease needs (docs/gpu.md), into the git-ignored
# folder .whl/ that the device call carries:
#   - the CUDA-enabled beingh0 wheel for the GPU image's Python (3.12) and sm_90 ONLY (H100/H200;
#     the release default is 80;90), with -march=native OFF (the device's CPU is not this one);
#   - the test-only wheels the GPU image lacks (smplx, vector-quantize-pytorch and their pure-Python
#     dependencies), fetched once with `pip download --no-deps`.
# Never torch: the device has its own CUDA torch.
#
#   bash bench/build_gpu_wheel.sh    # env: GPU_PYTHON (default: a python3.12), GPU_ARCHS (default 90),
#                                    #      GPU_BUILD_VENV, GPU_BUILD_DIR (kept build tools and build folder in /tmp)
#
# nvcc (CUDA 13 here) must be on PATH; no GPU is needed. Prints the total size (the carry limit is 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
whl=.whl
mkdir -p "$whl"
archs=${GPU_ARCHS:-90}
pyver=3.12   # the GPU image's python3 (KINDS.md: Python 3.12.3)

# --- a Python 3.12 with the build tools (the module's ABI must match the device's Python)
py=${GPU_PYTHON:-}
if [ -z "$py" ]; then
  for c in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -V >/dev/null 2>&1; then py=$c; break; fi
  done
fi
[ -n "$py" ] || { echo "build_gpu_wheel: no python$pyver found (set GPU_PYTHON)"; exit 1; }
benv=${GPU_BUILD_VENV:-/tmp/beingh0-py312-build}
if [ ! -x "$benv/bin/python" ]; then
  "$py" -m venv "$benv"
  "$benv/bin/python" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12"
fi

# --- the beingh0 wheel (CUDA on, sm_$archs only)
rm -f "$whl"/beingh0-*.whl
t0=$SECONDS
# A kept build folder makes a rebuild after a small change incremental (the first build: ~5 min on 2 cores).
SKBUILD_BUILD_DIR=${GPU_BUILD_DIR:-/tmp/beingh0-gpu-build} \
BEINGH0_WITH_CUDA=ON BEINGH0_CPU_NATIVE=OFF CMAKE_ARGS="-DBEINGH0_CUDA_ARCHS=$archs" \
  nice "$benv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$whl" .
echo "build_gpu_wheel: beingh0 wheel (sm_$archs, python $pyver) built in $((SECONDS - t0)) s"

# --- check what was built: a cp312 module with CUDA code for every arch asked for
w=$(ls "$whl"/beingh0-*.whl)
case "$w" in *cp312-cp312*) ;; *) echo "build_gpu_wheel: $w is not a cp312 wheel"; exit 1;; esac
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$benv/bin/python" -m zipfile -e "$w" "$tmp"
so=$(ls "$tmp"/beingh0/_C*.so)
# The fatbin entries (header magic 0xBA55ED50; per entry: kind 1 = PTX, 2 = SASS; arch at byte 28):
# read here without cuobjdump, which this machine's CUDA lacks.
"$benv/bin/python" - "$so" "$archs" <<'PY'
import re, struct, sys
data, want = open(sys.argv[1], "rb").read(), sys.argv[2]
found = set()
for m in re.finditer(re.escape(struct.pack("<I", 0xBA55ED50)), data):
    _, hsize, size = struct.unpack_from("<HHQ", data, m.start() + 4)
    p = m.start() + hsize
    while p < m.start() + hsize + size:
        kind, _, ehs = struct.unpack_from("<HHI", data, p)
        found.add(({1: "compute", 2: "sm"}.get(kind, "?"), struct.unpack_from("<I", data, p + 28)[0]))
        p += ehs + struct.unpack_from("<Q", data, p + 8)[0]
print("build_gpu_wheel: CUDA code in _C:", " ".join(f"{k}_{a}" for k, a in sorted(found)))
need = {int(a.split("-")[0]) for a in want.split(";")}
missing = need - {a for k, a in found if k == "sm"}
sys.exit(f"build_gpu_wheel: no SASS for sm_{sorted(missing)}" if missing else 0)
PY

# --- test-only wheels (pure Python; versions pinned to what the CPU CI tests with)
need="smplx==0.1.28 vector-quantize-pytorch==1.34.1 einx==0.4.3 torch-einops-utils==0.2.9 frozendict==2.5.1 loguru==0.8.0"
for spec in $need; do
  name=${spec%%==*}; stem=${name//-/_}
  ls "$whl"/"${stem}"-*.whl >/dev/null 2>&1 && continue
  "$benv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$whl" "$spec"
done
echo "build_gpu_wheel: in $whl/:"
ls -l "$whl" | awk 'NR > 1 {printf "  %9d  %s\n", $5, $9}'
total=$(du -cb "$whl"/*.whl | tail -1 | cut -f1)
echo "build_gpu_wheel: total $((total / 1024)) KiB of the 64 MiB carry limit (plus the working tree)"
[ "$total" -lt $((48 * 1024 * 1024)) ] || { echo "build_gpu_wheel: too large to carry"; exit 1; }
