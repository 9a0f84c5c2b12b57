"""Triton kernel of ``grq_encode`` (spec: ``grq_encode_reference`` in ``beingh0/ops/grq.py``;
ABI: ``csrc/grq/grq.h``).

For each input vector n and channel group g, an L-layer residual code search:

    r = x[n, g*Dg : (g+1)*Dg]  (in float32)
    for l in 0..L-1:  c = argmin_k ( ||C[g,l,k]||^2 - 2 <r, C[g,l,k]> )   (ties: lowest k)
                      codes[n, g, l] = c;  q += C[g,l,c];  r -= C[g,l,c]

Grid: (row blocks, G). Each program keeps a (BLOCK_N, BLOCK_D) tile of residuals and of the
running sum q in registers (BLOCK_D = Dg rounded up to a power of two >= 16, padding columns held
at 0) and streams the (g, l) codebook past it in chunks of BLOCK_K codes. The scores of a chunk
are one ``tl.dot`` in exact float32 (``input_precision="ieee"``, not tf32, so that the codes match a
float32 reference); codes past K score +inf. Each chunk's minimum and its lowest index are merged
into the running best with a strict ``<`` (chunks go in increasing k), so ties go to the lowest k.
The chosen code vectors are then gathered from the codebook to update r and q. Nothing of size
N x K is stored.

x is loaded in its dtype (float32/float16/bfloat16) and converted to float32 at once: all math
is float32 (this also avoids the interpreter's wrong bfloat16 ``tl.dot``).

Block sizes (GPU): first guesses for H100, pending a GPU sweep (none was available when this was
written); BLOCK_N shrinks as BLOCK_D grows to keep the r and q tiles in registers. Under the
interpreter, whose cost grows with the number of programs and loop trips, the blocks are larger.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_X_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# N changes from call to call: no "== 1" / "multiple of 16" variants for it (a recompile each).
# G, L, K, Dg are a tokenizer's constants, and x_stride is G*Dg (or 0 for a broadcast row): left
# specialised, so that a 16-divisible row stride keeps the loads of x vectorised.
@triton.jit(do_not_specialize=["N"])
def _grq_encode_kernel(x, cb, norms, codes, quant, N, x_stride, G, L, K, Dg,
                       WRITE_Q: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       BLOCK_D: tl.constexpr):
    pid_n = tl.program_id(0)
    g = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    rows64 = rows.to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    dmask = d < Dg
    m2 = rmask[:, None] & dmask[None, :]
    r = tl.load(x + rows64[:, None] * x_stride + (g * Dg + d)[None, :], mask=m2, other=0.0).to(tl.float32)
    q = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    kk = tl.arange(0, BLOCK_K)
    code_row = codes + rows64 * (G * L) + g * L
    for l in range(L):
        gl = (g * L + l).to(tl.int64)
        cbl = cb + gl * K * Dg                      # codebook (g, l): (K, Dg) float32
        nl = norms + gl * K                         # its squared norms: (K,)
        best = tl.full((BLOCK_N,), float("inf"), tl.float32)
        best_i = tl.zeros((BLOCK_N,), dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            kidx = k0 + kk
            kmask = kidx < K
            chunk = tl.load(cbl + kidx[:, None] * Dg + d[None, :], mask=kmask[:, None] & dmask[None, :],
                            other=0.0).to(tl.float32)
            nrm = tl.load(nl + kidx, mask=kmask, other=0.0)
            s = nrm[None, :] - 2.0 * tl.dot(r, tl.trans(chunk), input_precision="ieee")
            s = tl.where(kmask[None, :], s, float("inf"))
            cmin = tl.min(s, axis=1)
            # lowest index attaining the chunk minimum (independent of tl.argmin's tie rule)
            cidx = tl.min(tl.where(s == cmin[:, None], kidx[None, :], 2147483647), axis=1)
            upd = cmin < best
            best = tl.where(upd, cmin, best)
            best_i = tl.where(upd, cidx, best_i)
        vec = tl.load(cbl + best_i[:, None] * Dg + d[None, :], mask=m2, other=0.0)
        q += vec
        r -= vec
        tl.store(code_row + l, best_i.to(tl.int64), mask=rmask)
    if WRITE_Q:
        tl.store(quant + rows64[:, None] * (G * Dg) + (g * Dg + d)[None, :], q, mask=m2)


def _default_blocks(block_d: int, interpret: bool | None = None) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, num_warps) before clamping to the problem size; ``interpret=False`` gives
    the GPU's configuration also under the interpreter (tests run exactly the tiles a GPU runs)."""
    if _INTERPRET if interpret is None else interpret:
        return 256, 256, 4
    if block_d <= 128:
        return 64, 64, 4 if block_d <= 64 else 8
    if block_d <= 256:
        return 32, 64, 8
    return 16, 32, 8


def grq_encode_triton(x: torch.Tensor, codebooks: torch.Tensor, code_norms: torch.Tensor, codes: torch.Tensor,
                      quantized: torch.Tensor | None, *, block_n: int | None = None, block_k: int | None = None,
                      num_warps: int | None = None, num_stages: int | None = None) -> None:
    """Write ``codes`` (N, G, L) int64 and, unless None, ``quantized`` (N, G*Dg) float32, in place.

    x (N, G*Dg) float32/float16/bfloat16 with contiguous channels (any row stride >= G*Dg, or 0: a broadcast row);
    codebooks (G, L, K, Dg) float32 contiguous; code_norms (G, L, K) float32 contiguous, the
    squared norms of the codes. All on one device (CUDA, or CPU under TRITON_INTERPRET=1).
    block_n / block_k: rows and codes per tile (powers of two >= 16; defaults depend on Dg and on
    whether the interpreter runs); num_warps / num_stages: Triton launch options.
    """
    for name, t in (("x", x), ("codebooks", codebooks), ("code_norms", code_norms), ("codes", codes)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"grq_encode_triton: {name} must be a torch.Tensor, got {type(t).__name__}")
    if quantized is not None and not isinstance(quantized, torch.Tensor):
        raise TypeError(f"grq_encode_triton: quantized must be a torch.Tensor or None, got {type(quantized).__name__}")
    if codebooks.dim() != 4:
        raise ValueError(f"grq_encode_triton: codebooks must be (G, L, K, Dg), got shape {tuple(codebooks.shape)}")
    G, L, K, Dg = codebooks.shape
    if min(G, L, K, Dg) < 1:
        raise ValueError(f"grq_encode_triton: codebooks must be non-empty, got shape {tuple(codebooks.shape)}")
    D = G * Dg
    if x.dim() != 2 or x.shape[1] != D:
        raise ValueError(f"grq_encode_triton: x must be (N, G*Dg) = (N, {D}) for codebooks "
                         f"{tuple(codebooks.shape)}, got {tuple(x.shape)}")
    N = x.shape[0]
    if x.dtype not in _X_DTYPES:
        raise TypeError(f"grq_encode_triton: x must be float32, float16 or bfloat16, got {x.dtype}")
    if codebooks.dtype != torch.float32 or code_norms.dtype != torch.float32:
        raise TypeError(f"grq_encode_triton: codebooks and code_norms must be float32, got {codebooks.dtype} "
                        f"and {code_norms.dtype}")
    if tuple(code_norms.shape) != (G, L, K):
        raise ValueError(f"grq_encode_triton: code_norms must be (G, L, K) = {(G, L, K)}, got {tuple(code_norms.shape)}")
    if tuple(codes.shape) != (N, G, L):
        raise ValueError(f"grq_encode_triton: codes must be (N, G, L) = {(N, G, L)}, got {tuple(codes.shape)}")
    if codes.dtype != torch.int64:
        raise TypeError(f"grq_encode_triton: codes must be int64, got {codes.dtype}")
    if quantized is not None:
        if tuple(quantized.shape) != (N, D):
            raise ValueError(f"grq_encode_triton: quantized must be (N, G*Dg) = {(N, D)}, got {tuple(quantized.shape)}")
        if quantized.dtype != torch.float32:
            raise TypeError(f"grq_encode_triton: quantized must be float32, got {quantized.dtype}")
    tensors = [("x", x), ("codebooks", codebooks), ("code_norms", code_norms), ("codes", codes)]
    if quantized is not None:
        tensors.append(("quantized", quantized))
    devices = {t.device for _, t in tensors}
    if len(devices) != 1:
        raise ValueError("grq_encode_triton: all tensors must be on one device, got "
                         + ", ".join(f"{n} on {t.device}" for n, t in tensors))
    if x.device.type != "cuda" and not _INTERPRET:
        raise ValueError(f"grq_encode_triton: tensors must be on a CUDA device (or set TRITON_INTERPRET=1 "
                         f"before importing triton to run on the CPU), got {x.device}")
    for name, t in tensors[1:]:
        if not t.is_contiguous():
            raise ValueError(f"grq_encode_triton: {name} must be contiguous")
    if D > 1 and x.stride(1) != 1:
        raise ValueError(f"grq_encode_triton: x must have contiguous channels (x.stride(1) == 1), got strides {x.stride()}")
    x_stride = x.stride(0) if N > 1 else D
    if 0 < x_stride < D:  # 0: every row the same vector (a broadcast, v.expand(N, D)): only read, fine
        raise ValueError(f"grq_encode_triton: x rows overlap (x.stride(0) = {x_stride} < G*Dg = {D})")
    if N == 0:
        return
    block_d = max(16, triton.next_power_of_2(Dg))
    dn, dk, dw = _default_blocks(block_d)
    block_n = block_n or min(dn, max(16, triton.next_power_of_2(N)))
    block_k = block_k or min(dk, max(16, triton.next_power_of_2(K)))
    for name, b in (("block_n", block_n), ("block_k", block_k)):
        if b < 16 or b & (b - 1):
            raise ValueError(f"grq_encode_triton: {name} must be a power of two >= 16 (tl.dot), got {b}")
    opts = {"num_warps": num_warps or dw}
    if num_stages is not None:
        opts["num_stages"] = num_stages
    grid = (triton.cdiv(N, block_n), G)
    _grq_encode_kernel[grid](x, codebooks, code_norms, codes, quantized if quantized is not None else codes,
                             N, x_stride, G, L, K, Dg, WRITE_Q=quantized is not None,
                             BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=block_d, **opts)
