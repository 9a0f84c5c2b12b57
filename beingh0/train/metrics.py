"""Throughput and model FLOPs utilisation (MFU), and the loss-curve plot.

MFU = (model FLOPs per token x tokens per second) / (peak FLOP/s of one device x devices), as in
the PaLM paper (Chowdhery et al. 2022, appendix B) and nanoGPT's ``estimate_mfu``. The default
model FLOPs per token is 6 N (forward 2 N + backward 4 N for N trainable parameters), which leaves
out attention's sequence-length term; a caller that knows its model passes a callable instead.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

__all__ = ["trainable_parameters", "flops_per_token_6n", "peak_flops", "measure_peak_flops", "plot_history",
           "KNOWN_PEAK_BF16"]

# Dense bf16 tensor-core peaks from the vendors' data sheets (FLOP/s, without sparsity).
KNOWN_PEAK_BF16 = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 NVL": 835.5e12, "H100 PCIe": 756.5e12,
                   "H100": 989.4e12, "A100": 312e12, "L40S": 362.05e12, "L4": 121e12, "A10G": 70e12}
_MEASURED: dict = {}


def trainable_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (a tied parameter counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_token_6n(model: nn.Module) -> float:
    """6 x trainable parameters: training FLOPs per token of a dense model (attention term left out)."""
    return 6.0 * trainable_parameters(model)


def measure_peak_flops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 512,
                       seconds: float = 0.2) -> float:
    """Best FLOP/s of repeated ``n x n`` matmuls on ``device`` over about ``seconds`` (cached per
    device and dtype): the achievable peak that a CPU MFU is measured against."""
    key = (str(device), dtype, n)
    if key not in _MEASURED:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        best, t_end = float("inf"), time.perf_counter() + seconds
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        (a @ b), sync()  # warm-up
        while best == float("inf") or time.perf_counter() < t_end:  # at least one timed call (a loaded
            t = time.perf_counter()                                   # machine may spend the budget warming up)
            (a @ b), sync()
            best = min(best, time.perf_counter() - t)
        _MEASURED[key] = 2.0 * n ** 3 / best
    return _MEASURED[key]


def peak_flops(device: torch.device, precision: str = "fp32") -> tuple[float, str]:
    """Peak FLOP/s of one device and where the figure comes from: a known GPU's bf16 data-sheet
    value (bf16 on CUDA), else a measured matmul peak in the training dtype."""
    if device.type == "cuda" and precision == "bf16":
        name = torch.cuda.get_device_name(device)
        for k, v in KNOWN_PEAK_BF16.items():
            if k in name:
                return v, f"data sheet ({k} bf16 dense)"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = 4096 if device.type == "cuda" else 512
    return measure_peak_flops(device, dtype, n), f"measured ({n}x{n} {dtype} matmul on {device.type})"


def plot_history(history: dict, path) -> None:
    """``loss.png``: training loss (with evaluation metrics), learning rate, tokens/s and MFU per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = history.get("train", [])
    if not tr:
        return
    steps = [r["step"] for r in tr]
    panels = [("loss", "loss"), ("lr", "learning rate"), ("tokens_per_s", "tokens/s"), ("mfu", "MFU")]
    panels = [(k, t) for k, t in panels if any(k in r for r in tr)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (k, title) in zip(axes[0], panels):
        xs = [s for s, r in zip(steps, tr) if k in r]
        ax.plot(xs, [r[k] for r in tr if k in r], lw=0.8, label=f"train {k}")
        if k == "loss":
            for ek in sorted({e for r in history.get("eval", []) for e in r if e != "step"}):
                ev = [r for r in history["eval"] if isinstance(r.get(ek), (int, float))]
                if ev:
                    ax.plot([r["step"] for r in ev], [r[ek] for r in ev], "o-", ms=3, label=ek)
            ax.legend(fontsize=7)
        ax.set_xlabel("step")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_json_atomic(path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)
