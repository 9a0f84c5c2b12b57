"""Triton forward and backward of ``fused_linear_cross_entropy`` (spec:
``fused_linear_cross_entropy_reference`` in ``beingh0/ops/ce.py``).

Forward:

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

Backward (recompute: from the forward's per-row logsumexp and the incoming gradient g (N,)), two
kernels, no atomics, so deterministic:

* ``_ce_backward_dh_kernel``, one program per block of BLOCK_M rows: for each vocabulary tile it
  recomputes the logits block (as the forward), forms dZ = g_i (softmax - onehot(t_i)) (0 outside a
  restricted row's [lo, hi), at padding and at ignored rows) and adds dZ W_tile into its rows of
  d_hidden, BLOCK_K columns at a time.
* ``_ce_backward_dw_kernel``, one program per vocabulary tile: for each row block it recomputes the
  same logits block and dZ and adds dZ^T H_rows into its ids' rows of d_weight; d_bias = the column
  sums of dZ, kept in registers.

d_hidden / d_weight are float32 buffers in global memory that only their program writes; each
program adds into them tile by tile (read-modify-write, with ``tl.debug_barrier()`` between tiles so
that every thread sees the previous tile's stores): the accumulator of a full (BLOCK_M, H) row block
would not fit in registers for H in the thousands. Row blocks whose incoming gradient is 0 at every
row (ignored or filtered tokens) are skipped by both kernels. The logits GEMM runs twice (once per
kernel) plus the two gradient GEMMs: 4 GEMMs, like the chunked recompute mode. 16-bit inputs on a
GPU: the gradient dots take dZ rounded to the input dtype (float32 accumulation), as a 16-bit
autograd head does. ``aot_compile`` compiles all three kernels for a CUDA target without a GPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

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


@dataclass
class _Launch:
    """What the forward and backward launchers share: checked inputs, strides, tiles, constexprs."""

    N: int
    V: int
    H: int
    hidden: torch.Tensor
    weight: torch.Tensor
    targets: torch.Tensor
    b: torch.Tensor           # the bias, or any pointer when there is none
    r: torch.Tensor           # restrict as uint8, or any pointer when there is none
    h_stride: int
    w_stride: int
    const: dict               # constexprs and num_warps for the kernel launch


def _launch(op, hidden, weight, targets, bias, restrict, lo, hi, others, block_m, block_v, block_k,
            num_warps) -> _Launch | None:
    """Check the arguments every CE kernel takes (``others``: the launcher's own tensors, for the
    device check) and pick the tiles; None for an empty batch (nothing to launch)."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: hidden (N, H) and weight (V, H) expected, got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}")
    N, H = hidden.shape
    V = weight.shape[0]
    if hidden.dtype not in _DTYPES or weight.dtype != hidden.dtype:
        raise TypeError(f"{op}: hidden and weight must share a float dtype, got {hidden.dtype} and {weight.dtype}")
    if targets.shape != (N,) or targets.dtype != torch.int64:
        raise ValueError(f"{op}: targets must be (N,) int64, got {tuple(targets.shape)} {targets.dtype}")
    if bias is not None and bias.shape != (V,):
        raise ValueError(f"{op}: bias must be (V,), got {tuple(bias.shape)}")
    if restrict is not None and (restrict.shape != (N,) or restrict.dtype != torch.bool):
        raise ValueError(f"{op}: restrict must be (N,) bool")
    if not 0 <= lo < hi <= V:
        raise ValueError(f"{op}: need 0 <= lo < hi <= V, got lo={lo}, hi={hi}, V={V}")
    ts = [hidden, weight, targets, *others] + [x for x in (bias, restrict) if x is not None]
    if len({x.device for x in ts}) != 1:
        raise ValueError(f"{op}: all tensors must be on one device")
    if hidden.device.type != "cuda" and not _INTERPRET:
        raise ValueError(f"{op}: tensors must be on a CUDA device (or set TRITON_INTERPRET=1 before importing triton)")
    if N == 0:
        return None
    if H > 1 and hidden.stride(1) != 1:
        hidden = hidden.contiguous()
    if H > 1 and weight.stride(1) != 1:
        weight = weight.contiguous()
    dm, dv, dk, dw = (16, 64, 64, 4) if _INTERPRET else (64, 128, 64, 8)
    block_m = block_m or min(dm, max(16, triton.next_power_of_2(N)))
    block_v = block_v or min(dv, max(16, triton.next_power_of_2(V)))
    block_k = block_k or min(dk, max(16, triton.next_power_of_2(H)))
    for name, v in (("block_m", block_m), ("block_v", block_v), ("block_k", block_k)):
        if v < 16 or v & (v - 1):
            raise ValueError(f"{op}: {name} must be a power of two >= 16 (tl.dot), got {v}")
    targets = targets.contiguous()
    const = {"HAS_BIAS": bias is not None, "HAS_RESTRICT": restrict is not None,
             "DOT_F32": _INTERPRET or hidden.dtype in (torch.float32, torch.float64), "BLOCK_M": block_m,
             "BLOCK_V": block_v, "BLOCK_K": block_k, "num_warps": num_warps or dw}
    return _Launch(N, V, H, hidden, weight, targets, bias.contiguous() if bias is not None else hidden,
                   restrict.contiguous().view(torch.uint8) if restrict is not None else targets,
                   hidden.stride(0) if N > 1 else H, weight.stride(0) if V > 1 else H, const)


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
    L = _launch(op, hidden, weight, targets, bias, restrict, lo, hi, (loss, lse), block_m, block_v, block_k, num_warps)
    for name, o in (("loss", loss), ("lse", lse)):
        if o.shape != (hidden.shape[0],) or o.dtype not in (torch.float32, torch.float64) or not o.is_contiguous():
            raise ValueError(f"{op}: {name} must be a contiguous (N,) float32/float64 tensor")
    if L is None:
        return
    _ce_forward_kernel[(triton.cdiv(L.N, L.const["BLOCK_M"]),)](
        L.hidden, L.weight, L.b, L.targets, L.r, loss, lse, L.N, L.V, L.H, L.h_stride, L.w_stride, lo, hi,
        **L.const)


@triton.jit
def _ce_logits_tile(h, w, b, rows64, rmask, cols64, cmask, H, h_stride, w_stride, HAS_BIAS: tl.constexpr,
                    DOT_F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr):
    """The (BLOCK_M, BLOCK_V) float32 logits block of the given rows and vocabulary ids (as the forward)."""
    kk = tl.arange(0, BLOCK_K)
    z = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        k = k0 + kk
        kmask = k < H
        ht = tl.load(h + rows64[:, None] * h_stride + k[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
        wt = tl.load(w + cols64[:, None] * w_stride + k[None, :], mask=cmask[:, None] & kmask[None, :], other=0.0)
        if DOT_F32:
            z += tl.dot(ht.to(tl.float32), tl.trans(wt.to(tl.float32)), input_precision="ieee")
        else:
            z += tl.dot(ht, tl.trans(wt))
    if HAS_BIAS:
        z += tl.load(b + cols64, mask=cmask, other=0.0).to(tl.float32)[None, :]
    return z


@triton.jit
def _ce_dlogits_tile(z, g, lse_r, tgt, valid, rr, cols, cmask, lo, hi):
    """dZ = g_i (softmax_{S_i}(z_i) - onehot(t_i)): 0 outside S_i, at padding, and at ignored rows."""
    inside = valid[:, None] & cmask[None, :] & (~rr[:, None] | ((cols[None, :] >= lo) & (cols[None, :] < hi)))
    p = tl.where(inside, tl.exp(z - lse_r[:, None]), 0.0)
    p = p - tl.where(valid[:, None] & (cols[None, :] == tgt[:, None]), 1.0, 0.0)
    return p * g[:, None]


@triton.jit
def _ce_row_state(t, r, gr, lser, rows, N, HAS_RESTRICT: tl.constexpr, BLOCK_M: tl.constexpr):
    rmask = rows < N
    rows64 = rows.to(tl.int64)
    tgt = tl.load(t + rows64, mask=rmask, other=-100)
    valid = rmask & (tgt != -100)
    if HAS_RESTRICT:
        rr = tl.load(r + rows64, mask=rmask, other=0) != 0
    else:
        rr = tl.zeros((BLOCK_M,), dtype=tl.int1)
    g = tl.where(valid, tl.load(gr + rows64, mask=rmask, other=0.0).to(tl.float32), 0.0)
    lse_r = tl.where(valid, tl.load(lser + rows64, mask=rmask, other=0.0).to(tl.float32), 0.0)
    return rmask, rows64, tgt, valid, rr, g, lse_r


@triton.jit
def _ce_backward_dh_kernel(h, w, b, t, r, gr, lser, dh, N, V, H, h_stride, w_stride, lo, hi,
                           HAS_BIAS: tl.constexpr, HAS_RESTRICT: tl.constexpr, DOT_F32: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr):
    """One program per block of rows: d_hidden[rows] = sum over vocabulary tiles of dZ_tile W_tile.
    dh (N, H) float32, zeroed, contiguous: the program owns its rows and adds into them tile by tile
    (read-modify-write, a barrier between vocabulary tiles): no atomics, a fixed order."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask, rows64, tgt, valid, rr, g, lse_r = _ce_row_state(t, r, gr, lser, rows, N, HAS_RESTRICT, BLOCK_M)
    if tl.sum(tl.where(g != 0.0, 1, 0), axis=0) > 0:  # all ignored or zero incoming gradient: dh stays 0
        kk = tl.arange(0, BLOCK_K)
        vv = tl.arange(0, BLOCK_V)
        for v0 in range(0, V, BLOCK_V):
            cols = v0 + vv
            cmask = cols < V
            cols64 = cols.to(tl.int64)
            z = _ce_logits_tile(h, w, b, rows64, rmask, cols64, cmask, H, h_stride, w_stride, HAS_BIAS, DOT_F32,
                                BLOCK_M, BLOCK_V, BLOCK_K)
            dz = _ce_dlogits_tile(z, g, lse_r, tgt, valid, rr, cols, cmask, lo, hi)
            for k0 in range(0, H, BLOCK_K):
                k = k0 + kk
                kmask = k < H
                wt = tl.load(w + cols64[:, None] * w_stride + k[None, :], mask=cmask[:, None] & kmask[None, :],
                             other=0.0)
                if DOT_F32:
                    part = tl.dot(dz, wt.to(tl.float32), input_precision="ieee")
                else:
                    part = tl.dot(dz.to(wt.dtype), wt)
                ptrs = dh + rows64[:, None] * H + k[None, :]
                msk = rmask[:, None] & kmask[None, :]
                tl.store(ptrs, tl.load(ptrs, mask=msk, other=0.0) + part, mask=msk)
            tl.debug_barrier()  # this tile's stores are seen by every thread of the program before the next loads


@triton.jit
def _ce_backward_dw_kernel(h, w, b, t, r, gr, lser, dw, db, N, V, H, h_stride, w_stride, lo, hi,
                           HAS_BIAS: tl.constexpr, HAS_RESTRICT: tl.constexpr, DOT_F32: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr):
    """One program per vocabulary tile: d_weight[tile] = sum over row blocks of dZ^T H (read-modify-
    write into the zeroed contiguous float32 dw (V, H), a barrier between row blocks) and d_bias[tile]
    = sum of dZ over rows (in registers). Row blocks without a non-zero incoming gradient are skipped."""
    pid = tl.program_id(0)
    vv = tl.arange(0, BLOCK_V)
    cols = pid * BLOCK_V + vv
    cmask = cols < V
    cols64 = cols.to(tl.int64)
    kk = tl.arange(0, BLOCK_K)
    mm = tl.arange(0, BLOCK_M)
    dbias = tl.zeros((BLOCK_V,), dtype=tl.float32)
    for m0 in range(0, N, BLOCK_M):
        rows = m0 + mm
        rmask, rows64, tgt, valid, rr, g, lse_r = _ce_row_state(t, r, gr, lser, rows, N, HAS_RESTRICT, BLOCK_M)
        if tl.sum(tl.where(g != 0.0, 1, 0), axis=0) > 0:
            z = _ce_logits_tile(h, w, b, rows64, rmask, cols64, cmask, H, h_stride, w_stride, HAS_BIAS, DOT_F32,
                                BLOCK_M, BLOCK_V, BLOCK_K)
            dz = _ce_dlogits_tile(z, g, lse_r, tgt, valid, rr, cols, cmask, lo, hi)
            if HAS_BIAS:
                dbias += tl.sum(dz, axis=0)
            dzt = tl.trans(dz)
            for k0 in range(0, H, BLOCK_K):
                k = k0 + kk
                kmask = k < H
                ht = tl.load(h + rows64[:, None] * h_stride + k[None, :], mask=rmask[:, None] & kmask[None, :],
                             other=0.0)
                if DOT_F32:
                    part = tl.dot(dzt, ht.to(tl.float32), input_precision="ieee")
                else:
                    part = tl.dot(dzt.to(ht.dtype), ht)
                ptrs = dw + cols64[:, None] * H + k[None, :]
                msk = cmask[:, None] & kmask[None, :]
                tl.store(ptrs, tl.load(ptrs, mask=msk, other=0.0) + part, mask=msk)
            tl.debug_barrier()
    if HAS_BIAS:
        tl.store(db + cols64, dbias, mask=cmask)


def fused_linear_ce_backward_triton(grad: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor,
                                    targets: torch.Tensor, bias: torch.Tensor | None, restrict: torch.Tensor | None,
                                    lse: torch.Tensor, lo: int, hi: int, d_hidden: torch.Tensor,
                                    d_weight: torch.Tensor, d_bias: torch.Tensor | None, *,
                                    block_m: int | None = None, block_v: int | None = None,
                                    block_k: int | None = None, num_warps: int | None = None) -> None:
    """Write d_hidden (N, H), d_weight (V, H) and d_bias (V,) (if bias is given) in place: contiguous
    float32 tensors, overwritten. grad (N,) the incoming gradient of the per-row loss, lse (N,) the
    forward's per-row logsumexp; the other arguments as ``fused_linear_ce_forward_triton``.

    Two kernels, no atomics, deterministic: one program per block of rows for d_hidden (looping over
    the vocabulary tiles), one program per vocabulary tile for d_weight and d_bias (looping over the
    row blocks); each recomputes its logits blocks with ``tl.dot`` (the logits GEMM runs twice).
    """
    op = "fused_linear_ce_backward_triton"
    others = [grad, lse, d_hidden, d_weight] + ([d_bias] if d_bias is not None else [])
    L = _launch(op, hidden, weight, targets, bias, restrict, lo, hi, others, block_m, block_v, block_k, num_warps)
    (N, H), V = hidden.shape, weight.shape[0]
    for name, x in (("grad", grad), ("lse", lse)):
        if x.shape != (N,) or not x.is_floating_point():
            raise ValueError(f"{op}: {name} must be an (N,) float tensor, got {tuple(x.shape)} {x.dtype}")
    outs = [("d_hidden", d_hidden, (N, H)), ("d_weight", d_weight, (V, H))]
    if bias is not None:
        if d_bias is None:
            raise ValueError(f"{op}: d_bias is needed with a bias")
        outs.append(("d_bias", d_bias, (V,)))
    for name, o, shape in outs:
        if o.shape != shape or o.dtype != torch.float32 or not o.is_contiguous():
            raise ValueError(f"{op}: {name} must be a contiguous {shape} float32 tensor")
    d_hidden.zero_()
    d_weight.zero_()
    if d_bias is not None:
        d_bias.zero_()
    if L is None:
        return
    grad, lse = grad.contiguous(), lse.contiguous()
    args = (L.hidden, L.weight, L.b, L.targets, L.r, grad, lse)
    sizes = (L.N, L.V, L.H, L.h_stride, L.w_stride, lo, hi)
    _ce_backward_dh_kernel[(triton.cdiv(L.N, L.const["BLOCK_M"]),)](*args, d_hidden, *sizes, **L.const)
    _ce_backward_dw_kernel[(triton.cdiv(L.V, L.const["BLOCK_V"]),)](
        *args, d_weight, d_bias if d_bias is not None else d_weight, *sizes, **L.const)


def aot_compile(dtype: str = "bf16", capability: int = 90, *, block_m: int = 64, block_v: int = 128,
                block_k: int = 64, num_warps: int = 8) -> dict:
    """Compile the forward and both backward kernels ahead of time for a CUDA target, without a GPU
    (``triton.compile`` with a ``GPUTarget``; run with TRITON_INTERPRET unset): the check that the
    tensor-core path for 16-bit inputs (``dtype`` "bf16"/"fp16"; "fp32" for the float32 path) lowers
    to PTX and a cubin. Returns {kernel name: compiled kernel}; raises if a kernel does not compile."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    p = "*" + dtype
    ints = {k: "i32" for k in ("N", "V", "H", "h_stride", "w_stride", "lo", "hi")}
    const = {"HAS_BIAS": True, "HAS_RESTRICT": True, "DOT_F32": dtype == "fp32", "BLOCK_M": block_m, "BLOCK_V": block_v,
                 "BLOCK_K": block_k}
    rows = {"h": p, "w": p, "b": p, "t": "*i64", "r": "*u8"}
    sigs = {
        "_ce_forward_kernel": {**rows, "loss": "*fp32", "lse": "*fp32"},
        "_ce_backward_dh_kernel": {**rows, "gr": "*fp32", "lser": "*fp32", "dh": "*fp32"},
        "_ce_backward_dw_kernel": {**rows, "gr": "*fp32", "lser": "*fp32", "dw": "*fp32", "db": "*fp32"},
    }
    out = {}
    for name, sig in sigs.items():
        sig = {**sig, **ints, **{k: "constexpr" for k in const}}
        out[name] = triton.compile(ASTSource(globals()[name], sig, constexprs=const),
                                   target=GPUTarget("cuda", capability, 32), options={"num_warps": num_warps})
    return out
