"""``beingh0 bench grq``: grq_encode per backend vs vector_quantize_pytorch, side by side, same inputs.

Job: the motion tokenizer's code search at the paper's shape: 2 groups x 8 layers x 512 codes,
latent dim 512 (256 per group), N latent vectors (N = 65,536 on CPU, up to 1,048,576 on GPU).
Anchor: ``vector_quantize_pytorch`` (the library the official release quantizes with), its
``GroupedResidualVQ`` in eval mode, loaded with the same codebooks; it computes one full N x K
distance matrix per layer and group in a Python loop. Also the reference backend (the same idea in
plain torch, one batched matrix per layer).

Records (ENGINEERING.md section 5): ``op = grq_encode``, ``baseline = vector_quantize_pytorch``,
``speedup_vs_baseline``; ``codes_equal_baseline`` (fraction of vectors whose G x L codes equal the
anchor's) stands in for ``max_abs_err_vs_reference`` (codes are integers; the float quantized sums
are compared too). FLOPs 2 N G L K Dg; bytes x + codes (+ codebook once).

Also the tokenizer's end-to-end encode throughput in hand-seconds per second: the ``paper``
tokenizer (part-level, D162, 128 tokens per hand-second; random weights, since speed does not depend
on them) encoding one 1-second window (a control step's latency) and a batch of them, with the
quantizer on each backend (its codebooks prepared once, as in inference).
"""
from __future__ import annotations

import os

import torch

from ..ops.grq import grq_encode, grq_encode_reference
from .common import default_backends, set_threads, print_table, stamp, time_fn, write_records

G, L, K, D = 2, 8, 512, 512


def make_inputs(N: int, device: str, dtype=torch.float32, seed: int = 0, groups=G, layers=L, codes=K, dim=D):
    """The one setup factory: codebooks (G, L, K, Dg) like a trained residual quantizer's (layer l at
    scale 0.6**l) and inputs x (N, G*Dg) near sums of codes, float32 on ``device``."""
    g = torch.Generator().manual_seed(seed)
    Dg = dim // groups
    scale = (0.6 ** torch.arange(layers, dtype=torch.float32)).view(1, layers, 1, 1)
    cb = torch.randn(groups, layers, codes, Dg, generator=g) * scale / Dg ** 0.5
    pick = torch.randint(0, codes, (N, groups, layers), generator=g)
    x = cb[torch.arange(groups)[None, :, None], torch.arange(layers)[None, None, :], pick].sum(2)
    x = (x + 0.02 * torch.randn(N, groups, Dg, generator=g) / Dg ** 0.5).reshape(N, dim)
    return x.to(device, dtype), cb.to(device)


def vqp_from_codebooks(codebooks: torch.Tensor):
    """vector_quantize_pytorch.GroupedResidualVQ in eval mode holding ``codebooks`` (G, L, K, Dg)."""
    try:
        from vector_quantize_pytorch import GroupedResidualVQ
    except ImportError:
        raise RuntimeError("the grq benchmark's baseline is vector_quantize_pytorch: pip install vector-quantize-pytorch "
                           "(a test/bench-only dependency)") from None
    groups, layers, codes, Dg = codebooks.shape
    m = GroupedResidualVQ(dim=groups * Dg, groups=groups, num_quantizers=layers, codebook_size=codes)
    with torch.no_grad():
        for g, rvq in enumerate(m.rvqs):
            for layer, vq in enumerate(rvq.layers):
                cb = vq._codebook
                if tuple(cb.embed.shape) != (1, codes, Dg):
                    raise RuntimeError(f"unexpected vector_quantize_pytorch codebook layout {tuple(cb.embed.shape)}")
                cb.embed.copy_(codebooks[g, layer][None])
                cb.embed_avg.copy_(codebooks[g, layer][None])
                cb.initted.fill_(True)
    return m.to(codebooks.device).eval()


def vqp_codes(model, x: torch.Tensor) -> torch.Tensor:
    """x (N, G*Dg) -> codes (N, G, L) from the vector_quantize_pytorch model."""
    with torch.no_grad():
        _, idx, _ = model(x[None])          # idx (G, 1, N, L)
    return idx[:, 0].permute(1, 0, 2).contiguous().long()


def tokenizer_throughput(backend: str, device: str, windows: int = 256, repeats=None) -> dict:
    """Hand-seconds per second of the paper tokenizer's ``encode_windows`` with the quantizer on ``backend``."""
    from ..tokenizer.config import TokenizerConfig
    from ..motion import WINDOW_PAD
    from ..tokenizer.model import MotionTokenizer

    torch.manual_seed(0)
    tok = MotionTokenizer(TokenizerConfig.preset("paper")).to(device).eval()
    w = torch.randn(windows, WINDOW_PAD, tok.spec.dim, device=device)
    old = os.environ.get("BEINGH0_BACKEND")
    os.environ["BEINGH0_BACKEND"] = backend
    try:
        with torch.no_grad():
            t = time_fn(lambda: tok.encode_windows(w), device, repeats=repeats)
    finally:
        if old is None:
            os.environ.pop("BEINGH0_BACKEND")
        else:
            os.environ["BEINGH0_BACKEND"] = old
    return {**t, "hand_seconds_per_s": windows / (t["median_ms"] * 1e-3)}


def run_grq_bench(device: str = "cpu", sizes=None, json_path=None, backends=None, repeats=None, threads=None,
                  baseline_max_n: int | None = None, tokenizer_windows: int = 256, codes=None,
                  quiet: bool = False) -> list[dict]:
    """Time grq_encode per backend, the reference and the anchor; one record per (impl, N, K).

    sizes default: 65,536 on CPU; 65,536, 262,144 and 1,048,576 on CUDA, all with K = 512 codes.
    ``codes``: further codebook sizes, run at the largest N (default: none on CPU; 2,048 and 8,192 on
    CUDA, where the peak memory must not grow with K: no N x K matrix). ``baseline_max_n``: run the
    (slow, memory-hungry) anchor and reference only up to this N (default: all).
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is visible to torch")
    sizes = sizes or ([65536] if device == "cpu" else [65536, 262144, 1048576])
    codes = codes if codes is not None else ([] if device == "cpu" else [2048, 8192])
    cases = [(N, K) for N in sizes] + [(max(sizes), k) for k in codes if k != K]
    if backends is None:
        backends = default_backends(device)
    n_threads = set_threads(threads)
    meta = {**stamp(device), "threads": n_threads}
    records = []
    from tqdm.auto import tqdm

    for N, nc in tqdm(cases, desc="grq bench", disable=quiet):
        x, cb = make_inputs(N, device, codes=nc)
        shape = [N, G, L, nc, D // G]
        flops = 2.0 * N * G * L * nc * (D // G)
        nbytes = float(x.numel() * 4 + N * G * L * 8 + cb.numel() * 4)
        common = dict(op="grq_encode", device=device, dtype="float32", shape=shape, flops=flops, bytes=nbytes,
                      baseline="vector_quantize_pytorch", **meta)
        run_base = baseline_max_n is None or N <= baseline_max_n
        base_ms, base_codes = None, None
        if run_base:
            model = vqp_from_codebooks(cb)
            t = time_fn(lambda: vqp_codes(model, x), device, repeats=repeats)
            base_codes = vqp_codes(model, x)
            base_ms = t["median_ms"]
            records.append(dict(impl="vector_quantize_pytorch", **t, gflops=flops / t["median_ms"] / 1e6,
                                codes_equal_baseline=1.0, max_abs_err_vs_reference=None, speedup_vs_baseline=1.0,
                                **common))
            del model
            t = time_fn(lambda: grq_encode_reference(x, cb), device, repeats=repeats)
            codes, _ = grq_encode_reference(x, cb)
            records.append(dict(impl="reference", **t, gflops=flops / t["median_ms"] / 1e6,
                                codes_equal_baseline=float((codes == base_codes).flatten(1).all(1).float().mean()),
                                max_abs_err_vs_reference=0.0, speedup_vs_baseline=base_ms / t["median_ms"], **common))
        q_ref = None
        for b in backends:
            fn = lambda: grq_encode(x, cb, backend=b, check=False)
            t = time_fn(fn, device, repeats=repeats)
            out = grq_encode(x, cb, backend=b, return_quantized=True)
            if q_ref is None:
                sub = slice(0, min(N, 4096))
                _, q_ref = grq_encode_reference(x[sub].double(), cb.double(), return_quantized=True)
            err = float((out.quantized[: q_ref.shape[0]].double() - q_ref).abs().max())
            rec = dict(impl=b, **t, gflops=flops / t["median_ms"] / 1e6, max_abs_err_vs_reference=err,
                       speedup_vs_baseline=base_ms / t["median_ms"] if base_ms else None, **common)
            if base_codes is not None:
                rec["codes_equal_baseline"] = float((out.codes == base_codes).flatten(1).all(1).float().mean())
            records.append(rec)
    # the tokenizer: one window (a control step's latency) and a batch (throughput)
    for nw in sorted({1, tokenizer_windows}):
        tok = []
        for b in ["reference", *backends]:
            t = tokenizer_throughput(b, device, windows=nw, repeats=repeats)
            tok.append(dict(op="tokenizer_encode", impl=b, device=device, dtype="float32", shape=[nw, 16, 162], **t,
                            baseline="reference", max_abs_err_vs_reference=None, **meta))
        for r in tok:
            r["speedup_vs_baseline"] = tok[0]["median_ms"] / r["median_ms"]
        records += tok
    if not quiet:
        print(f"device: {meta['device_name']}, {n_threads} threads")
        print_table(records)
        for r in records:
            if r["op"] == "tokenizer_encode":
                print(f"tokenizer encode ({r['impl']}, {r['shape'][0]} windows per call): "
                      f"{r['hand_seconds_per_s']:.0f} hand-seconds/s, {r['median_ms']:.2f} ms per call")
    if json_path:
        write_records(records, json_path)
    return records
