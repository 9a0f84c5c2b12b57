"""Backend selection for every op: one documented enum, one environment variable, one rule.

An explicit request for an unavailable backend raises with a hint on how to get it. ``AUTO`` picks
the fastest available backend for the input's device and falls back only to an equivalent one,
logging the choice once per (op, device).
"""
from __future__ import annotations

import enum
import functools
import importlib
import logging
import os

log = logging.getLogger("beingh0.ops")

ENV_VAR = "BEINGH0_BACKEND"


class Backend(str, enum.Enum):
    """Which implementation of an op runs."""

    AUTO = "auto"
    """Fastest available for the input's device: CUDA (then Triton) on GPU, C++ on CPU, else reference."""
    REFERENCE = "reference"
    """Plain torch: readable, float64-capable, differentiable by autograd. The spec of every op."""
    CPP = "cpp"
    """C++ CPU kernels in ``beingh0._C`` (OpenMP over the batch). CPU tensors, float32/float64."""
    CUDA = "cuda"
    """CUDA kernels in ``beingh0._C``. CUDA tensors, float32/float64/float16/bfloat16."""
    TRITON = "triton"
    """Triton kernels in ``beingh0.kernels``. CUDA tensors, or CPU tensors under TRITON_INTERPRET=1."""


@functools.lru_cache(maxsize=None)
def _ext():
    """The compiled module, or the ImportError explaining why it is missing."""
    # _C links the system OpenMP runtime, torch ships its own: two thread pools on few cores. With
    # libgomp's default active wait, each pool's idle threads spin while the other works; fitting
    # 200 frames on 2 busy cores took 6.6 s instead of 1.8 s. Our parallel regions are coarse (blocks
    # of samples), so passive waiting costs nothing. libgomp reads this once, when _C loads it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        return importlib.import_module("beingh0._C")
    except ImportError as e:  # source checkout without a build, or a broken build
        return e


def ext():
    """Return ``beingh0._C`` or raise a RuntimeError saying how to build it."""
    mod = _ext()
    if isinstance(mod, ImportError):
        raise RuntimeError(
            "beingh0's compiled extension beingh0._C is not available "
            f"({mod}). Install the package (`pip install .` in the source tree) instead of running "
            "from the source folder, or pick backend='reference'."
        )
    return mod


def _triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def load_kernel_module(name: str):
    """Import the Triton kernels of one op, ``beingh0.kernels.<name>`` (imports triton)."""
    return importlib.import_module(f"beingh0.kernels.{name}")


@functools.lru_cache(maxsize=None)
def _check(backend: Backend, interpret: bool) -> tuple[bool, str]:
    if backend is Backend.REFERENCE:
        return True, "plain torch"
    if backend in (Backend.CPP, Backend.CUDA):
        mod = _ext()
        if isinstance(mod, ImportError):
            return False, f"beingh0._C not importable ({mod}); install the package with `pip install .`"
        if backend is Backend.CPP:
            return True, f"OpenMP, {mod.num_threads()} threads" if mod.has_openmp() else "no OpenMP (single thread)"
        if not mod.has_cuda():
            return False, "built without CUDA (no nvcc at build time); rebuild with BEINGH0_WITH_CUDA=ON"
        n = mod.cuda_device_count()
        return (True, f"{n} device(s)") if n else (False, "built with CUDA, but no CUDA device/driver is visible")
    try:
        import triton
    except ImportError:
        return False, "triton not installed: pip install 'beingh0[triton]'"
    import torch

    if torch.cuda.is_available():
        return True, f"triton {triton.__version__} on CUDA"
    if interpret:
        return True, f"triton {triton.__version__} under TRITON_INTERPRET=1 (CPU, slow)"
    return False, f"triton {triton.__version__} installed but no GPU; set TRITON_INTERPRET=1 before importing triton to run it on CPU (slow)"


def is_available(backend: Backend) -> tuple[bool, str]:
    """(available, reason) for one concrete backend; cached."""
    return _check(backend, _triton_interpret())


def availability() -> dict[Backend, tuple[bool, str]]:
    """For each concrete backend: (available on this machine, reason or details)."""
    return {b: is_available(b) for b in Backend if b is not Backend.AUTO}


def requested(backend: "Backend | str | None") -> Backend:
    """The backend asked for by argument, else by $BEINGH0_BACKEND, else AUTO."""
    value = backend if backend is not None else os.environ.get(ENV_VAR, "auto")
    try:
        return Backend(str(value).lower() if not isinstance(value, Backend) else value)
    except ValueError:
        choices = ", ".join(b.value for b in Backend)
        src = "backend argument" if backend is not None else f"${ENV_VAR}"
        raise ValueError(f"unknown backend {value!r} from the {src}; choose one of: {choices}") from None


_logged: set = set()


def _assume_constant(fn):
    # Under torch.compile the backend choice is a Python-level constant of the traced call: don't trace
    # into the availability probes (imports, the compiled module), bake the result into the graph.
    import torch

    return torch.compiler.assume_constant_result(fn)


def resolve(op: str, backend: "Backend | str | None", device_type: str, supported: tuple[Backend, ...]) -> Backend:
    """Pick the concrete backend for one call of ``op`` on ``device_type`` ('cpu' or 'cuda')."""
    name = backend.value if isinstance(backend, Backend) else backend
    return Backend(_resolve_name(op, name, device_type, tuple(b.value for b in supported)))


@_assume_constant
def _resolve_name(op: str, backend: str | None, device_type: str, supported_names: tuple[str, ...]) -> str:
    supported = tuple(Backend(n) for n in supported_names)
    want = requested(backend)
    if want is not Backend.AUTO:
        if want not in supported:
            raise ValueError(f"{op}: backend {want.value!r} is not implemented for this op; it has {[b.value for b in supported]}")
        ok, why = is_available(want)
        if not ok:
            raise RuntimeError(f"{op}: backend {want.value!r} was requested but is unavailable: {why}")
        device_ok = {Backend.CPP: device_type == "cpu", Backend.CUDA: device_type == "cuda",
                     Backend.TRITON: device_type == "cuda" or _triton_interpret(), Backend.REFERENCE: True}[want]
        if not device_ok:
            raise ValueError(f"{op}: backend {want.value!r} cannot run on {device_type} tensors; move the inputs or choose another backend")
        return want.value
    order = (Backend.CUDA, Backend.TRITON) if device_type == "cuda" else (Backend.CPP,)
    choice = next((b for b in order if b in supported and is_available(b)[0]), Backend.REFERENCE)
    key = (op, device_type)
    if key not in _logged:
        _logged.add(key)
        log.info("%s on %s: using the %s backend", op, device_type, choice.value)
    return choice.value
