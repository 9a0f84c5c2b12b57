"""Timing and record helpers shared by every op benchmark."""
from __future__ import annotations

import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from .. import __version__


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    proc = platform.processor() or platform.machine()
    return f"cpu ({proc}, {torch.get_num_threads()} torch threads)"


def time_fn(fn, device: str, *, min_time_s: float = 0.5, min_repeats: int = 3, max_repeats: int = 200,
            repeats: int | None = None, flush_l2: bool = True) -> dict:
    """Warm up once, then time ``fn`` repeatedly; returns median/p10/p90 in ms and peak memory.

    CUDA: events around each call, L2 flushed before each call (a 256 MB write), peak memory from
    the caching allocator. CPU: wall clock; peak memory is not tracked (None).
    """
    fn()  # warm-up (compilation, caches, allocator)
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        flush = torch.empty(64 * 1024 * 1024, dtype=torch.float32, device="cuda") if flush_l2 else None
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t_start = time.perf_counter()
    while True:
        if device == "cuda":
            if flush is not None:
                flush.zero_()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        n = len(times)
        if repeats is not None:
            if n >= repeats:
                break
        elif n >= max_repeats or (n >= min_repeats and time.perf_counter() - t_start > min_time_s):
            break
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) >= 2 else [times[0]] * 9
    out = {"median_ms": statistics.median(times), "p10_ms": q[0], "p90_ms": q[-1], "repeats": len(times)}
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base - (flush.numel() * 4 if flush is not None else 0)
        out["peak_mem_mb"] = max(peak, 0) / 2**20
    else:
        out["peak_mem_mb"] = None
    return out


def measured_bandwidth_gbs(device: str) -> float | None:
    """Device-to-device copy bandwidth (GB/s, read + write) measured now: the floor's denominator."""
    if device != "cuda":
        return None
    n = 256 * 1024 * 1024 // 4
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    r = time_fn(lambda: b.copy_(a), "cuda", repeats=20, flush_l2=False)
    return 2 * n * 4 / (r["median_ms"] * 1e-3) / 1e9


def write_records(records: list[dict], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1))
    return path


def stamp(device: str) -> dict:
    return {"device_name": device_name(device), "date": datetime.date.today().isoformat(), "beingh0": __version__,
            "torch": torch.__version__}


def print_table(records: list[dict]) -> None:
    hdr = f"{'op':13s} {'impl':10s} {'shape':>18s} {'median ms':>10s} {'p10':>9s} {'p90':>9s} {'x baseline':>10s} {'max err':>9s}"
    print(hdr)
    print("-" * len(hdr))
    for r in records:
        sp = r.get("speedup_vs_baseline")
        err = r.get("max_abs_err_vs_reference")
        print(f"{r['op']:13s} {r['impl']:10s} {str(r['shape']):>18s} {r['median_ms']:10.3f} {r['p10_ms']:9.3f} "
              f"{r['p90_ms']:9.3f} {('%.2f' % sp) if sp else '-':>10s} {('%.1e' % err) if err is not None else '-':>9s}")


def default_backends(device: str) -> list[str]:
    """Our backends a benchmark times by default: C++ on the CPU; CUDA and Triton on a GPU (those available)."""
    from ..ops.backend import Backend, is_available

    cands = [Backend.CPP] if device == "cpu" else [Backend.CUDA, Backend.TRITON]
    return [b.value for b in cands if is_available(b)[0]]


def set_threads(threads: int | None) -> int:
    """One thread count for our C++ kernels (OpenMP) and torch; default OpenMP's. Returns it."""
    from ..ops.backend import Backend, ext, is_available

    cpp = is_available(Backend.CPP)[0]
    n = threads or (ext().num_threads() if cpp else torch.get_num_threads())
    if cpp:
        ext().set_num_threads(n)
    torch.set_num_threads(n)
    return n
