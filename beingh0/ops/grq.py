"""The ``grq`` op family: grouped residual vector quantization code search, all layers fused.

``grq_encode(x, codebooks)`` quantizes each input vector the way Being-H0's motion tokenizer does
(paper eq. 3-4): the channels are split into G groups of Dg; group g is quantized by an L-layer
residual VQ with its own codebooks ``C[g, l]`` of K codes:

    r = x_g;  for l in 0..L-1:  c_l = argmin_k ||r - C[g, l, k]||^2;  r = r - C[g, l, c_l]
    codes[n, g, l] = c_l;  quantized_g = sum_l C[g, l, c_l]

Conventions every backend keeps (tests check each against the float64 reference):

* The comparison is ``||c||^2 - 2 r.c`` (||r||^2 is the same for every code and left out); ties go
  to the **lowest** code index. ``||c||^2`` is computed once here, in float32 for the kernels, so
  every backend compares the same numbers.
* Inputs: x float32, bfloat16 or float16 (kernels; converted to float32 on load, float32
  accumulation), float64 with the reference. Codebooks are used in float32 by the kernels (float64
  by the reference when x is float64). Output codes are int64 ``(..., G, L)``; ``quantized`` (the
  sum of the chosen codes, ``(..., G*Dg)``) is float32 (float64 for float64 x).
* No gradient: the codes are integers and ``quantized`` is a lookup; training puts the straight-
  through estimator around it (``beingh0.tokenizer.quantizer``).

Backends (``beingh0.ops.Backend``): the reference (plain torch, one (G, N, K) distance matrix per
layer, i.e. what pure-PyTorch VQ libraries do), C++ CPU (``csrc/grq``: register-blocked GEMM with the
argmin fused, OpenMP over row panels), CUDA (tiled SIMT GEMM, residual tile in shared memory) and
Triton (``kernels/grq.py``). None of the kernels stores an N x K matrix. The kernel backends run
through the ``beingh0::grq_encode`` custom op (with a fake implementation for ``torch.compile``).
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple, Optional

import torch

from .backend import Backend, ext, is_available, load_kernel_module, requested, resolve

__all__ = ["GRQOutput", "GRQCodebooks", "grq_encode", "grq_encode_reference", "code_norms", "prepare_codebooks"]

_POISON = os.environ.get("BEINGH0_POISON_OUTPUTS") == "1"
_SUPPORTED = (Backend.REFERENCE, Backend.CPP, Backend.CUDA, Backend.TRITON)
#: dtype codes of x (csrc/common/status.h)
_X_CODES = {torch.float32: 0, torch.float16: 2, torch.bfloat16: 3}


class GRQOutput(NamedTuple):
    codes: torch.Tensor
    """(..., G, L) int64 code indices in [0, K)."""
    quantized: torch.Tensor | None
    """(..., G*Dg) float32 (float64 for float64 x): the sum of the chosen codes; None unless asked for."""


class GRQCodebooks(NamedTuple):
    """Codebooks prepared once for many ``grq_encode`` calls (``prepare_codebooks``): inference with
    fixed codebooks skips the float32 copy, the norms and the CPU kernel's packing on every call,
    which dominate small batches (a few latent vectors per control step)."""

    source: torch.Tensor
    """The codebooks as given, (G, L, K, Dg); an in-place change after preparing is an error."""
    codebooks: torch.Tensor
    """float32, C-contiguous."""
    norms: torch.Tensor
    """(G, L, K) float32, ||C[g, l, k]||^2."""
    packed: torch.Tensor | None
    """CPU kernel layout (G, L, ceil(K / T), Dg, T), T = ``_C.grq_cpu_tile_codes()``; None off the CPU
    or without the C++ backend."""
    version: int
    """``source._version`` when prepared."""


def code_norms(codebooks: torch.Tensor) -> torch.Tensor:
    """||C[g, l, k]||^2, (G, L, K), in the codebooks' dtype."""
    return (codebooks * codebooks).sum(-1)


def _check_codebooks(op: str, codebooks, check_values: bool) -> None:
    if not isinstance(codebooks, torch.Tensor):
        raise TypeError(f"{op}: codebooks must be a torch.Tensor (G, L, K, Dg), got {type(codebooks).__name__}")
    if codebooks.dim() != 4:
        raise ValueError(f"{op}: codebooks must be (G, L, K, Dg) = (groups, layers, codes, group dim), got shape "
                         f"{tuple(codebooks.shape)}")
    if min(codebooks.shape) < 1:
        raise ValueError(f"{op}: codebooks must be non-empty, got shape {tuple(codebooks.shape)}")
    if not codebooks.is_floating_point():
        raise TypeError(f"{op}: codebooks must be floating point, got {codebooks.dtype}")
    if check_values and not torch.compiler.is_compiling() and not bool(torch.isfinite(codebooks).all()):
        raise ValueError(f"{op}: codebooks contain NaN or inf")


def _pack_cpu(cb: torch.Tensor, tile: int) -> torch.Tensor:
    """float32 (G, L, K, Dg) -> the CPU kernel's (G, L, ceil(K / tile), Dg, tile), codes past K zero."""
    G, L, K, Dg = cb.shape
    tiles = math.ceil(K / tile)
    padded = cb.new_zeros(G, L, tiles * tile, Dg)
    padded[:, :, :K] = cb
    return padded.view(G, L, tiles, tile, Dg).transpose(3, 4).contiguous()


def prepare_codebooks(codebooks: torch.Tensor, *, check: bool = True) -> GRQCodebooks:
    """Prepare fixed codebooks once for many ``grq_encode(x, prepared)`` calls (float32 copy, norms and,
    on the CPU, the C++ kernel's packed layout). Modifying ``codebooks`` in place afterwards makes
    ``grq_encode`` raise: prepare again."""
    _check_codebooks("prepare_codebooks", codebooks, check)
    cb = codebooks.detach().to(torch.float32).contiguous()
    packed = None
    if cb.device.type == "cpu" and is_available(Backend.CPP)[0]:
        packed = _pack_cpu(cb, ext().grq_cpu_tile_codes())
    return GRQCodebooks(codebooks, cb, code_norms(cb).contiguous(), packed, codebooks._version)


def _check(op: str, x, codebooks, check_values: bool, check_codebooks: bool = True) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: x must be a torch.Tensor (..., G*Dg), got {type(x).__name__}")
    _check_codebooks(op, codebooks, check_values and check_codebooks)
    G, L, K, Dg = codebooks.shape
    if x.dim() < 1 or x.shape[-1] != G * Dg:
        raise ValueError(f"{op}: x must be (..., G*Dg) = (..., {G * Dg}) for codebooks {tuple(codebooks.shape)}, got "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{op}: x and codebooks must be floating point, got {x.dtype} and {codebooks.dtype}")
    if x.device != codebooks.device:
        raise ValueError(f"{op}: x is on {x.device} but codebooks on {codebooks.device}; move both to one device")
    if check_values and not torch.compiler.is_compiling() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x.reshape(-1, G * Dg))).any(1).nonzero()[:5, 0].tolist()
        raise ValueError(f"{op}: x contains NaN or inf (rows {bad} of the flattened input); fix the encoder "
                         "output (e.g. a diverged training step) before quantizing")


# --------------------------------------------------------------------------------------------
# reference (readable; float64-capable)


def grq_encode_reference(x: torch.Tensor, codebooks: torch.Tensor, return_quantized: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x (N, G*Dg), codebooks (G, L, K, Dg) -> (codes (N, G, L) int64, quantized (N, G*Dg) or None).

    Computes in float64 when x is float64, else in float32 (x upcast). One (G, N, K) score matrix per
    layer: simple and exactly what the kernels avoid storing.
    """
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    cb = codebooks.to(dt)
    G, L, K, Dg = cb.shape
    N = x.shape[0]
    with torch.no_grad():
        r = x.to(dt).reshape(N, G, Dg).transpose(0, 1).contiguous()     # (G, N, Dg)
        c2 = code_norms(cb)                                              # (G, L, K)
        codes = torch.empty(G, N, L, dtype=torch.int64, device=x.device)
        q = torch.zeros_like(r) if return_quantized else None
        for layer in range(L):
            c = cb[:, layer]                                             # (G, K, Dg)
            score = c2[:, layer, None, :] - 2.0 * torch.bmm(r, c.transpose(1, 2))
            idx = score.argmin(-1)                                       # first minimum: lowest index
            codes[:, :, layer] = idx
            chosen = torch.gather(c, 1, idx[..., None].expand(G, N, Dg))
            r = r - chosen
            if q is not None:
                q = q + chosen
        codes = codes.permute(1, 0, 2).contiguous()
        quantized = q.transpose(0, 1).reshape(N, G * Dg) if q is not None else None
    return codes, quantized


# --------------------------------------------------------------------------------------------
# kernel backends and the custom op


def _kernel(backend: Backend, x: torch.Tensor, codebooks: torch.Tensor, norms: torch.Tensor, return_quantized: bool,
            packed: torch.Tensor | None = None):
    N = x.shape[0]
    G, L, K, Dg = codebooks.shape
    dev = x.device
    if _POISON:
        codes = torch.full((N, G, L), -7, dtype=torch.int64, device=dev)
        quant = torch.full((N, G * Dg) if return_quantized else (0,), float("nan"), dtype=torch.float32, device=dev)
    else:
        codes = torch.empty((N, G, L), dtype=torch.int64, device=dev)
        quant = torch.empty((N, G * Dg) if return_quantized else (0,), dtype=torch.float32, device=dev)
    if N == 0:
        return codes, quant
    if x.stride(1) != 1:
        x = x.contiguous()  # the kernels take any row stride, but contiguous channels
    if backend is Backend.TRITON:
        load_kernel_module("grq").grq_encode_triton(x, codebooks, norms, codes, quant if return_quantized else None)
        return codes, quant
    args = [x.data_ptr(), N, G, L, K, Dg, x.stride(0), _X_CODES[x.dtype], codebooks.data_ptr(), norms.data_ptr(),
            codes.data_ptr(), quant.data_ptr() if return_quantized else 0]
    if backend is Backend.CPP:
        ext().grq_encode_cpu(*args, packed.data_ptr() if packed is not None else 0)
    else:
        with torch.cuda.device(dev):
            ext().grq_encode_cuda(*args, torch.cuda.current_stream(dev).cuda_stream)
    return codes, quant


@torch.library.custom_op("beingh0::grq_encode", mutates_args=())
def _grq_encode_op(x: torch.Tensor, codebooks: torch.Tensor, norms: torch.Tensor, return_quantized: bool,
                   backend: str, packed: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, G*Dg) float32/bf16/fp16, codebooks (G, L, K, Dg) float32, norms (G, L, K) float32,
    packed: the CPU kernel's layout of the codebooks or None."""
    return _kernel(Backend(backend), x, codebooks, norms, return_quantized, packed)


@_grq_encode_op.register_fake
def _(x, codebooks, norms, return_quantized, backend, packed=None):
    G, L, K, Dg = codebooks.shape
    N = x.shape[0]
    return (x.new_empty((N, G, L), dtype=torch.int64),
            x.new_empty((N, G * Dg) if return_quantized else (0,), dtype=torch.float32))


# --------------------------------------------------------------------------------------------
# public function


def grq_encode(x: torch.Tensor, codebooks: torch.Tensor, *, return_quantized: bool = False, backend=None,
               check: bool = True) -> GRQOutput:
    """Grouped residual VQ code search with every layer and group fused.

    Args:
        x: (..., G*Dg) float32, bfloat16 or float16 (float64: reference backend only; AUTO picks it).
        codebooks: (G, L, K, Dg) floating point, on x's device (used in float32 by the kernels), or
            a ``GRQCodebooks`` from ``prepare_codebooks`` (fixed codebooks, many calls).
        return_quantized: also return the sum of the chosen codes, (..., G*Dg).
        backend: None (``$BEINGH0_BACKEND`` or auto), or a ``Backend``/its name.
        check: also reject NaN/inf in x and the codebooks (shapes, dtypes and devices are always
            checked). Skipped automatically under ``torch.compile``.

    Returns:
        ``GRQOutput(codes (..., G, L) int64, quantized (..., G*Dg) or None)``.
    """
    op = "grq_encode"
    prepared = codebooks if isinstance(codebooks, GRQCodebooks) else None
    if prepared is not None:
        codebooks = prepared.source
        if not torch.compiler.is_compiling() and codebooks._version != prepared.version:
            raise ValueError(f"{op}: the codebooks were modified in place after prepare_codebooks (version "
                             f"{prepared.version} -> {codebooks._version}); call prepare_codebooks again")
    _check(op, x, codebooks, check, check_codebooks=prepared is None)
    G, L, K, Dg = codebooks.shape
    lead = x.shape[:-1]
    flat = x.reshape(-1, G * Dg)
    if x.dtype == torch.float64:
        want = requested(backend)
        if want not in (Backend.AUTO, Backend.REFERENCE):
            raise TypeError(f"{op}: float64 x runs only on backend='reference' (the kernels compute in float32); "
                            f"pass x.float() to use backend={want.value!r}")
        b = Backend.REFERENCE
    elif x.dtype not in _X_CODES:
        raise TypeError(f"{op}: x must be float32, bfloat16 or float16 (float64 with the reference), got {x.dtype}")
    else:
        b = resolve(op, backend, x.device.type, _SUPPORTED)
    if b is Backend.REFERENCE:
        codes, quant = grq_encode_reference(flat, codebooks, return_quantized)
    else:
        if b is Backend.CPP and x.device.type != "cpu":
            raise ValueError(f"{op}: the C++ backend takes CPU tensors, got {x.device}")
        if prepared is not None:
            cb, norms, packed = prepared.codebooks, prepared.norms, prepared.packed if b is Backend.CPP else None
        else:
            cb = codebooks.detach().to(torch.float32).contiguous()
            norms, packed = code_norms(cb).contiguous(), None
        flat = flat.detach()
        if torch.compiler.is_compiling():
            codes, quant = _grq_encode_op(flat, cb, norms, return_quantized, b.value, packed)
        else:  # eager: skip the custom-op dispatcher (nothing to record for autograd)
            codes, quant = _kernel(b, flat, cb, norms, return_quantized, packed)
    codes = codes.reshape(*lead, G, L)
    quant = quant.reshape(*lead, G * Dg) if return_quantized else None
    return GRQOutput(codes, quant)
