"""``beingh0 bench grq``: the motion tokenizer's code search (grq_encode) against vector_quantize_pytorch."""
from __future__ import annotations


def _bench_grq(a):
    from ..benchmark.grq import run_grq_bench

    run_grq_bench(device=a.device, sizes=a.n, json_path=a.json, backends=a.backends, repeats=a.repeats,
                  threads=a.threads, baseline_max_n=a.baseline_max_n, tokenizer_windows=a.tokenizer_windows,
                  codes=a.codes)


def register(sub, bench) -> None:
    s = bench.add_parser(
        "grq", help="grq_encode (2 groups x 8 layers x 512 codes, dim 512) vs vector_quantize_pytorch; tokenizer encode rate",
        description="Times grq_encode per backend next to vector_quantize_pytorch's GroupedResidualVQ (eval mode, same "
                    "codebooks) and the plain-torch reference on identical inputs, checks that the codes agree, and "
                    "measures the paper tokenizer's encode throughput in hand-seconds per second.")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--n", type=int, nargs="+", default=None,
                   help="numbers of latent vectors (default: 65536 on cpu; 65536 262144 1048576 on cuda)")
    s.add_argument("--codes", type=int, nargs="*", default=None,
                   help="further codebook sizes K, run at the largest N (default: none on cpu; 2048 8192 on cuda, "
                        "to show that peak memory does not grow with K)")
    s.add_argument("--backends", nargs="+", default=None, help="default: cpp on cpu; cuda, triton on cuda (those available)")
    s.add_argument("--threads", type=int, default=None, help="threads for ours and torch (default: OpenMP's)")
    s.add_argument("--baseline-max-n", type=int, default=None,
                   help="run the anchor and the reference only up to this N (default: all sizes)")
    s.add_argument("--tokenizer-windows", type=int, default=256, help="1-second windows per tokenizer encode call")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: adaptive)")
    s.add_argument("--json", default=None, help="write the records (ENGINEERING.md section 5) to this JSON file")
    s.set_defaults(fn=_bench_grq)
