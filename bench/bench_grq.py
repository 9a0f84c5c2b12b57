"""pytest-benchmark: grq_encode per backend vs vector_quantize_pytorch and the reference, same inputs.

    pytest bench/bench_grq.py --benchmark-enable --benchmark-group-by=group

The ratio table and JSON records (ENGINEERING.md section 5) come from `beingh0 bench grq`; this file
gives pytest-benchmark's statistics for the same setup factory at a smaller N (8,192 vectors, the
paper's 2 groups x 8 layers x 512 codes, dim 512).
"""
import pytest
import torch

from beingh0.benchmark.grq import make_inputs, vqp_codes, vqp_from_codebooks
from beingh0.ops.backend import Backend, is_available
from beingh0.ops.grq import grq_encode, grq_encode_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
N = 8192 if DEVICE == "cpu" else 262144
IMPLS = ["vector_quantize_pytorch", "reference"] + [
    b.value for b in ((Backend.CUDA, Backend.TRITON) if DEVICE == "cuda" else (Backend.CPP,)) if is_available(b)[0]]


@pytest.mark.parametrize("impl", IMPLS)
def test_grq_encode(benchmark, impl):
    x, cb = make_inputs(N, DEVICE)
    benchmark.group = f"grq_encode N={N} 2x8x512 dim 512 {DEVICE}"
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    if impl == "vector_quantize_pytorch":
        pytest.importorskip("vector_quantize_pytorch")
        model = vqp_from_codebooks(cb)
        fn = lambda: vqp_codes(model, x)
    elif impl == "reference":
        fn = lambda: grq_encode_reference(x, cb)
    else:
        fn = lambda: grq_encode(x, cb, backend=impl, check=False)

    def run():
        fn()
        sync()

    benchmark(run)
