"""``beingh0 bench ce``: fused_linear_cross_entropy vs the naive head + F.cross_entropy and Liger-Kernel.

Job: the pretraining loss's output head at InternVL3-1B's shape: 4,096 tokens x 159,868 vocabulary
(151,674 text + 8,194 motion ids) x hidden 896, float32, forward + backward of the mean per-token
loss (``loss.mean().backward()``, gradients of hidden and weight; every token a target).

Implementations, same inputs:
* ``ours``: ``fused_linear_cross_entropy`` on the device's backend (CPU: the chunked torch path,
  gradient-in-forward mode; CUDA: the Triton forward and backward kernels, and the chunked path).
* ``naive``: ``F.cross_entropy(hidden @ weight.T, targets, reduction='none').mean()`` (the baseline).
* ``liger``: Liger-Kernel's ``LigerFusedLinearCrossEntropyLoss`` (mean reduction), where it imports
  (it needs Triton on a GPU: never on the CPU; the record then says why it is missing).

Peak memory (``peak_mem_mb``): the memory the call takes above the inputs already resident (hidden,
weight, targets), gradients included. CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation
before the call. CPU: each implementation runs in a fresh process; after the inputs are made, the
kernel's peak-RSS mark is reset (``echo 5 > /proc/self/clear_refs``), and ``peak_mem_mb`` is VmHWM
minus VmRSS at that point: resident memory actually touched, measured by the kernel (glibc's and
torch's allocators are not consulted). ``max_abs_err_vs_reference``: the per-token loss of the first
64 rows against the float64 reference.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

TOKENS, VOCAB, HIDDEN = 4096, 159_868, 896
IMPLS = ("ours", "naive", "liger")
_REF_ROWS = 64


def make_inputs(N: int, V: int, H: int, device: str, dtype=torch.float32, seed: int = 0):
    """hidden (N, H), weight (V, H) (LM-head-like scale: logits of order 1), targets (N,), made in place
    (no temporaries, so the CPU memory measurement starts from the inputs alone)."""
    g = torch.Generator(device=device).manual_seed(seed)
    h = torch.empty(N, H, device=device, dtype=dtype).normal_(generator=g)
    w = torch.empty(V, H, device=device, dtype=dtype).normal_(std=H ** -0.5, generator=g)
    t = torch.empty(N, device=device, dtype=torch.int64).random_(0, V, generator=g)
    return h.requires_grad_(), w.requires_grad_(), t


def liger_status() -> tuple[bool, str]:
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss  # noqa: F401
    except Exception as e:  # noqa: BLE001  (ImportError, or Triton failing without a GPU)
        return False, f"liger_kernel does not import here ({type(e).__name__}: {str(e)[:120]})"
    if not torch.cuda.is_available():
        return False, "liger_kernel needs a CUDA GPU (Triton kernels)"
    return True, "liger_kernel"


def _step_fn(impl: str, h, w, t, backend: str | None):
    import torch.nn.functional as F

    from ..ops.ce import fused_linear_cross_entropy

    if impl == "ours":
        def loss():
            return fused_linear_cross_entropy(h, w, t, backend=backend, check=False).mean()
    elif impl == "naive":
        def loss():
            return F.cross_entropy(h @ w.T, t, reduction="none").mean()
    elif impl == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        mod = LigerFusedLinearCrossEntropyLoss()

        def loss():
            return mod(w, h, t)
    else:
        raise ValueError(f"unknown impl {impl!r}; choose from {IMPLS}")

    def step():
        h.grad = None
        w.grad = None
        loss().backward()
    return step


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _max_err(impl, h, w, t, backend) -> float | None:
    """Per-token loss of the first rows vs the float64 reference (liger returns only the mean: None)."""
    import torch.nn.functional as F

    from ..ops.ce import (
        fused_linear_cross_entropy,
        fused_linear_cross_entropy_reference,
    )

    n = min(_REF_ROWS, h.shape[0])
    hs, ts = h.detach()[:n], t[:n]
    with torch.no_grad():
        ref = fused_linear_cross_entropy_reference(hs.double(), w.detach().double(), ts)
        if impl == "ours":
            got = fused_linear_cross_entropy(hs, w.detach(), ts, backend=backend)
        elif impl == "naive":
            got = F.cross_entropy(hs @ w.detach().T, ts, reduction="none")
        else:
            return None
    return float((got.double() - ref).abs().max())


def measure(impl: str, N: int, V: int, H: int, device: str, backend: str | None = None, repeats: int | None = None,
            threads: int | None = None) -> dict:
    """Time one implementation (forward + backward) and measure its peak memory; see the module docstring."""
    from .common import set_threads, time_fn

    set_threads(threads)
    h, w, t = make_inputs(N, V, H, device)
    step = _step_fn(impl, h, w, t, backend)
    if device == "cuda":
        out = time_fn(step, device, repeats=repeats)
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = _rss_kb("VmRSS")
        out = time_fn(step, device, repeats=repeats)
        out["peak_mem_mb"] = (_rss_kb("VmHWM") - before) / 1024
        out["peak_mem_method"] = "fresh process: VmHWM - VmRSS after making the inputs (clear_refs 5)"
    out["max_abs_err_vs_reference"] = _max_err(impl, h, w, t, backend)
    return out


def _measure_in_subprocess(impl, N, V, H, backend, repeats, threads, timeout_s) -> dict:
    code = ("import json, sys; from beingh0.benchmark.ce import measure; "
            f"print('RESULT ' + json.dumps(measure({impl!r}, {N}, {V}, {H}, 'cpu', {backend!r}, {repeats!r}, "
            f"{threads!r})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), os.environ.get("PYTHONPATH", "")] if p)}
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env,
                           check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"worker failed (exit {p.returncode}): {tail[0][:200]}"}


def run_ce_bench(device: str = "cpu", tokens: int = TOKENS, vocab: int = VOCAB, hidden: int = HIDDEN,
                 json_path=None, impls=IMPLS, backends=None, repeats: int | None = None, threads: int | None = None,
                 timeout_s: float = 3600, rounds: int = 1, quiet: bool = False) -> list[dict]:
    """One record per implementation (and per backend of ours) at (tokens, vocab, hidden); with
    ``rounds`` > 1 each implementation is measured once per round (alternating order), and the record
    has the median of the rounds' medians and the largest peak."""
    from ..core.errors import UserValueError
    from .common import stamp, write_records

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is visible to torch")
    for name, v in (("tokens", tokens), ("vocab", vocab), ("hidden", hidden), ("rounds", rounds),
                    ("repeats", 1 if repeats is None else repeats)):
        if v < 1:
            raise UserValueError(f"bench ce: --{name} must be >= 1, got {v}")
    if backends is None:
        backends = ["cpp"] if device == "cpu" else ["triton", "cpp"]
    N, V, H = tokens, vocab, hidden
    flops = 3 * 2.0 * N * V * H  # logits, dH, dW (ours in gradient-in-forward mode does the same three)
    meta = {**stamp(device), "threads": threads or torch.get_num_threads()}
    common = dict(op="fused_linear_cross_entropy", device=device, dtype="float32", shape=[N, V, H], flops=flops,
                  bytes=float(4 * (2 * N * H + 2 * V * H) + 8 * N), baseline="naive", **meta)
    runs = []
    for impl in impls:
        if impl == "ours":
            runs += [("ours", b) for b in backends]
        else:
            runs.append((impl, None))
    records, results = [], {}
    todo = []
    for impl, b in runs:
        rec = dict(impl=impl if b is None else f"ours-{b}", backend=b, **common)
        if impl == "liger":
            ok, why = liger_status()
            if not ok:
                records.append({**rec, "median_ms": None, "p10_ms": None, "p90_ms": None, "peak_mem_mb": None,
                                "max_abs_err_vs_reference": None, "skipped": why})
                continue
        todo.append((impl, b, rec))
    # rounds: every implementation once per round, in alternating order, so that a change in the
    # machine's load during the run (a shared CPU) biases no implementation
    for rnd in range(rounds):
        for impl, b, rec in (todo if rnd % 2 == 0 else todo[::-1]):
            if not quiet:
                print(f"ce bench: round {rnd + 1}/{rounds}: {rec['impl']} at N={N} V={V} H={H} on {device} ...",
                      flush=True)
            if device == "cpu":
                res = _measure_in_subprocess(impl, N, V, H, b, repeats, threads, timeout_s)
            else:
                torch.cuda.empty_cache()
                res = measure(impl, N, V, H, device, b, repeats, threads)
            results.setdefault(rec["impl"], []).append(res)
    for impl, b, rec in todo:
        rs = results[rec["impl"]]
        ok = [r for r in rs if "error" not in r]
        if not ok:
            records.append({**rec, "median_ms": None, "peak_mem_mb": None, "error": rs[0]["error"]})
            continue
        res = dict(ok[0])
        if len(ok) > 1:  # median over rounds of each round's median; the worst peak
            import statistics

            res["median_ms"] = statistics.median(r["median_ms"] for r in ok)
            res["p10_ms"] = min(r["p10_ms"] for r in ok)
            res["p90_ms"] = max(r["p90_ms"] for r in ok)
            res["repeats"] = sum(r["repeats"] for r in ok)
            res["peak_mem_mb"] = max(r["peak_mem_mb"] for r in ok)
            res["round_medians_ms"] = [r["median_ms"] for r in ok]
        res["rounds"] = len(ok)
        records.append({**rec, **res})
    records.sort(key=lambda r: [x[0] if x[1] is None else f"ours-{x[1]}" for x in runs].index(r["impl"]))
    base = next((r for r in records if r["impl"] == "naive" and r.get("median_ms")), None)
    for r in records:
        if base and r.get("median_ms"):
            r["speedup_vs_baseline"] = base["median_ms"] / r["median_ms"]
            if r.get("peak_mem_mb") and base.get("peak_mem_mb"):
                r["peak_mem_vs_baseline"] = r["peak_mem_mb"] / base["peak_mem_mb"]
            r["gflops"] = flops / r["median_ms"] / 1e6
    if not quiet:
        print(f"device: {meta['device_name']}; shape tokens x vocab x hidden = {N} x {V} x {H}, float32, fwd+bwd")
        print(f"{'impl':12s} {'median ms':>10s} {'peak MB':>10s} {'x naive time':>12s} {'mem/naive':>10s} {'max err':>9s}")
        for r in records:
            if r.get("median_ms") is None:
                print(f"{r['impl']:12s} skipped: {r.get('skipped') or r.get('error')}")
                continue
            err = r.get("max_abs_err_vs_reference")
            print(f"{r['impl']:12s} {r['median_ms']:10.1f} {r['peak_mem_mb']:10.1f} "
                  f"{r.get('speedup_vs_baseline', float('nan')):12.2f} {r.get('peak_mem_vs_baseline', float('nan')):10.3f} "
                  f"{f'{err:.1e}' if err is not None else '-':>9s}")
    if json_path:
        write_records(records, json_path)
    return records
