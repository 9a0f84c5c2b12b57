"""The ``ce`` op family: the output head fused with cross-entropy, chunked so that the N x V logits
matrix is never stored, plus Being-H0's two loss tricks (docs/ce.md).

``fused_linear_cross_entropy(hidden, weight, targets)`` returns the per-token loss

    z_i   = hidden_i . weight^T + bias                       (logits of row i, length V)
    S_i   = [lo, hi) if restrict[i] else [0, V)              (vocabulary-level logit masking)
    lse_i = log sum_{j in S_i} exp(z_ij)
    loss_i = lse_i - z_{i, t_i}      and 0 where t_i == -100 (ignored)

differentiable w.r.t. hidden, weight and bias: d loss_i / d z_ij = softmax_{S_i}(z_i)_j - [j == t_i]
(0 for j outside S_i and for ignored rows).

Conventions every backend keeps (tests check each against the float64 reference):

* ``targets`` int64 in [0, V) or -100 (ignore). A restricted row's target must lie in [lo, hi):
  otherwise its loss would be +inf; it is an error (``check=True``; undefined with ``check=False``).
  ``motion_restrict`` only restricts rows whose target is a motion id, so it never happens there.
* The loss is float32 (float64 when hidden is float64). hidden and weight have one dtype: float32,
  bfloat16 or float16 (math in float32: logits, softmax and the gradient accumulators), or float64
  (math in float64). Gradients come back in the inputs' dtypes.
* Empty input (N = 0) returns an empty loss; all-ignored rows give 0 and zero gradients.
* The Bernoulli draw of the logit masking happens outside the op (``motion_restrict``), so the op is
  deterministic.

Backends (``beingh0.ops.Backend``):

* ``reference``: plain torch, materialises the (N, V) logits: the readable spec, float64-capable.
* ``cpp`` slot = the **chunked torch** path (this op has no C++ kernel: its work is GEMMs, which
  torch's BLAS already does well; the loops around them are torch ops on chunks). Forward: for each
  chunk of rows, one GEMM into a reused (chunk, V) buffer, logsumexp and the target logit; it keeps
  only the per-row logsumexp. Backward: recompute each chunk's logits, turn them into
  g_i (softmax - onehot) in place, then dH = dZ W and dW += dZ^T H (one GEMM each). Rows that are
  ignored or have zero incoming gradient (filtered tokens) are skipped in both passes. Peak extra
  memory: one (chunk, V) float32 buffer plus the gradients themselves. Works on CUDA too (fallback).
* ``triton``: forward and backward in Triton (``beingh0/kernels/ce.py``). Forward: one program per
  block of rows, online logsumexp over vocabulary tiles with ``tl.dot``, target-logit gather,
  restrict range. Backward (recompute, from the saved logsumexp): one kernel over row blocks for
  d_hidden, one over vocabulary tiles for d_weight and d_bias; no atomics, deterministic.

AUTO picks the chunked path on the CPU, Triton on CUDA when it imports, else the chunked path.
The kernel backends run through the ``beingh0::fused_linear_ce`` / ``beingh0::fused_linear_ce_backward``
custom ops (fake implementations for ``torch.compile``; autograd via ``register_autograd``).

``masked_ce_loss(per_token, targets, filter=(lower_pct, upper_pct))`` is Being-H0's token-level loss
filtering in plain torch (see its docstring).
"""
from __future__ import annotations

import torch

from ..core.errors import UserValueError
from ._scaffold import call_op, new_output
from .backend import Backend, is_available, load_kernel_module, requested, resolve

__all__ = [
    "IGNORE_INDEX",
    "default_chunk_size",
    "fused_linear_cross_entropy",
    "fused_linear_cross_entropy_reference",
    "masked_ce_loss",
    "motion_restrict",
]

IGNORE_INDEX = -100
_SUPPORTED = (Backend.REFERENCE, Backend.CPP, Backend.TRITON)
_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
#: elements of one (chunk, V) logits buffer of the chunked path by default (128 MiB in float32; at
#: V = 159,868 that is 209 rows. 104-row chunks were ~10-30 % slower on a 2-core CPU: the dW GEMM's
#: inner dimension is the chunk's row count)
CHUNK_ELEMENTS = 1 << 25


def default_chunk_size(n_rows: int, vocab: int) -> int:
    """Rows per chunk of the chunked path: a (chunk, V) float32 buffer of ``CHUNK_ELEMENTS`` elements
    (128 MiB), at least 1 row, at most N."""
    return max(1, min(max(n_rows, 1), CHUNK_ELEMENTS // max(vocab, 1)))


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------------------------
# reference (readable; float64-capable)


def fused_linear_cross_entropy_reference(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                                         restrict: torch.Tensor | None = None,
                                         restrict_range: tuple[int, int] | None = None,
                                         bias: torch.Tensor | None = None, chunk_size: int | None = None,
                                         backend=None) -> torch.Tensor:
    """The spec (module docstring): materialises the (N, V) logits in float32 (float64 for float64
    hidden) and differentiates by autograd. ``chunk_size``/``backend`` are accepted and ignored."""
    dt = _math_dtype(hidden.dtype)
    logits = hidden.to(dt) @ weight.to(dt).T
    if bias is not None:
        logits = logits + bias.to(dt)
    V = logits.shape[1]
    if restrict is not None:
        lo, hi = restrict_range
        cols = torch.arange(V, device=logits.device)
        outside = (cols < lo) | (cols >= hi)
        logits = logits.masked_fill(restrict[:, None] & outside[None, :], float("-inf"))
    valid = targets != IGNORE_INDEX
    safe = torch.where(valid, targets, 0)
    lse = torch.logsumexp(logits, dim=1) if V else logits.new_full((logits.shape[0],), float("-inf"))
    target_logit = logits.gather(1, safe[:, None])[:, 0]
    return torch.where(valid, lse - target_logit, torch.zeros((), dtype=dt, device=logits.device))


# --------------------------------------------------------------------------------------------
# the chunked torch path (forward and backward) and the custom ops


def _restrict_rows(restrict: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    if restrict is None:
        return None
    r = restrict[rows]
    return r if bool(r.any()) else None


def _mask_outside(z: torch.Tensor, rr: torch.Tensor | None, lo: int, hi: int, fill: float) -> None:
    """In place: columns outside [lo, hi) of the rows where ``rr`` is True get ``fill``."""
    if rr is None:
        return
    m = rr[:, None]
    if lo > 0:
        z[:, :lo].masked_fill_(m, fill)
    if hi < z.shape[1]:
        z[:, hi:].masked_fill_(m, fill)


def _logits_into(buf: torch.Tensor, h: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """buf[:n] = h @ w^T (+ bias), all in the math dtype."""
    z = buf[:h.shape[0]]
    torch.mm(h, w.T, out=z)
    if bias is not None:
        z.add_(bias)
    return z


def _valid_rows(targets: torch.Tensor) -> torch.Tensor:
    return (targets != IGNORE_INDEX).nonzero()[:, 0]


def _chunked_forward(hidden, weight, targets, bias, restrict, lo, hi, chunk, loss, lse, units=None):
    """Write loss (N,) and lse (N,) (0 at ignored rows) in the math dtype. With ``units = (dh, dw, db)``
    also the gradients for an incoming gradient of 1 at every row (``db`` may be None):
    dZ = softmax - onehot per valid row, dh = dZ W, dw = dZ^T H, db = sum dZ (0 rows where ignored)."""
    loss.zero_()
    lse.zero_()
    rows = _valid_rows(targets)
    M = rows.numel()
    if units is not None:
        units[0].zero_()  # ignored rows; the others are overwritten
        if M == 0:
            units[1].zero_()
            if units[2] is not None:
                units[2].zero_()
    if M == 0:
        return
    dt = loss.dtype
    V = weight.shape[0]
    # 16-bit weights: every GEMM runs in float32 on a float32 copy of W (a 16-bit GEMM would round the
    # logits to 16 bits: 1e-2 off at logits of order 5)
    w = weight.to(dt).contiguous()
    b = bias.to(dt) if bias is not None else None
    buf = torch.empty((min(chunk, M), V), dtype=dt, device=hidden.device)
    first = True
    for s in range(0, M, chunk):
        idx = rows[s:s + chunk]
        h = hidden.index_select(0, idx).to(dt)
        z = _logits_into(buf, h, w, b)
        t = targets[idx]
        tz = z.gather(1, t[:, None])[:, 0]
        _mask_outside(z, _restrict_rows(restrict, idx), lo, hi, float("-inf"))
        # logsumexp by hand, so that the gradient mode reuses exp(z - max): one exp pass per chunk
        mx = z.amax(dim=1)
        z.sub_(mx[:, None]).exp_()
        se = z.sum(dim=1)
        m = mx + se.log()
        lse.index_copy_(0, idx, m)
        loss.index_copy_(0, idx, m - tz)
        if units is not None:
            dh, dw, db = units
            z.mul_(se.reciprocal()[:, None])  # softmax
            z[torch.arange(idx.numel(), device=z.device), t] -= 1
            dh.index_copy_(0, idx, z @ w)
            if first:
                torch.mm(z.T, h, out=dw)
            else:
                dw.addmm_(z.T, h)
            if db is not None:
                if first:
                    torch.sum(z, 0, out=db)
                else:
                    db.add_(z.sum(0))
        first = False


def _grad_chunks(rows, gi_all, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, dt, d_hidden, d_weight,
                 d_bias):
    """For the given rows, with per-row factors gi_all (len(rows)): dZ = gi (softmax - onehot) recomputed
    chunk by chunk; d_weight += dZ^T H, d_bias += sum dZ, and d_hidden[rows] = dZ W unless d_hidden is None."""
    M = rows.numel()
    V = weight.shape[0]
    w = weight.to(dt).contiguous()  # no copy for float32/float64
    b = bias.to(dt) if bias is not None else None
    buf = torch.empty((min(chunk, M), V), dtype=dt, device=hidden.device)
    for s in range(0, M, chunk):
        idx = rows[s:s + chunk]
        n = idx.numel()
        h = hidden.index_select(0, idx).to(dt)
        z = _logits_into(buf, h, w, b)
        _mask_outside(z, _restrict_rows(restrict, idx), lo, hi, float("-inf"))
        gi = gi_all[s:s + chunk]
        # dZ = g (softmax - onehot), in place in the logits buffer
        z.sub_(lse[idx].to(dt)[:, None]).exp_().mul_(gi[:, None])
        z[torch.arange(n, device=z.device), targets[idx]] -= gi
        if d_hidden is not None:
            d_hidden.index_copy_(0, idx, z @ w)
        d_weight.addmm_(z.T, h)
        if d_bias is not None:
            d_bias.add_(z.sum(0))


def _chunked_backward(grad, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, d_hidden, d_weight, d_bias):
    """Recompute mode. Write d_hidden (N, H), d_weight (V, H), d_bias (V,) or None (math dtype)."""
    d_hidden.zero_()
    d_weight.zero_()
    if d_bias is not None:
        d_bias.zero_()
    g = grad.to(d_hidden.dtype)
    rows = ((targets != IGNORE_INDEX) & (g != 0)).nonzero()[:, 0]
    if rows.numel():
        _grad_chunks(rows, g[rows], hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, d_hidden.dtype,
                     d_hidden, d_weight, d_bias)


def _units_backward(grad, hidden, weight, targets, bias, restrict, lse, dh_unit, dw_unit, db_unit, lo, hi, chunk):
    """Gradient-in-forward mode: scale the unit gradients by the incoming per-row gradient g.

    d_hidden = g * dh_unit exactly. For the weight (and bias), c = the most frequent g among valid rows
    (1/n for a mean, 1/n_kept at kept rows after filtering): d_weight = c * dw_unit, in place, plus a
    recomputed correction (g_i - c) dZ_i^T h_i over the rows whose g differs from c (the filtered-out
    tokens): so a plain mean costs no recomputation at all. Returns (d_hidden, d_bias or (0,))."""
    dt = dw_unit.dtype
    valid = targets != IGNORE_INDEX
    g = torch.where(valid, grad.to(dt), torch.zeros((), dtype=dt, device=grad.device))
    dh = dh_unit * g[:, None]
    gv = g[valid]
    if gv.numel() == 0:
        dw_unit.zero_()
        return dh.to(hidden.dtype), (db_unit * 0).to(bias.dtype) if bias is not None else dh.new_empty((0,))
    vals, counts = torch.unique(gv, return_counts=True)
    c = vals[counts.argmax()]
    dw_unit.mul_(c)
    db = db_unit * c if bias is not None else None
    rows = (valid & (g != c)).nonzero()[:, 0]
    if rows.numel():
        _grad_chunks(rows, g[rows] - c, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, dt, None,
                     dw_unit, db)
    return dh.to(hidden.dtype), db.to(bias.dtype) if bias is not None else dh.new_empty((0,), dtype=hidden.dtype)


def _forward_impl(hidden, weight, targets, bias, restrict, lo: int, hi: int, chunk: int, backend: str,
                  grad_in_forward: bool):
    dt = _math_dtype(hidden.dtype)
    N, H = hidden.shape
    V = weight.shape[0]
    dev = hidden.device
    loss = new_output((N,), dt, dev)
    lse = new_output((N,), dt, dev)
    if grad_in_forward:
        units = (new_output((N, H), dt, dev), new_output((V, H), dt, dev),
                 new_output((V,) if bias is not None else (0,), dt, dev))
    else:
        units = tuple(hidden.new_empty((0,), dtype=dt) for _ in range(3))
    if Backend(backend) is Backend.TRITON:
        if grad_in_forward:
            raise AssertionError("the Triton backend has no gradient-in-forward mode")
        if N:
            load_kernel_module("ce").fused_linear_ce_forward_triton(hidden, weight, targets, bias, restrict, lo, hi,
                                                                    loss, lse)
    else:
        _chunked_forward(hidden, weight, targets, bias, restrict, lo, hi, chunk, loss, lse,
                         (units[0], units[1], units[2] if bias is not None else None) if grad_in_forward else None)
    return (loss, lse, *units)


def _backward_impl(grad, hidden, weight, targets, bias, restrict, lse, lo: int, hi: int, chunk: int, backend: str):
    dt = _math_dtype(hidden.dtype)
    N, H = hidden.shape
    V = weight.shape[0]
    dh = new_output((N, H), dt, hidden.device)
    dw = new_output((V, H), dt, hidden.device)
    db = new_output((V,) if bias is not None else (0,), dt, hidden.device)
    if Backend(backend) is Backend.TRITON:
        load_kernel_module("ce").fused_linear_ce_backward_triton(
            grad.to(dt), hidden, weight, targets, bias, restrict, lse, lo, hi, dh, dw, db if bias is not None else None)
    else:
        _chunked_backward(grad, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, dh, dw,
                          db if bias is not None else None)
    return dh.to(hidden.dtype), dw.to(weight.dtype), db.to(bias.dtype) if bias is not None else db


@torch.library.custom_op("beingh0::fused_linear_ce", mutates_args=())
def _ce_op(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None,
           restrict: torch.Tensor | None, lo: int, hi: int, chunk: int, backend: str,
           grad_in_forward: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """hidden (N, H), weight (V, H), targets (N,) int64, bias (V,) or None, restrict (N,) bool or None
    -> (loss (N,), lse (N,), dh_unit (N, H), dw_unit (V, H), db_unit (V,)) in the math dtype; the three
    unit gradients (for an incoming gradient of 1 per row) are empty (0,) unless grad_in_forward."""
    return _forward_impl(hidden, weight, targets, bias, restrict, lo, hi, chunk, backend, grad_in_forward)


@_ce_op.register_fake
def _(hidden, weight, targets, bias, restrict, lo, hi, chunk, backend, grad_in_forward):
    N, H = hidden.shape
    V = weight.shape[0]
    dt = _math_dtype(hidden.dtype)
    e = lambda *shape: hidden.new_empty(shape, dtype=dt)
    if grad_in_forward:
        return e(N), e(N), e(N, H), e(V, H), e(V) if bias is not None else e(0)
    return e(N), e(N), e(0), e(0), e(0)


@torch.library.custom_op("beingh0::fused_linear_ce_backward", mutates_args=())
def _ce_backward_op(grad: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                    bias: torch.Tensor | None, restrict: torch.Tensor | None, lse: torch.Tensor, lo: int,
                    hi: int, chunk: int, backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recompute mode -> (d_hidden (N, H), d_weight (V, H), d_bias (V,) or (0,) without bias) in the
    inputs' dtypes."""
    return _backward_impl(grad, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, backend)


@_ce_backward_op.register_fake
def _(grad, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, backend):
    return (torch.empty_like(hidden, memory_format=torch.contiguous_format),
            torch.empty_like(weight, memory_format=torch.contiguous_format),
            torch.empty_like(bias, memory_format=torch.contiguous_format) if bias is not None
            else weight.new_empty((0,)))


@torch.library.custom_op("beingh0::fused_linear_ce_backward_units", mutates_args=("dw_unit",))
def _ce_backward_units_op(grad: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          bias: torch.Tensor | None, restrict: torch.Tensor | None, lse: torch.Tensor,
                          dh_unit: torch.Tensor, dw_unit: torch.Tensor, db_unit: torch.Tensor, lo: int, hi: int,
                          chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-in-forward mode -> (d_hidden (N, H), d_bias (V,) or (0,)) in the inputs' dtypes; turns
    ``dw_unit`` (math dtype) into d_weight in place (no second (V, H) buffer)."""
    return _units_backward(grad, hidden, weight, targets, bias, restrict, lse, dh_unit, dw_unit, db_unit, lo, hi,
                           chunk)


@_ce_backward_units_op.register_fake
def _(grad, hidden, weight, targets, bias, restrict, lse, dh_unit, dw_unit, db_unit, lo, hi, chunk):
    return (torch.empty_like(hidden, memory_format=torch.contiguous_format),
            torch.empty_like(bias, memory_format=torch.contiguous_format) if bias is not None
            else hidden.new_empty((0,)))


def _setup_context(ctx, inputs, output):
    hidden, weight, targets, bias, restrict, lo, hi, chunk, backend, grad_in_forward = inputs
    ctx.save_for_backward(hidden, weight, targets, bias, restrict, *output[1:])
    # lse and the unit gradients are internal: no gradient flows into them, and autograd must not
    # materialise zero gradients for them (a (V, H) zero buffer each backward)
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)
    ctx.args = (lo, hi, chunk, backend, grad_in_forward)


def _backward(ctx, grad_loss, *_):
    hidden, weight, targets, bias, restrict, lse, dh_unit, dw_unit, db_unit = ctx.saved_tensors
    lo, hi, chunk, backend, grad_in_forward = ctx.args
    if grad_loss is None:
        return (None,) * 10
    if grad_in_forward:
        # Eager: dw_unit becomes the weight gradient in place (no second (V, H) buffer); a second
        # backward through the same graph (retain_graph=True) then fails in ctx.saved_tensors above.
        # Traced (AOTAutograd, opcheck: fake/functional tensors): AOT does not take the in-place
        # update of a saved tensor, so work on a copy.
        if type(dw_unit) is not torch.Tensor or torch.compiler.is_compiling():
            dw_unit = dw_unit.clone()
        dh, db = _ce_backward_units_op(grad_loss, hidden, weight, targets, bias, restrict, lse, dh_unit, dw_unit,
                                       db_unit, lo, hi, chunk)
        dw = dw_unit if dw_unit.dtype == weight.dtype else dw_unit.to(weight.dtype)
    else:
        dh, dw, db = _ce_backward_op(grad_loss, hidden, weight, targets, bias, restrict, lse, lo, hi, chunk, backend)
    return dh, dw, None, db if bias is not None else None, None, None, None, None, None, None


_ce_op.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------------------------
# validation and the public function


def _check(op, hidden, weight, targets, restrict, restrict_range, bias, chunk_size, check_values):
    for name, t in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if hidden.dim() != 2:
        raise UserValueError(f"{op}: hidden must be (N, H) (flatten batch and sequence first), got shape "
                             f"{tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[1]:
        raise UserValueError(f"{op}: weight must be (V, H) = (V, {hidden.shape[1]}) for hidden "
                             f"{tuple(hidden.shape)}, got {tuple(weight.shape)}")
    if weight.shape[0] < 1:
        raise UserValueError(f"{op}: weight has an empty vocabulary (V = 0)")
    N, V = hidden.shape[0], weight.shape[0]
    if targets.shape != (N,):
        raise UserValueError(f"{op}: targets must be (N,) = ({N},), got {tuple(targets.shape)}")
    if targets.dtype != torch.int64:
        raise TypeError(f"{op}: targets must be int64 (class ids, {IGNORE_INDEX} = ignore), got {targets.dtype}")
    if hidden.dtype not in _DTYPES or weight.dtype != hidden.dtype:
        raise TypeError(f"{op}: hidden and weight must share one dtype of float32, bfloat16, float16, float64; got "
                        f"{hidden.dtype} and {weight.dtype}")
    tensors = [("hidden", hidden), ("weight", weight), ("targets", targets)]
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (V,):
            raise UserValueError(f"{op}: bias must be None or a (V,) = ({V},) tensor, got "
                                 f"{tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__}")
        if bias.dtype != hidden.dtype:
            raise TypeError(f"{op}: bias must have hidden's dtype {hidden.dtype}, got {bias.dtype}")
        tensors.append(("bias", bias))
    if restrict is not None:
        if not isinstance(restrict, torch.Tensor) or restrict.shape != (N,) or restrict.dtype != torch.bool:
            raise UserValueError(f"{op}: restrict must be None or an (N,) = ({N},) bool tensor, got "
                                 f"{(tuple(restrict.shape), restrict.dtype) if isinstance(restrict, torch.Tensor) else type(restrict).__name__}")
        if restrict_range is None:
            raise UserValueError(f"{op}: restrict needs restrict_range=(lo, hi), the vocabulary ids a restricted row's "
                                 "softmax runs over")
        tensors.append(("restrict", restrict))
    if restrict_range is not None:
        try:
            lo, hi = (int(x) for x in restrict_range)
        except (TypeError, ValueError):
            raise UserValueError(f"{op}: restrict_range must be (lo, hi) integers, got {restrict_range!r}") from None
        if not 0 <= lo < hi <= V:
            raise UserValueError(f"{op}: restrict_range {restrict_range!r} must satisfy 0 <= lo < hi <= V = {V}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise UserValueError(f"{op}: chunk_size must be a positive int (rows per chunk) or None, got {chunk_size!r}")
    devices = {t.device for _, t in tensors}
    if len(devices) != 1:
        raise UserValueError(f"{op}: all tensors must be on one device, got "
                             + ", ".join(f"{n} on {t.device}" for n, t in tensors))
    if not check_values or torch.compiler.is_compiling() or N == 0:
        return
    bad_t = (targets != IGNORE_INDEX) & ((targets < 0) | (targets >= V))
    if bool(bad_t.any()):
        i = int(bad_t.nonzero()[0, 0])
        raise UserValueError(f"{op}: targets[{i}] = {int(targets[i])} is outside [0, V = {V}) and not the ignore "
                             f"index {IGNORE_INDEX}")
    if restrict is not None:
        lo, hi = (int(x) for x in restrict_range)
        out = restrict & (targets != IGNORE_INDEX) & ((targets < lo) | (targets >= hi))
        if bool(out.any()):
            i = int(out.nonzero()[0, 0])
            raise UserValueError(f"{op}: row {i} is restricted to ids [{lo}, {hi}) but its target is {int(targets[i])}; "
                                 "restrict only rows whose target lies in the range (motion_restrict does)")


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                               restrict: torch.Tensor | None = None, restrict_range: tuple[int, int] | None = None,
                               bias: torch.Tensor | None = None, chunk_size: int | None = None, backend=None,
                               grad_in_forward: bool | None = None, check: bool = True) -> torch.Tensor:
    """Per-token cross-entropy of the linear head ``hidden @ weight.T + bias``, without the (N, V) logits.

    Args:
        hidden: (N, H) float32/bfloat16/float16/float64 (float64: reference and chunked backends).
        weight: (V, H), hidden's dtype and device (the LM head / unembedding).
        targets: (N,) int64 ids in [0, V), or -100 to ignore the row (loss 0, no gradient).
        restrict: (N,) bool or None: row i's softmax runs only over ids in ``restrict_range`` (logit
            masking; ``motion_restrict`` draws it). Its target must be in the range.
        restrict_range: (lo, hi), 0 <= lo < hi <= V; needed with ``restrict``.
        bias: (V,) or None.
        chunk_size: rows per chunk of the chunked path (default ``default_chunk_size``: a 128 MiB logits
            buffer). Not used by the reference or the Triton backend.
        backend: None (``$BEINGH0_BACKEND`` or auto), or ``reference``, ``cpp`` (the chunked torch
            path, any device), ``triton``.
        grad_in_forward: chunked backend only. True (the default in eager mode): when a gradient is
            needed, the forward also computes the gradients for an incoming gradient of 1 per row
            (3 GEMMs in all, like the naive path, instead of 4 with recomputation) and the backward
            scales them; the weight gradient's (V, H) buffer is then held from the forward on.
            False: the backward recomputes the logits chunk by chunk (default under torch.compile).
        check: also check values: target range, restricted targets, and a non-finite loss (NaN/inf
            in hidden, weight or bias show up there, at O(N) cost instead of a pass over the
            weight). Shapes, dtypes and devices are always checked. Skipped under ``torch.compile``.

    Returns:
        (N,) float32 per-token loss (float64 for float64 hidden), 0 at ignored rows; differentiable
        w.r.t. hidden, weight and bias.
    """
    op = "fused_linear_cross_entropy"
    _check(op, hidden, weight, targets, restrict, restrict_range, bias, chunk_size, check)
    if hidden.dtype == torch.float64 and requested(backend) is Backend.TRITON:
        raise TypeError(f"{op}: the Triton backend computes in float32; pass float32 inputs or backend='cpp'")
    want = requested(backend)
    if want is Backend.CPP:
        b = Backend.CPP  # the chunked torch path: any device, no compiled module needed
    elif want is Backend.AUTO:
        b = Backend.CPP
        if hidden.device.type == "cuda" and hidden.dtype != torch.float64 and is_available(Backend.TRITON)[0]:
            b = Backend.TRITON
    else:
        b = resolve(op, backend, hidden.device.type, _SUPPORTED)
    lo, hi = (int(x) for x in restrict_range) if restrict_range is not None else (0, weight.shape[0])
    if b is Backend.REFERENCE:
        loss = fused_linear_cross_entropy_reference(hidden, weight, targets, restrict=restrict,
                                                    restrict_range=(lo, hi), bias=bias)
        return _check_loss(op, loss, check)
    chunk = chunk_size or default_chunk_size(hidden.shape[0], weight.shape[0])
    diff = (hidden, weight) + ((bias,) if bias is not None else ())
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in diff)
    if grad_in_forward is None:
        # recompute under torch.compile: AOTAutograd does not take the in-place update of a saved tensor
        grad_in_forward = b is Backend.CPP and not torch.compiler.is_compiling()
    if grad_in_forward and b is not Backend.CPP:
        raise UserValueError(f"{op}: grad_in_forward=True needs the chunked backend ('cpp'), not {b.value!r}")
    out = call_op(_ce_op, _forward_impl, hidden, weight, targets, bias, restrict, lo, hi, chunk, b.value,
                  bool(grad_in_forward and needs_grad), differentiable=diff)
    return _check_loss(op, out[0], check)


def _check_loss(op: str, loss: torch.Tensor, check: bool) -> torch.Tensor:
    if check and not torch.compiler.is_compiling() and loss.numel() and not bool(torch.isfinite(loss).all()):
        i = int((~torch.isfinite(loss)).nonzero()[0, 0])
        raise UserValueError(f"{op}: the loss of row {i} is not finite: hidden, weight or bias contain NaN or inf "
                             "(a diverged step?)")
    return loss


# --------------------------------------------------------------------------------------------
# the two training tricks around the op


def motion_restrict(targets: torch.Tensor, motion_range: tuple[int, int], p: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The Bernoulli draw of Being-H0's vocabulary-level logit masking: (N,) bool, True with
    probability ``p`` at rows whose target is a motion id (in ``[lo, hi)``), False elsewhere (text,
    ignored rows). Pass it as ``restrict`` with ``restrict_range=motion_range``. One uniform number is
    drawn per row whatever the targets, so the draw depends only on N and the generator's state."""
    lo, hi = (int(x) for x in motion_range)
    if not 0.0 <= float(p) <= 1.0:
        raise UserValueError(f"motion_restrict: p must be in [0, 1], got {p}")
    if not lo < hi:
        raise UserValueError(f"motion_restrict: motion_range must be (lo, hi) with lo < hi, got {motion_range!r}")
    u = torch.rand(targets.shape, generator=generator, device=generator.device if generator is not None else "cpu")
    return ((targets >= lo) & (targets < hi)) & (u.to(targets.device) < p)


def masked_ce_loss(per_token: torch.Tensor, targets: torch.Tensor,
                   filter: tuple[float, float] | None = None, *, empty: str = "zero") -> tuple[torch.Tensor, int]:
    """Being-H0's token-level loss filtering and the mean over kept tokens.

    Args:
        per_token: (N,) per-token losses (``fused_linear_cross_entropy``), 0 at ignored rows.
        targets: (N,) int64; rows equal to -100 are ignored (never counted, never averaged over: the
            official code divides by all positions, a bug).
        filter: None (keep every non-ignored token) or (lower_pct, upper_pct) with
            0 <= lower_pct <= upper_pct <= 100: keep the tokens whose loss l satisfies
            q(lower) <= l <= q(upper) (inclusive), where q is ``torch.quantile(..., interpolation=
            'linear')`` of the non-ignored losses (detached). (0, 100) keeps every token; equal losses
            are all kept (they equal both bounds); a single token is always kept.
        empty: what n_kept == 0 (no non-ignored token) returns: "zero" (a 0 loss that still depends on
            ``per_token``, so backward runs and gives zero gradients) or "error" (UserValueError).

    Returns:
        (loss, n_kept): the mean of the kept losses (a 0-dim tensor; gradient 1/n_kept to each kept
        token, 0 to every other) and the number of kept tokens.
    """
    if per_token.dim() != 1 or targets.shape != per_token.shape:
        raise UserValueError(f"masked_ce_loss: per_token and targets must both be (N,), got "
                             f"{tuple(per_token.shape)} and {tuple(targets.shape)}")
    if empty not in ("zero", "error"):
        raise UserValueError(f"masked_ce_loss: empty must be 'zero' or 'error', got {empty!r}")
    keep = targets != IGNORE_INDEX
    if filter is not None:
        lo_p, hi_p = (float(x) for x in filter)
        if not 0.0 <= lo_p <= hi_p <= 100.0:
            raise UserValueError(f"masked_ce_loss: filter must be (lower_pct, upper_pct) with 0 <= lower <= upper <= "
                                 f"100, got {filter!r}")
        vals = per_token.detach()[keep]
        if vals.numel():
            q = torch.quantile(vals.double(), torch.tensor([lo_p / 100, hi_p / 100], dtype=torch.float64,
                                                           device=vals.device), interpolation="linear")
            x = per_token.detach().double()
            # inclusive bounds; (0, 100) are the min and max exactly, so every token is kept
            lower = x >= q[0] if lo_p > 0 else torch.ones_like(keep)
            upper = x <= q[1] if hi_p < 100 else torch.ones_like(keep)
            keep = keep & lower & upper
    n = int(keep.sum())
    if n == 0:
        if empty == "error":
            raise UserValueError("masked_ce_loss: no token left to average (all ignored or filtered out)")
        return (per_token * 0).sum(), 0
    return torch.where(keep, per_token, torch.zeros((), dtype=per_token.dtype, device=per_token.device)).sum() / n, n
