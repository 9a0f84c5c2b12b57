"""``beingh0 bench {mano,grq,warp,ce,data,pretrain,generate,policy}``: kernels, the loader and a training step against their anchors (beingh0.benchmark)."""
from __future__ import annotations

from .common import parse_size, user_path

HELP = "kernel and loader benchmarks against their anchors (JSON records, ENGINEERING.md section 5)"
JSON_HELP = "write the records (ENGINEERING.md section 5) to this JSON file"


def _bench_mano(a):
    from ..benchmark.mano import run_mano_backward_bench, run_mano_bench

    run = run_mano_backward_bench if a.backward else run_mano_bench
    run(device=a.device, batches=a.batch, json_path=a.json, backends=a.backends, repeats=a.repeats)


def _bench_grq(a):
    from ..benchmark.grq import run_grq_bench

    run_grq_bench(device=a.device, sizes=a.n, json_path=a.json, backends=a.backends, repeats=a.repeats,
                  threads=a.threads, baseline_max_n=a.baseline_max_n, tokenizer_windows=a.tokenizer_windows,
                  codes=a.codes)


def _bench_warp(a):
    from ..benchmark.warp import run_warp_bench

    run_warp_bench(device=a.device, sizes=[parse_size(s) for s in a.size], batches=a.batch, json_path=a.json,
                   backends=a.backends, repeats=a.repeats, threads=a.threads, chain_max_batch=a.chain_max_batch)


def _bench_ce(a):
    from ..benchmark.ce import run_ce_bench

    run_ce_bench(device=a.device, tokens=a.tokens, vocab=a.vocab, hidden=a.hidden, json_path=a.json, impls=a.impls,
                 backends=a.backends, repeats=a.repeats, threads=a.threads, timeout_s=a.timeout,
                 rounds=a.rounds)


def _bench_data(a):
    from ..benchmark.data import run_data_bench

    run_data_bench(episodes=a.episodes, seconds=a.seconds, workers=a.workers, kinds=a.kinds, batch=a.batch,
                   min_time_s=a.min_time, repeats=a.repeats, json_path=a.json)


def _bench_pretrain(a):
    from ..benchmark.pretrain import run_pretrain_bench

    run_pretrain_bench(device=a.device, config=a.config, batch=a.batch, seq_len=a.seq_len, precision=a.precision,
                       repeats=a.repeats, json_path=a.json, threads=a.threads, baseline=not a.no_baseline,
                       gradient_checkpointing=a.gradient_checkpointing)


def _bench_generate(a):
    from ..benchmark.generate import run_generate_bench

    run_generate_bench(device=a.device, config=a.config, seconds=a.seconds, hands=a.hands, batch=a.batch,
                       repeats=a.repeats, json_path=a.json, threads=a.threads, baseline=not a.no_baseline)


def _bench_policy(a):
    if a.runtimes:  # end to end per deploy runtime (eager, compiled, onnxruntime, tensorrt)
        from ..benchmark.deploy import run_deploy_bench

        backends = None if a.runtimes == ["all"] else a.runtimes
        run_deploy_bench(policy="tiny-policy", device=a.device, backends=backends, repeats=a.repeats, json_path=a.json)
        return
    from ..benchmark.policy import run

    run(repeats=a.repeats, threads=a.threads, device=a.device, json_path=a.json)


def register(sub) -> None:
    bench = sub.add_parser("bench", help=HELP, description="Each benchmark times our backends and the anchor side by "
                           "side on the same inputs and can write one JSON record per (op, backend, device, shape)."
                           ).add_subparsers(dest="bench_verb", required=True, metavar="OP")

    s = bench.add_parser("mano", help="mano_forward / mano_joints vs smplx, side by side (--backward: forward+backward)")
    s.add_argument("--backward", action="store_true",
                   help="time forward+backward (full, keypoint-only loss, mano_joints) against smplx with autograd")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--batch", type=int, nargs="+", default=[1, 1024, 65536], help="batch sizes (default: 1 1024 65536)")
    s.add_argument("--backends", nargs="+", default=None, help="default: every available backend for the device")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: adaptive)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_mano)

    s = bench.add_parser(
        "grq", help="grq_encode (2 groups x 8 layers x 512 codes, dim 512) vs vector_quantize_pytorch; tokenizer encode rate",
        description="Times grq_encode per backend next to vector_quantize_pytorch's GroupedResidualVQ (eval mode, same "
                    "codebooks) and the plain-torch reference on identical inputs, checks that the codes agree, and "
                    "measures the paper tokenizer's encode throughput in hand-seconds per second.")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--n", type=int, nargs="+", default=None,
                   help="numbers of latent vectors (default: 65536 on cpu; 65536 262144 1048576 on cuda)")
    s.add_argument("--codes", type=int, nargs="*", default=None,
                   help="further codebook sizes K, run at the largest N (default: none on cpu; 2048 8192 on cuda, "
                        "to show that peak memory does not grow with K)")
    s.add_argument("--backends", nargs="+", default=None, help="default: cpp on cpu; cuda, triton on cuda (those available)")
    s.add_argument("--threads", type=int, default=None, help="threads for ours and torch (default: OpenMP's)")
    s.add_argument("--baseline-max-n", type=int, default=None,
                   help="run the anchor and the reference only up to this N (default: all sizes)")
    s.add_argument("--tokenizer-windows", type=int, default=256, help="1-second windows per tokenizer encode call (default: 256)")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: adaptive)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_grq)

    s = bench.add_parser(
        "warp", help="warp_align (input -> 448x448 normalised) vs the official 3-pass OpenCV chain and torch grid_sample",
        description="Times warp_align per backend next to two anchors on identical inputs: cv2_chain (the official "
                    "release's resize to 3840x2160, warpPerspective, resize to 448x448, normalise; on the CPU with the "
                    "same thread count) and torch_grid_sample (affine_grid + grid_sample + normalise, same device).")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--size", nargs="+", default=["1920x1080", "3840x2160"], help="input sizes WxH (default: 1920x1080 3840x2160)")
    s.add_argument("--batch", type=int, nargs="+", default=None,
                   help="batch sizes (default: 1 64 on cuda; 1 8 on cpu, since 64 4K frames are 1.6 GB and the CPU anchor "
                        "takes minutes per repeat on a few cores)")
    s.add_argument("--backends", nargs="+", default=None, help="default: cpp on cpu; cuda, triton on cuda (those available)")
    s.add_argument("--threads", type=int, default=None, help="threads for ours, OpenCV and torch (default: OpenMP's)")
    s.add_argument("--chain-max-batch", type=int, default=None,
                   help="run the cv2_chain anchor only up to this batch (default: all on cpu, 8 on cuda)")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: adaptive)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_warp)

    s = bench.add_parser(
        "ce", help="fused_linear_cross_entropy (4096 tokens x 159868 vocab x 896 hidden) vs naive head + "
                   "F.cross_entropy and Liger-Kernel; time and peak memory, forward + backward",
        description="Times the loss head's forward + backward (mean of the per-token loss) for ours, the naive "
                    "head matmul + F.cross_entropy(reduction='none') and Liger-Kernel's fused linear cross-entropy "
                    "(where it imports: CUDA only) on identical float32 inputs, with the peak memory each takes above "
                    "the inputs (CPU: each in a fresh process, peak RSS; CUDA: the caching allocator's peak). The "
                    "naive path at the default shape needs about 8 GB and minutes per step on a 2-core CPU.")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--tokens", type=int, default=4096, help="rows N (default: 4096)")
    s.add_argument("--vocab", type=int, default=159868, help="vocabulary V (default: 159868 = InternVL3 + 8194 motion)")
    s.add_argument("--hidden", type=int, default=896, help="hidden size H (default: 896, InternVL3-1B)")
    s.add_argument("--impls", nargs="+", choices=["ours", "naive", "liger"], default=["ours", "naive", "liger"],
                   help="(default: all three)")
    s.add_argument("--backends", nargs="+", default=None, help="ours' backends (default: cpp on cpu; triton cpp on cuda)")
    s.add_argument("--threads", type=int, default=None, help="torch threads (default: OpenMP's)")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats after one warm-up (default: adaptive)")
    s.add_argument("--rounds", type=int, default=1,
                   help="measure every implementation once per round, alternating the order, and report the median "
                        "over rounds (a shared machine's load drifts; default: 1)")
    s.add_argument("--timeout", type=float, default=3600, help="CPU: seconds per implementation's process (default: 3600)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_ce)

    s = bench.add_parser("data", help="data loader samples/s (motion-only and image samples, 0/1/2 workers)")
    s.add_argument("--episodes", type=int, default=48, help="random episodes in the temporary dataset (default: 48)")
    s.add_argument("--seconds", type=float, default=10.0, help="seconds per episode (default: 10)")
    s.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers (default: 0 1 2)")
    s.add_argument("--kinds", nargs="+", choices=["motion", "image"], default=["motion", "image"], help="(default: motion image)")
    s.add_argument("--batch", type=int, default=64, help="(default: 64)")
    s.add_argument("--min-time", type=float, default=3.0, help="seconds per timed run (default: 3)")
    s.add_argument("--repeats", type=int, default=3, help="timed runs per case; the median is reported (default: 3)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_data)

    s = bench.add_parser("pretrain", help="VLA pretraining step: tokens/s and MFU (ours vs transformers' full-logits loss)")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--config", choices=["tiny", "1b", "8b", "14b"], default="tiny", help="preset, random init (default: tiny)")
    s.add_argument("--batch", type=int, default=None, help="sequences per step (default: 8 tiny, 4 otherwise)")
    s.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: 512 tiny, 4096 otherwise)")
    s.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="(default: bf16 on cuda, fp32 on cpu)")
    s.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass")
    s.add_argument("--no-baseline", action="store_true", help="skip the transformers-loss anchor")
    s.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    s.add_argument("--repeats", type=int, default=None, help="timed steps (default: adaptive)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_pretrain)

    s = bench.add_parser("generate", help="VLA motion decoding: motion tokens/s with and without the KV cache, time to first block")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--config", choices=["tiny", "1b", "8b", "14b"], default="tiny", help="preset, random init (default: tiny)")
    s.add_argument("--seconds", type=int, default=1, help="seconds of motion per sample (default: 1)")
    s.add_argument("--hands", choices=["both", "left", "right"], default="right", help="(default: right)")
    s.add_argument("--batch", type=int, default=1, help="prompts per batch (default: 1)")
    s.add_argument("--no-baseline", action="store_true", help="skip the no-KV-cache baseline")
    s.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    s.add_argument("--repeats", type=int, default=None, help="timed generations (default: adaptive)")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_generate)
    s = bench.add_parser("policy", help="policy forward latency (image + state -> action chunk, preprocessing included), tiny")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    s.add_argument("--repeats", type=int, default=None, help="timed calls (default: adaptive)")
    s.add_argument("--runtimes", nargs="+", default=None, metavar="RUNTIME",
                   help="time the policy end to end through these deploy runtimes instead (eager compiled onnxruntime "
                        "tensorrt, or all available): the tiny BeingH0Policy exported, preprocessing included")
    s.add_argument("--json", type=user_path, default=None, help=JSON_HELP)
    s.set_defaults(fn=_bench_policy)
