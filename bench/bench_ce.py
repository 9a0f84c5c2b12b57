"""pytest-benchmark: fused_linear_cross_entropy vs the naive head + F.cross_entropy, same inputs.

    pytest bench/bench_ce.py --benchmark-enable --benchmark-group-by=group

The JSON records with peak memory (ENGINEERING.md section 5) come from `beingh0 bench ce`; this file
gives pytest-benchmark's statistics for the same setup factory at a smaller shape (1,024 tokens x
32,768 vocabulary x hidden 896 on the CPU; the full 4,096 x 159,868 x 896 on a GPU), forward +
backward of the mean per-token loss.
"""
import pytest
import torch

from beingh0.benchmark.ce import (
    HIDDEN,
    TOKENS,
    VOCAB,
    _step_fn,
    liger_status,
    make_inputs,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
N, V, H = (1024, 32768, HIDDEN) if DEVICE == "cpu" else (TOKENS, VOCAB, HIDDEN)
IMPLS = [("naive", None), ("ours", "cpp")] + ([("ours", "triton"), ("liger", None)] if DEVICE == "cuda" else [])


@pytest.mark.parametrize("impl,backend", IMPLS, ids=lambda x: str(x))
def test_fused_linear_cross_entropy(benchmark, impl, backend):
    if impl == "liger" and not liger_status()[0]:
        pytest.skip(liger_status()[1])
    h, w, t = make_inputs(N, V, H, DEVICE)
    benchmark.group = f"fused_linear_cross_entropy fwd+bwd {N}x{V}x{H} {DEVICE}"
    step = _step_fn(impl, h, w, t, backend)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)

    def run():
        step()
        sync()

    benchmark(run)
