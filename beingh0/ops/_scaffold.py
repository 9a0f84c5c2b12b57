"""What every op repeats, once: output allocation (NaN-poisoned in tests), the dtype codes of
``csrc/common/status.h``, the launch on the right device and stream, and the eager bypass of the
custom-op dispatcher. ``docs/adding-an-op.md`` shows how an op uses these.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch

from .backend import Backend, ext

__all__ = ["POISON_ENV", "DTYPE_CODES", "dtype_code", "poison_outputs", "new_output", "launch", "eager_no_grad",
           "call_op"]

#: Tests set BEINGH0_POISON_OUTPUTS=1 (tests/conftest.py): kernel outputs start as NaN (float), 77
#: (uint8), -7 (int64) or the byte 0xFF (bool, neither False nor True), so an element a kernel
#: forgets to write shows up as a mismatch instead of passing by luck on zeroed memory.
POISON_ENV = "BEINGH0_POISON_OUTPUTS"

#: THE dtype table of the kernels, mirrored from ``enum DType`` in ``csrc/common/status.h`` (a test
#: reads that file and compares). Each op accepts a subset of it.
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3, torch.uint8: 4,
}

_POISON_VALUES = {torch.uint8: 77, torch.int64: -7, torch.int32: -7}


def dtype_code(op: str, what: str, dtype: torch.dtype, allowed: Sequence[torch.dtype]) -> int:
    """The status.h code of ``dtype``; TypeError naming the allowed dtypes when the op does not take it."""
    if dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise TypeError(f"{op}: {what} has dtype {dtype}; this backend takes {names}")
    return DTYPE_CODES[dtype]


def poison_outputs() -> bool:
    """True when outputs start poisoned (``$BEINGH0_POISON_OUTPUTS == "1"``, read at every call)."""
    return os.environ.get(POISON_ENV) == "1"


def new_output(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """An uninitialised kernel output, or a poisoned one under ``$BEINGH0_POISON_OUTPUTS``."""
    if not poison_outputs():
        return torch.empty(shape, dtype=dtype, device=device)
    if dtype == torch.bool:
        return torch.full(shape, 255, dtype=torch.uint8, device=device).view(torch.bool)
    fill = float("nan") if dtype.is_floating_point else _POISON_VALUES.get(dtype, -7)
    return torch.full(shape, fill, dtype=dtype, device=device)


def launch(name: str, backend: Backend, device: torch.device, *args, cpu_args: tuple = (), cuda_args: tuple = ()):
    """Call ``beingh0._C.<name>_cpu(*args, *cpu_args)`` or, on the tensors' device and current
    stream, ``beingh0._C.<name>_cuda(*args, stream, *cuda_args)``."""
    if backend is Backend.CPP:
        return getattr(ext(), f"{name}_cpu")(*args, *cpu_args)
    if backend is not Backend.CUDA:
        raise AssertionError(f"launch({name!r}) with backend {backend}")
    with torch.cuda.device(device):
        return getattr(ext(), f"{name}_cuda")(*args, torch.cuda.current_stream(device).cuda_stream, *cuda_args)


def eager_no_grad(differentiable: Sequence[torch.Tensor] = ()) -> bool:
    """True when a call may skip the custom-op dispatcher: not under ``torch.compile`` and no gradient
    to record (~50 us a call on a 2-core CPU: mano_joints at B=1 took 105 us through the op, 4 us in
    the binding)."""
    if torch.compiler.is_compiling():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in differentiable))


def call_op(custom_op, impl: Callable, *args, differentiable: Sequence[torch.Tensor] = ()):
    """Run ``impl(*args)`` directly when ``eager_no_grad``, else through the registered ``custom_op``
    (same arguments): autograd and ``torch.compile`` see the op, a plain eager call pays nothing."""
    if eager_no_grad(differentiable):
        return impl(*args)
    return custom_op(*args)
