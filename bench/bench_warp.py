"""pytest-benchmark: warp_align per backend vs the official OpenCV chain and torch grid_sample, same inputs.

    pytest bench/bench_warp.py --benchmark-enable --benchmark-group-by=param:size

The ratio table and JSON records (ENGINEERING.md section 5) come from `beingh0 bench warp`; this
file gives pytest-benchmark's statistics for the same setup factory, at batch 1 (small on purpose).
"""
import pytest
import torch

from beingh0.benchmark.warp import OUT_HW, cv2_chain_fn, grid_sample_fn, make_inputs
from beingh0.ops import warp as warp_ops
from beingh0.ops.backend import Backend, is_available

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
IMPLS = ["cv2_chain", "torch_grid_sample"] + [b.value for b in ((Backend.CUDA, Backend.TRITON) if DEVICE == "cuda"
                                                                 else (Backend.CPP,)) if is_available(b)[0]]


@pytest.mark.parametrize("size", ["1920x1080", "3840x2160"])
@pytest.mark.parametrize("impl", IMPLS)
def test_warp_align(benchmark, impl, size):
    pytest.importorskip("cv2")
    wh = tuple(int(v) for v in size.split("x"))
    imgs, A = make_inputs(1, wh, DEVICE)
    benchmark.group = f"warp_align {size} -> 448x448 batch=1 {DEVICE}"
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    if impl == "cv2_chain":
        fn = cv2_chain_fn(imgs.cpu().numpy())
    elif impl == "torch_grid_sample":
        fn = grid_sample_fn(imgs, A)
    else:
        fn = lambda: warp_ops.warp_align(imgs, A, OUT_HW, backend=impl, check=False)

    def run():
        with torch.no_grad():
            fn()
        sync()

    benchmark(run)
