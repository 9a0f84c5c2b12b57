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
Triton (``beingh0/kernels/grq.py``). None of the kernels stores an N x K matrix. The kernel backends run
through the ``beingh0::grq_encode`` custom op (with a fake implementation for ``torch.compile``).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from ._scaffold import DTYPE_CODES, call_op, launch, new_output
from .backend import Backend, ext, is_available, load_kernel_module, requested, resolve

__all__ = ["GRQOutput", "GRQCodebooks", "grq_encode", "grq_encode_reference", "code_norms", "prepare_codebooks"]

_SUPPORTED = (Backend.REFERENCE, Backend.CPP, Backend.CUDA, Backend.TRITON)
#: dtypes of x the kernels read (codes: csrc/common/status.h via ``_scaffold.DTYPE_CODES``)
_X_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: Tests only: rows per CUDA block (16, 32 or 64) instead of the kernel's choice by N and device (0),
#: so that every tile path of csrc/grq/grq_cuda.cu runs in the tests (tests/ops/test_grq.py).
CUDA_TILE_ROWS = 0


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


def _first_of_duplicates(c: torch.Tensor) -> torch.Tensor | None:
    """For codebooks c (G, K, Dg): (G, K) index of the first code equal to each code, or None when no
    two codes of a group are equal. A GEMM may round the dot products of two equal codes differently
    (their columns sit at different offsets of its blocking), which would break the tie rule."""
    G, K, _ = c.shape
    if K < 2 or not bool((code_norms(c).sort(-1).values.diff(dim=-1) == 0).any()):
        return None  # equal codes have equal norms: the common case costs a sort of K numbers
    ar = torch.arange(K, device=c.device)
    canon, dup = [], False
    for g in range(G):
        _, inv = torch.unique(c[g], dim=0, return_inverse=True)
        first = torch.full((K,), K, dtype=torch.long, device=c.device).scatter_reduce(0, inv, ar, "amin")[inv]
        dup = dup or bool((first != ar).any())
        canon.append(first)
    return torch.stack(canon) if dup else None


def grq_encode_reference(x: torch.Tensor, codebooks: torch.Tensor, *, return_quantized: bool = False) -> GRQOutput:
    """x (..., G*Dg), codebooks (G, L, K, Dg) -> ``GRQOutput(codes (..., G, L) int64, quantized (..., G*Dg) or None)``.

    Computes in float64 when x is float64, else in float32 (x upcast). One (G, N, K) score matrix per
    layer: simple and exactly what the kernels avoid storing. Ties go to the lowest code index: exact
    duplicate codes get the score of their first copy (a GEMM need not round equal columns alike),
    then ``argmin`` takes the first minimum.
    """
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    cb = codebooks.to(dt)
    G, L, K, Dg = cb.shape
    lead = x.shape[:-1]
    flat = x.reshape(-1, G * Dg)
    N = flat.shape[0]
    with torch.no_grad():
        r = flat.to(dt).reshape(N, G, Dg).transpose(0, 1).contiguous()  # (G, N, Dg)
        c2 = code_norms(cb)                                              # (G, L, K)
        codes = torch.empty(G, N, L, dtype=torch.int64, device=x.device)
        q = torch.zeros_like(r) if return_quantized else None
        for layer in range(L):
            c = cb[:, layer]                                             # (G, K, Dg)
            score = c2[:, layer, None, :] - 2.0 * torch.bmm(r, c.transpose(1, 2))
            first = _first_of_duplicates(c)
            if first is not None:
                score = torch.gather(score, 2, first[:, None, :].expand_as(score))
            idx = score.argmin(-1)                                       # first minimum: lowest index
            codes[:, :, layer] = idx
            chosen = torch.gather(c, 1, idx[..., None].expand(G, N, Dg))
            r = r - chosen
            if q is not None:
                q = q + chosen
        codes = codes.permute(1, 0, 2).reshape(*lead, G, L)
        quantized = q.transpose(0, 1).reshape(*lead, G * Dg) if q is not None else None
    return GRQOutput(codes, quantized)


# --------------------------------------------------------------------------------------------
# kernel backends and the custom op


def _row_stride(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """x (N, D) -> (x with contiguous channels, the row stride the kernels read: >= D, or 0 when every
    row is the same vector (a broadcast, e.g. ``v.expand(N, D)``))."""
    N, D = x.shape
    if D > 1 and x.stride(1) != 1:
        x = x.contiguous()  # the kernels take any row stride, but contiguous channels
    if N <= 1:
        return x, D
    if x.stride(0) == 0:
        return x, 0
    if x.stride(0) < D:  # overlapping rows (as_strided): copy
        x = x.contiguous()
    return x, x.stride(0)


def _kernel(x: torch.Tensor, codebooks: torch.Tensor, norms: torch.Tensor, return_quantized: bool, backend: str,
            packed: torch.Tensor | None = None):
    b = Backend(backend)
    N = x.shape[0]
    G, L, K, Dg = codebooks.shape
    dev = x.device
    codes = new_output((N, G, L), torch.int64, dev)
    quant = new_output((N, G * Dg) if return_quantized else (0,), torch.float32, dev)
    if N == 0:
        return codes, quant
    x, x_stride = _row_stride(x)
    if b is Backend.TRITON:
        load_kernel_module("grq").grq_encode_triton(x, codebooks, norms, codes, quant if return_quantized else None)
        return codes, quant
    launch("grq_encode", b, dev, x.data_ptr(), N, G, L, K, Dg, x_stride, DTYPE_CODES[x.dtype], codebooks.data_ptr(),
           norms.data_ptr(), codes.data_ptr(), quant.data_ptr() if return_quantized else 0,
           cpu_args=(packed.data_ptr() if packed is not None else 0,), cuda_args=(CUDA_TILE_ROWS,))
    return codes, quant


@torch.library.custom_op("beingh0::grq_encode", mutates_args=())
def _grq_encode_op(x: torch.Tensor, codebooks: torch.Tensor, norms: torch.Tensor, return_quantized: bool,
                   backend: str, packed: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, G*Dg) float32/bf16/fp16, codebooks (G, L, K, Dg) float32, norms (G, L, K) float32,
    packed: the CPU kernel's layout of the codebooks or None."""
    return _kernel(x, codebooks, norms, return_quantized, backend, packed)


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
    elif x.dtype not in _X_DTYPES:
        raise TypeError(f"{op}: x must be float32, bfloat16 or float16 (float64 with the reference), got {x.dtype}")
    else:
        b = resolve(op, backend, x.device.type, _SUPPORTED)
    if b is Backend.REFERENCE:
        codes, quant = grq_encode_reference(flat, codebooks, return_quantized=return_quantized)
    else:
        if b is Backend.CPP and x.device.type != "cpu":
            raise ValueError(f"{op}: the C++ backend takes CPU tensors, got {x.device}")
        if prepared is not None:
            cb, norms, packed = prepared.codebooks, prepared.norms, prepared.packed if b is Backend.CPP else None
        else:
            cb = codebooks.detach().to(torch.float32).contiguous()
            norms, packed = code_norms(cb).contiguous(), None
        # no gradient (integer codes): only torch.compile goes through the custom op
        codes, quant = call_op(_grq_encode_op, _kernel, flat.detach(), cb, norms, return_quantized, b.value, packed)
    codes = codes.reshape(*lead, G, L)
    quant = quant.reshape(*lead, G * Dg) if return_quantized else None
    return GRQOutput(codes, quant)
