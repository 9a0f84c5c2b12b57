"""Triton forward of ``fused_linear_cross_entropy`` (spec: ``fused_linear_cross_entropy_reference`` in
``beingh0/ops/ce.py``). The backward is the chunked torch backward of that module.

One program per block of BLOCK_M rows. It streams the vocabulary in tiles of BLOCK_V ids; a tile's
logits are ``sum_k tl.dot(h[:, k-tile], w[v-tile, k-tile]^T)`` over BLOCK_K slices of the hidden
dim (float32 accumulation, ``input_precision="ieee"``), plus the bias. Per row it keeps the online
logsumexp (running max m and sum s of exp(z - m)) over the ids its softmax covers ([lo, hi) for a
restricted row, [0, V) otherwise; other ids and the padding past V count as -inf) and picks up the
target's logit when its tile passes. Nothing of size N x V is stored; the outputs are the per-row
loss and logsumexp (0 at ignored rows, target -100).

float32 inputs: exact float32 dots (``input_precision="ieee"``, not tf32). 16-bit inputs on a GPU:
``tl.dot`` in their dtype with float32 accumulation (tensor cores); under the interpreter, whose
bfloat16 ``tl.dot`` is wrong, they are converted to float32 first. float64 is computed in float32
(the public function routes float64 to the chunked path). Block sizes: first guesses for an
H100 (no GPU was available when this was written); under the interpreter, small tiles.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


@triton.jit
def _ce_forward_kernel(h, w, b, t, r, loss, lse, N, V, H, h_stride, w_stride, lo, hi,
                       HAS_BIAS: tl.constexpr, HAS_RESTRICT: tl.constexpr, DOT_F32: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < N
    rows64 = rows.to(tl.int64)
    tgt = tl.load(t + rows64, mask=rmask, other=-100)
    valid = rmask & (tgt != -100)
    if HAS_RESTRICT:
        rr = tl.load(r + rows64, mask=rmask, other=0) != 0
    else:
        rr = tl.zeros((BLOCK_M,), dtype=tl.int1)
    m = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    s = tl.zeros((BLOCK_M,), dtype=tl.float32)
    tz = tl.zeros((BLOCK_M,), dtype=tl.float32)
    kk = tl.arange(0, BLOCK_K)
    vv = tl.arange(0, BLOCK_V)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + vv
        cmask = cols < V
        cols64 = cols.to(tl.int64)
        z = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
        for k0 in range(0, H, BLOCK_K):
            k = k0 + kk
            kmask = k < H
            ht = tl.load(h + rows64[:, None] * h_stride + k[None, :], mask=rmask[:, None] & kmask[None, :],
                         other=0.0)
            wt = tl.load(w + cols64[:, None] * w_stride + k[None, :], mask=cmask[:, None] & kmask[None, :],
                         other=0.0)
            if DOT_F32:
                z += tl.dot(ht.to(tl.float32), tl.trans(wt.to(tl.float32)), input_precision="ieee")
            else:  # 16-bit inputs on a GPU: tensor-core dot, float32 accumulation
                z += tl.dot(ht, tl.trans(wt))
        if HAS_BIAS:
            z += tl.load(b + cols64, mask=cmask, other=0.0).to(tl.float32)[None, :]
        # the target's logit (before masking; a restricted row's target lies inside its range)
        tz += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), axis=1)
        inside = cmask[None, :] & (~rr[:, None] | ((cols[None, :] >= lo) & (cols[None, :] < hi)))
        z = tl.where(inside, z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, axis=1))
        # rows whose every id so far is excluded keep m = -inf: guard exp(-inf - -inf)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(z - m_safe[:, None]), axis=1)
        m = m_new
    out_lse = tl.where(valid, m + tl.log(s), 0.0)
    out_loss = tl.where(valid, out_lse - tz, 0.0)
    tl.store(lse + rows64, out_lse.to(lse.dtype.element_ty), mask=rmask)
    tl.store(loss + rows64, out_loss.to(loss.dtype.element_ty), mask=rmask)


def fused_linear_ce_forward_triton(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                   bias: torch.Tensor | None, restrict: torch.Tensor | None, lo: int, hi: int,
                                   loss: torch.Tensor, lse: torch.Tensor, *, block_m: int | None = None,
                                   block_v: int | None = None, block_k: int | None = None,
                                   num_warps: int | None = None) -> None:
    """Write ``loss`` and ``lse`` (N,) (float32 or float64) in place.

    hidden (N, H) and weight (V, H) one dtype of float32/float16/bfloat16/float64 with contiguous
    columns (any row stride, or 0 for a broadcast row); targets (N,) int64 (-100 = ignore); bias (V,)
    or None; restrict (N,) bool or None with 0 <= lo < hi <= V. All on one device (CUDA, or CPU
    under TRITON_INTERPRET=1). block_m / block_v / block_k: tile sizes (powers of two >= 16).
    """
    op = "fused_linear_ce_forward_triton"
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: hidden (N, H) and weight (V, H) expected, got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}")
    N, H = hidden.shape
    V = weight.shape[0]
    if hidden.dtype not in _DTYPES or weight.dtype != hidden.dtype:
        raise TypeError(f"{op}: hidden and weight must share a float dtype, got {hidden.dtype} and {weight.dtype}")
    if targets.shape != (N,) or targets.dtype != torch.int64:
        raise ValueError(f"{op}: targets must be (N,) int64, got {tuple(targets.shape)} {targets.dtype}")
    for name, o in (("loss", loss), ("lse", lse)):
        if o.shape != (N,) or o.dtype not in (torch.float32, torch.float64) or not o.is_contiguous():
            raise ValueError(f"{op}: {name} must be a contiguous (N,) float32/float64 tensor")
    if bias is not None and bias.shape != (V,):
        raise ValueError(f"{op}: bias must be (V,), got {tuple(bias.shape)}")
    if restrict is not None and (restrict.shape != (N,) or restrict.dtype != torch.bool):
        raise ValueError(f"{op}: restrict must be (N,) bool")
    if not 0 <= lo < hi <= V:
        raise ValueError(f"{op}: need 0 <= lo < hi <= V, got lo={lo}, hi={hi}, V={V}")
    ts = [hidden, weight, targets, loss, lse] + [x for x in (bias, restrict) if x is not None]
    if len({x.device for x in ts}) != 1:
        raise ValueError(f"{op}: all tensors must be on one device")
    if hidden.device.type != "cuda" and not _INTERPRET:
        raise ValueError(f"{op}: tensors must be on a CUDA device (or set TRITON_INTERPRET=1 before importing triton)")
    if N == 0:
        return
    if H > 1 and hidden.stride(1) != 1:
        hidden = hidden.contiguous()
    if H > 1 and weight.stride(1) != 1:
        weight = weight.contiguous()
    targets = targets.contiguous()
    h_stride = hidden.stride(0) if N > 1 else H
    w_stride = weight.stride(0) if V > 1 else H
    if _INTERPRET:
        dm, dv, dk, dw = 16, 64, 64, 4
    else:
        dm, dv, dk, dw = 64, 128, 64, 8
    block_m = block_m or min(dm, max(16, triton.next_power_of_2(N)))
    block_v = block_v or min(dv, max(16, triton.next_power_of_2(V)))
    block_k = block_k or min(dk, max(16, triton.next_power_of_2(H)))
    for name, v in (("block_m", block_m), ("block_v", block_v), ("block_k", block_k)):
        if v < 16 or v & (v - 1):
            raise ValueError(f"{op}: {name} must be a power of two >= 16 (tl.dot), got {v}")
    r = restrict.contiguous().view(torch.uint8) if restrict is not None else targets
    _ce_forward_kernel[(triton.cdiv(N, block_m),)](
        hidden, weight, bias.contiguous() if bias is not None else hidden, targets, r, loss, lse, N, V, H, h_stride,
        w_stride, lo, hi, HAS_BIAS=bias is not None, HAS_RESTRICT=restrict is not None,
        DOT_F32=_INTERPRET or hidden.dtype in (torch.float32, torch.float64), BLOCK_M=block_m,
        BLOCK_V=block_v, BLOCK_K=block_k, num_warps=num_warps or dw)
