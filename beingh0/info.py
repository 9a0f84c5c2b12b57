"""What this machine can run: versions, devices and each backend's availability (``beingh0 info``)."""
from __future__ import annotations

import platform

import torch

from . import __version__
from .ops.backend import ENV_VAR, Backend, availability


def info_text() -> str:
    lines = [f"beingh0 {__version__}  python {platform.python_version()}  torch {torch.__version__}"]
    if torch.cuda.is_available():
        lines.append(f"CUDA: {torch.cuda.get_device_name(0)} (torch CUDA {torch.version.cuda})")
    else:
        lines.append("CUDA: no GPU visible to torch")
    lines.append(f"CPU threads (torch): {torch.get_num_threads()}")
    lines.append(f"backends (override per call with backend=..., globally with ${ENV_VAR}):")
    for b, (ok, why) in availability().items():
        lines.append(f"  {b.value:10s} {'yes' if ok else 'no ':3s}  {why}")
    lines.append(f"  {Backend.AUTO.value:10s} picks CUDA, then Triton on GPU tensors; C++ on CPU tensors; else the reference")
    return "\n".join(lines)
