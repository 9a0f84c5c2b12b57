"""fused_linear_cross_entropy, motion_restrict and masked_ce_loss against float64 references.

The generic contract (opcheck, empty batch, strided/broadcast hidden, poisoned outputs, hidden's
gradient) runs in tests/ops/test_contract.py; here: every backend and mode with the gradients of
hidden, weight and bias, odd shapes, the logit masking and the loss filtering at their edges,
gradcheck, torch.compile, and bad input.
"""
import pytest
import torch

from beingh0.core.errors import UserValueError
from beingh0.ops import (
    Backend,
    fused_linear_cross_entropy,
    fused_linear_cross_entropy_reference,
    masked_ce_loss,
    motion_restrict,
)
from beingh0.ops.ce import IGNORE_INDEX, default_chunk_size
from beingh0.testing import skip_unless_available

# (backend, dtype, grad_in_forward): the chunked path in both modes and both float dtypes, Triton (forward
# and backward kernels)
CONFIGS = [("cpp", torch.float64, True), ("cpp", torch.float64, False), ("cpp", torch.float32, True),
           ("cpp", torch.float32, False), ("triton", torch.float32, None)]
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _problem(N, H, V, seed, *, ignore_every=4, bias=True, restrict_range=None, restrict_p=0.5):
    """float32-representable float64 inputs; targets with every ``ignore_every``-th row ignored; with a
    range, rows whose target lies in it are restricted with probability restrict_p."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, H, generator=g).double()
    w = (0.5 * torch.randn(V, H, generator=g)).double()
    b = (0.2 * torch.randn(V, generator=g)).double() if bias else None
    t = torch.randint(0, V, (N,), generator=g)
    if ignore_every:
        t[::ignore_every] = IGNORE_INDEX
    r = None
    if restrict_range is not None:
        r = motion_restrict(t, restrict_range, restrict_p, g)
    return h, w, b, t, r


def _loss_and_grads(backend, dtype, gif, h, w, b, t, r, rng, grad, chunk=None):
    hh = h.to(dtype).requires_grad_()
    ww = w.to(dtype).requires_grad_()
    bb = b.to(dtype).requires_grad_() if b is not None else None
    kw = {} if backend == "reference" else {"backend": backend, "chunk_size": chunk, "grad_in_forward": gif}
    fn = fused_linear_cross_entropy_reference if backend == "reference" else fused_linear_cross_entropy
    loss = fn(hh, ww, t, restrict=r, restrict_range=rng, bias=bb, **kw)
    inputs = [x for x in (hh, ww, bb) if x is not None]
    grads = torch.autograd.grad((loss * grad.to(loss.dtype)).sum(), inputs, allow_unused=False) if loss.numel() else \
        [torch.zeros_like(x) for x in inputs]
    return loss.detach(), grads


def _check_against_reference(backend, dtype, gif, h, w, b, t, r=None, rng=None, grad=None, chunk=None):
    N = h.shape[0]
    if grad is None:
        grad = torch.randn(N, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ref_loss, ref_grads = _loss_and_grads("reference", torch.float64, None, h, w, b, t, r, rng, grad)
    loss, grads = _loss_and_grads(backend, dtype, gif, h, w, b, t, r, rng, grad, chunk)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert loss.shape == (N,)
    tol = TOL[dtype]
    torch.testing.assert_close(loss.double(), ref_loss, atol=tol, rtol=tol)
    for name, a, e in zip(("hidden", "weight", "bias"), grads, ref_grads):
        assert a.dtype == dtype, name
        torch.testing.assert_close(a.double(), e, atol=tol, rtol=tol, msg=lambda m, name=name: f"d_{name}: {m}")
    return loss


@pytest.fixture(params=CONFIGS, ids=lambda c: f"{c[0]}-{str(c[1])[6:]}-{'gif' if c[2] else 'recompute'}")
def config(request):
    backend, _dtype, _gif = request.param
    skip_unless_available(Backend(backend))
    return request.param


# --------------------------------------------------------------------------------------------
# loss and gradients per backend


@pytest.mark.parametrize("N,H,V,chunk", [(13, 24, 70, 4), (1, 5, 17, 3), (33, 16, 130, None), (6, 3, 1, 2)])
def test_loss_and_gradients_match_reference(config, N, H, V, chunk):
    """N not a multiple of the chunk, V not a multiple of any tile, V = 1, a single row."""
    backend, dtype, gif = config
    h, w, b, t, _ = _problem(N, H, V, seed=N + V)
    _check_against_reference(backend, dtype, gif, h, w, b, t, chunk=chunk)
    _check_against_reference(backend, dtype, gif, h, w, None, t, chunk=chunk)


def test_restricted_rows_match_reference(config):
    backend, dtype, gif = config
    h, w, b, t, r = _problem(40, 12, 50, seed=3, restrict_range=(20, 35), restrict_p=0.7)
    assert r.any() and not r.all()
    _check_against_reference(backend, dtype, gif, h, w, b, t, r, (20, 35), chunk=7)


@pytest.mark.parametrize("kind", ["constant", "filtered", "zero", "sparse"])
def test_incoming_gradient_patterns(config, kind):
    """The gradient-in-forward mode scales by the most frequent incoming gradient and recomputes the
    other rows: a mean (constant), a filtered mean (0 at some rows), all zero, one non-zero row."""
    backend, dtype, gif = config
    N = 21
    h, w, b, t, r = _problem(N, 10, 29, seed=11, restrict_range=(5, 15))
    grad = {"constant": torch.full((N,), 1 / N, dtype=torch.float64),
            "filtered": torch.where(torch.arange(N) % 5 == 1, 0.0, 1 / 13).double(),
            "zero": torch.zeros(N, dtype=torch.float64),
            "sparse": torch.zeros(N, dtype=torch.float64).index_fill_(0, torch.tensor([7]), 2.5)}[kind]
    _check_against_reference(backend, dtype, gif, h, w, b, t, r, (5, 15), grad=grad, chunk=4)


def test_all_ignored_rows_and_empty_batch(config):
    backend, dtype, gif = config
    h, w, b, t, _ = _problem(7, 6, 19, seed=5)
    t[:] = IGNORE_INDEX
    loss = _check_against_reference(backend, dtype, gif, h, w, b, t, chunk=3)
    assert (loss == 0).all()
    h0 = h[:0].clone()
    loss0 = fused_linear_cross_entropy(h0.to(dtype), w.to(dtype), t[:0], backend=backend)
    assert loss0.shape == (0,)
    hh, ww = h0.to(dtype).detach().requires_grad_(), w.to(dtype).detach().requires_grad_()
    fused_linear_cross_entropy(hh, ww, t[:0], backend=backend, grad_in_forward=gif).sum().backward()
    assert hh.grad.shape == (0, 6) and (ww.grad == 0).all()


def test_bfloat16_inputs_on_the_chunked_path():
    h, w, b, t, r = _problem(17, 16, 45, seed=8, restrict_range=(10, 30))
    for gif in (True, False):
        grad = torch.randn(17, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        ref_loss, ref_grads = _loss_and_grads("reference", torch.float64, None, h.bfloat16().double(),
                                              w.bfloat16().double(), b.bfloat16().double(), t, r, (10, 30), grad)
        loss, grads = _loss_and_grads("cpp", torch.bfloat16, gif, h, w, b, t, r, (10, 30), grad, chunk=5)
        assert loss.dtype == torch.float32 and all(g.dtype == torch.bfloat16 for g in grads)
        torch.testing.assert_close(loss.double(), ref_loss, atol=1e-4, rtol=1e-4)
        for a, e in zip(grads, ref_grads):
            torch.testing.assert_close(a.double(), e, atol=2e-2, rtol=2e-2)


def test_gradcheck_tiny():
    """Recompute mode (gradcheck runs several backward passes through one graph, which the
    gradient-in-forward mode refuses: test_gradients_accumulate_and_second_backward)."""
    h, w, b, t, r = _problem(5, 4, 9, seed=1, restrict_range=(3, 7), restrict_p=1.0)
    for gif in (False,):
        f = lambda hh, ww, bb, gif=gif: fused_linear_cross_entropy(hh, ww, t, restrict=r, restrict_range=(3, 7), bias=bb,
                                                          backend="cpp", chunk_size=2, grad_in_forward=gif)
        assert torch.autograd.gradcheck(f, (h.clone().requires_grad_(), w.clone().requires_grad_(),
                                            b.clone().requires_grad_()))


def test_gradients_accumulate_and_second_backward():
    """.grad accumulates over calls (the weight gradient buffer is handed to .grad in gradient-in-forward
    mode); a second backward through one graph works when recomputing and is refused, not wrong, otherwise."""
    h, w, _b, t, _ = _problem(9, 5, 11, seed=4)
    ww = w.clone().requires_grad_()
    for _ in range(2):
        fused_linear_cross_entropy(h, ww, t, backend="cpp").mean().backward()
    wr = w.clone().requires_grad_()
    fused_linear_cross_entropy_reference(h, wr, t).mean().backward()
    torch.testing.assert_close(ww.grad, 2 * wr.grad, atol=1e-12, rtol=1e-12)
    loss = fused_linear_cross_entropy(h, w.clone().requires_grad_(), t, backend="cpp", grad_in_forward=False).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    loss = fused_linear_cross_entropy(h, w.clone().requires_grad_(), t, backend="cpp", grad_in_forward=True).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_under_torch_compile():
    h, w, _b, t, r = _problem(10, 6, 23, seed=6, restrict_range=(4, 12))
    hh, ww = h.float().requires_grad_(), w.float().requires_grad_()
    f = torch.compile(lambda a, c: fused_linear_cross_entropy(a, c, t, restrict=r, restrict_range=(4, 12),
                                                             backend="cpp", chunk_size=3),
                      fullgraph=True, backend="eager")
    loss = f(hh, ww)
    loss.sum().backward()
    hr, wr = h.clone().requires_grad_(), w.clone().requires_grad_()
    ref = fused_linear_cross_entropy_reference(hr, wr, t, restrict=r, restrict_range=(4, 12))
    ref.sum().backward()
    torch.testing.assert_close(loss.double(), ref, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(hh.grad.double(), hr.grad, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(ww.grad.double(), wr.grad, atol=2e-5, rtol=2e-5)


def test_default_chunk_size():
    assert default_chunk_size(4096, 159868) == (1 << 25) // 159868 == 209
    assert default_chunk_size(3, 10) == 3 and default_chunk_size(0, 10) == 1 and default_chunk_size(5, 1 << 30) == 1


# --------------------------------------------------------------------------------------------
# the Triton backward kernels at ragged tiles


def _triton_backward_vs_reference(N, H, V, blocks, *, bias=True, rng=None, restrict_rows=(), grad=None, seed=0):
    """fused_linear_ce_backward_triton with explicit tiles (block_m, block_v, block_k) against the float64
    autograd reference; returns the kernel's (d_hidden, d_weight, d_bias)."""
    skip_unless_available(Backend.TRITON)
    from beingh0.kernels.ce import (
        fused_linear_ce_backward_triton,
        fused_linear_ce_forward_triton,
    )

    h, w, b, t, _ = _problem(N, H, V, seed=seed, bias=bias)
    lo, hi = rng if rng is not None else (0, V)
    r = None
    if rng is not None:
        r = torch.zeros(N, dtype=torch.bool)
        for i in restrict_rows:
            r[i] = True
            if t[i] != IGNORE_INDEX:
                t[i] = lo + (i * 7) % (hi - lo)
    g = grad if grad is not None else torch.randn(N, generator=torch.Generator().manual_seed(seed + 1),
                                                  dtype=torch.float64)
    hr, wr = h.clone().requires_grad_(), w.clone().requires_grad_()
    br = b.clone().requires_grad_() if bias else None
    ref = fused_linear_cross_entropy_reference(hr, wr, t, restrict=r, restrict_range=(lo, hi), bias=br)
    (ref * g).sum().backward()
    f = lambda x: x.float() if x is not None else None
    loss, lse = torch.empty(N), torch.empty(N)
    bm, bv, bk = blocks
    fused_linear_ce_forward_triton(f(h), f(w), t, f(b), r, lo, hi, loss, lse, block_m=bm, block_v=bv, block_k=bk)
    dh, dw = torch.full((N, H), float("nan")), torch.full((V, H), float("nan"))  # poisoned: must be overwritten
    db = torch.full((V,), float("nan")) if bias else None
    fused_linear_ce_backward_triton(f(g), f(h), f(w), t, f(b), r, lse, lo, hi, dh, dw, db, block_m=bm, block_v=bv,
                                    block_k=bk)
    for name, a, e in (("hidden", dh, hr.grad), ("weight", dw, wr.grad)) + ((("bias", db, br.grad),) if bias else ()):
        torch.testing.assert_close(a.double(), e, atol=2e-5, rtol=2e-5, msg=lambda m, name=name: f"d_{name}: {m}")
    return dh, dw, db


@pytest.mark.parametrize("N,H,V,blocks", [(37, 40, 150, (16, 32, 16)),   # ragged rows, vocabulary and hidden
                                          (16, 16, 32, (16, 32, 16)),    # exact tiles
                                          (3, 5, 17, (16, 16, 16)),      # everything smaller than one tile
                                          (50, 33, 100, (32, 64, 32))])  # ragged, larger tiles
def test_triton_backward_ragged_tiles(N, H, V, blocks):
    _triton_backward_vs_reference(N, H, V, blocks, bias=N % 2 == 1, seed=N)


def test_triton_backward_restrict_range_across_tile_edges():
    """[lo, hi) starts inside one vocabulary tile and ends inside another (tiles of 32 ids); restricted rows in
    several row blocks, one of them ignored (its flag is irrelevant); the range ending at V."""
    _triton_backward_vs_reference(37, 20, 150, (16, 32, 16), rng=(27, 71), restrict_rows=(0, 1, 5, 16, 17, 33, 36))
    _triton_backward_vs_reference(20, 12, 70, (16, 32, 16), rng=(64, 70), restrict_rows=(1, 2, 19), seed=4)
    _triton_backward_vs_reference(20, 12, 70, (16, 32, 16), rng=(0, 1), restrict_rows=(3,), seed=5)


def test_triton_backward_zero_gradient_blocks_and_determinism():
    """A row block whose incoming gradient is 0 everywhere (skipped by both kernels), a block with one non-zero
    row, and a second run giving bitwise the same gradients (no atomics)."""
    N = 40
    g = torch.zeros(N, dtype=torch.float64)
    g[16:32] = 0.0      # second block all zero
    g[5] = 1.5          # first block: one row
    g[32:] = 0.25       # third (ragged) block
    first = _triton_backward_vs_reference(N, 18, 90, (16, 32, 16), grad=g, seed=2)
    assert (first[0][16:32] == 0).all()
    second = _triton_backward_vs_reference(N, 18, 90, (16, 32, 16), grad=g, seed=2)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_triton_backend_backward_runs_the_kernel(monkeypatch):
    """The triton backend's backward is the Triton kernel, not the chunked torch backward."""
    skip_unless_available(Backend.TRITON)
    import beingh0.ops.ce as ce_mod

    def boom(*a, **k):
        raise AssertionError("chunked backward called")

    monkeypatch.setattr(ce_mod, "_chunked_backward", boom)
    h, w, b, t, r = _problem(19, 9, 70, seed=13, restrict_range=(30, 50), restrict_p=0.8)
    _check_against_reference("triton", torch.float32, None, h, w, b, t, r, (30, 50))


# --------------------------------------------------------------------------------------------
# vocabulary-level logit masking


def test_restrict_to_the_target_alone_gives_zero_loss_and_gradient():
    h, w, b, t, _ = _problem(4, 6, 12, seed=2, ignore_every=0)
    t[:] = 7
    r = torch.ones(4, dtype=torch.bool)
    for backend in ("reference", "cpp", "triton"):
        if backend == "triton":
            skip_unless_available(Backend.TRITON)
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        dt = torch.float32 if backend == "triton" else torch.float64
        loss = fused_linear_cross_entropy(hh.to(dt), ww.to(dt), t, restrict=r, restrict_range=(7, 8),
                                          bias=b.to(dt), backend=backend)
        assert loss.abs().max() < 1e-6, backend
        loss.sum().backward()
        assert hh.grad.abs().max() < 1e-6 and ww.grad.abs().max() < 1e-6, backend


def test_restrict_everything_and_full_range():
    """All rows restricted equals a softmax over the sub-vocabulary; a range covering all of V changes nothing."""
    h, w, b, t, _ = _problem(8, 5, 20, seed=7, ignore_every=0)
    t = 5 + t % 6
    r = torch.ones(8, dtype=torch.bool)
    got = fused_linear_cross_entropy(h, w, t, restrict=r, restrict_range=(5, 11), bias=b, backend="cpp")
    sub = fused_linear_cross_entropy_reference(h, w[5:11], t - 5, bias=b[5:11])
    torch.testing.assert_close(got, sub, atol=1e-12, rtol=1e-12)
    full = fused_linear_cross_entropy(h, w, t, restrict=r, restrict_range=(0, 20), bias=b, backend="cpp")
    torch.testing.assert_close(full, fused_linear_cross_entropy_reference(h, w, t, bias=b), atol=1e-12, rtol=1e-12)


def test_restricted_target_outside_the_range_is_an_error():
    h, w, _b, t, _ = _problem(5, 4, 10, seed=1, ignore_every=0)
    t[:] = torch.tensor([1, 2, 3, 4, 5])
    r = torch.tensor([False, False, True, False, False])
    with pytest.raises(UserValueError, match=r"row 2 is restricted to ids \[4, 8\) but its target is 3"):
        fused_linear_cross_entropy(h, w, t, restrict=r, restrict_range=(4, 8), backend="cpp")
    t[2] = IGNORE_INDEX  # an ignored row may carry any restrict flag
    fused_linear_cross_entropy(h, w, t, restrict=r, restrict_range=(4, 8), backend="cpp")


def test_motion_restrict():
    t = torch.tensor([1, 50, 60, IGNORE_INDEX, 59, 70, 55] * 300)
    rng = (50, 60)
    motion = (t >= 50) & (t < 60)
    assert not motion_restrict(t, rng, 0.0).any()
    assert torch.equal(motion_restrict(t, rng, 1.0), motion)
    a = motion_restrict(t, rng, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, motion_restrict(t, rng, 0.3, torch.Generator().manual_seed(5)))
    assert not (a & ~motion).any()
    frac = a[motion].float().mean().item()
    assert 0.25 < frac < 0.35
    with pytest.raises(UserValueError, match="p must be in"):
        motion_restrict(t, rng, 1.5)


# --------------------------------------------------------------------------------------------
# token-level loss filtering


def _filter_reference(per_token, targets, lo, hi):
    keep = targets != IGNORE_INDEX
    v = per_token.detach()[keep].double()
    ql, qh = torch.quantile(v, lo / 100), torch.quantile(v, hi / 100)
    x = per_token.detach().double()
    return keep & (x >= ql) & (x <= qh)


def test_masked_mean_excludes_ignored_positions():
    """The official code divides by every position (a bug): the mean is over non-ignored tokens only."""
    per = torch.tensor([2.0, 0.0, 4.0, 0.0, 6.0], requires_grad=True)
    t = torch.tensor([1, IGNORE_INDEX, 3, IGNORE_INDEX, 2])
    loss, n = masked_ce_loss(per, t)
    assert n == 3 and loss.item() == pytest.approx(4.0)
    loss.backward()
    assert torch.equal(per.grad, torch.tensor([1 / 3, 0, 1 / 3, 0, 1 / 3]))


@pytest.mark.parametrize("lo,hi", [(10, 90), (0, 80), (25, 100), (50, 50), (0, 100), (33.3, 66.7)])
def test_filter_matches_reference(lo, hi):
    g = torch.Generator().manual_seed(int(lo * 10 + hi))
    per = torch.rand(101, generator=g, dtype=torch.float64).requires_grad_()
    t = torch.randint(0, 5, (101,), generator=g)
    t[::7] = IGNORE_INDEX
    keep = _filter_reference(per, t, lo, hi)
    loss, n = masked_ce_loss(per, t, filter=(lo, hi))
    assert n == int(keep.sum())
    # (50, 50) with an even count: the interpolated median equals no token, nothing is kept
    assert n > 0 or (lo, hi) == (50, 50)
    torch.testing.assert_close(loss, per.detach()[keep].mean() if n else torch.zeros((), dtype=torch.float64),
                               atol=1e-15, rtol=1e-15)
    loss.backward()
    torch.testing.assert_close(per.grad, keep.double() / max(n, 1), atol=0, rtol=0)
    if (lo, hi) == (0, 100):
        assert n == int((t != IGNORE_INDEX).sum())


def test_filter_edges():
    t = torch.zeros(6, dtype=torch.long)
    # all equal losses: every token equals both bounds and is kept
    loss, n = masked_ce_loss(torch.full((6,), 1.7), t, filter=(10, 90))
    assert n == 6 and loss.item() == pytest.approx(1.7)
    # one token: always kept
    loss, n = masked_ce_loss(torch.tensor([3.0]), t[:1], filter=(40, 60))
    assert n == 1 and loss.item() == 3.0
    # nothing to average: a zero loss whose backward gives zero gradients, or an error on request
    per = torch.tensor([0.0, 0.0], requires_grad=True)
    ign = torch.full((2,), IGNORE_INDEX)
    loss, n = masked_ce_loss(per, ign, filter=(5, 95))
    assert n == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(per.grad, torch.zeros(2))
    with pytest.raises(UserValueError, match="no token left"):
        masked_ce_loss(per, ign, empty="error")
    for bad in ((-1, 50), (60, 40), (0, 101)):
        with pytest.raises(UserValueError, match="filter must be"):
            masked_ce_loss(per, t[:2], filter=bad)


def test_end_to_end_filtered_loss_gradients_match_reference(config):
    """The op and the filter together, as the pretraining loss uses them."""
    backend, dtype, gif = config
    h, w, _b, t, r = _problem(30, 8, 40, seed=12, restrict_range=(30, 40))

    def run(fn, hh, ww, **kw):
        per = fn(hh, ww, t, restrict=r, restrict_range=(30, 40), **kw)
        loss, n = masked_ce_loss(per, t, filter=(10, 90))
        loss.backward()
        return loss.detach(), n

    hr, wr = h.clone().requires_grad_(), w.clone().requires_grad_()
    ref, n_ref = run(fused_linear_cross_entropy_reference, hr, wr)
    hh, ww = h.to(dtype).requires_grad_(), w.to(dtype).requires_grad_()
    got, n = run(fused_linear_cross_entropy, hh, ww, backend=backend, grad_in_forward=gif, chunk_size=7)
    assert n == n_ref < int((t != IGNORE_INDEX).sum())
    tol = TOL[dtype]
    torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
    torch.testing.assert_close(hh.grad.double(), hr.grad, atol=tol, rtol=tol)
    torch.testing.assert_close(ww.grad.double(), wr.grad, atol=tol, rtol=tol)


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_clear_errors():
    h, w, b, t, _ = _problem(4, 3, 6, seed=0, ignore_every=0)
    f = lambda *a, **k: fused_linear_cross_entropy(*a, **{"backend": "cpp", **k})
    with pytest.raises(UserValueError, match=r"hidden must be \(N, H\)"):
        f(h[None], w, t)
    with pytest.raises(UserValueError, match=r"weight must be \(V, H\)"):
        f(h, w[:, :2], t)
    with pytest.raises(UserValueError, match=r"targets must be \(N,\)"):
        f(h, w, t[:3])
    with pytest.raises(TypeError, match="targets must be int64"):
        f(h, w, t.int())
    with pytest.raises(TypeError, match="share one dtype"):
        f(h.float(), w, t)
    with pytest.raises(TypeError, match="share one dtype"):
        f(h.long(), w.long(), t)
    with pytest.raises(TypeError, match="bias must have hidden's dtype"):
        f(h, w, t, bias=b.float())
    with pytest.raises(UserValueError, match=r"bias must be None or a \(V,\)"):
        f(h, w, t, bias=b[:3])
    with pytest.raises(UserValueError, match="one device"):
        f(h, w.to("meta"), t)
    with pytest.raises(UserValueError, match=r"targets\[2\] = 6 is outside \[0, V = 6\)"):
        f(h, w, torch.tensor([0, 1, 6, 2]))
    with pytest.raises(UserValueError, match="needs restrict_range"):
        f(h, w, t, restrict=torch.ones(4, dtype=torch.bool))
    with pytest.raises(UserValueError, match="bool tensor"):
        f(h, w, t, restrict=torch.ones(4), restrict_range=(0, 3))
    with pytest.raises(UserValueError, match="must satisfy 0 <= lo < hi <= V"):
        f(h, w, t, restrict=torch.ones(4, dtype=torch.bool), restrict_range=(3, 3))
    with pytest.raises(UserValueError, match="chunk_size must be a positive int"):
        f(h, w, t, chunk_size=0)
    hn = h.clone()
    hn[1, 2] = float("nan")
    with pytest.raises(UserValueError, match="loss of row 1 is not finite"):
        f(hn, w, t)
    with pytest.raises(UserValueError, match="loss of row 1 is not finite"):
        f(hn, w, t, backend="reference")
    with pytest.raises(UserValueError, match="empty vocabulary"):
        f(h, w[:0], t)
    with pytest.raises(ValueError, match="unknown backend"):
        f(h, w, t, backend="nope")
    with pytest.raises(ValueError, match="not implemented for this op"):
        f(h, w, t, backend="cuda")
    with pytest.raises(TypeError, match="Triton backend computes in float32"):
        f(h, w, t, backend="triton")


# --------------------------------------------------------------------------------------------
# the benchmark command at a toy size


def test_bench_ce_command_writes_records(tmp_path, monkeypatch):
    """`beingh0 bench ce` end to end at a toy size (in-process measurements instead of one process per
    implementation, to stay fast): records for ours, naive and liger (skipped without a GPU)."""
    import json

    import beingh0.benchmark.ce as bench
    from beingh0.cli.main import main

    monkeypatch.setattr(bench, "_measure_in_subprocess",
                        lambda impl, N, V, H, b, repeats, threads, timeout_s: bench.measure(impl, N, V, H, "cpu", b,
                                                                                            repeats, threads))
    path = tmp_path / "ce.json"
    assert main(["bench", "ce", "--tokens", "40", "--vocab", "300", "--hidden", "16", "--repeats", "1", "--rounds", "2",
                 "--threads", str(torch.get_num_threads()), "--json", str(path)]) == 0
    recs = {r["impl"]: r for r in json.loads(path.read_text())}
    assert set(recs) == {"ours-cpp", "naive", "liger"}
    for impl in ("ours-cpp", "naive"):
        r = recs[impl]
        assert r["shape"] == [40, 300, 16] and r["median_ms"] > 0 and r["peak_mem_mb"] >= 0
        assert r["max_abs_err_vs_reference"] < 1e-5 and r["baseline"] == "naive" and r["rounds"] == 2
        assert len(r["round_medians_ms"]) == 2
    if not torch.cuda.is_available():
        assert recs["liger"]["median_ms"] is None and "liger" in recs["liger"]["skipped"]
    with pytest.raises(UserValueError, match="--vocab must be >= 1"):
        bench.run_ce_bench(vocab=0, quiet=True)


@pytest.mark.slow
def test_triton_kernels_compile_for_h100_in_16_bit():
    """The interpreter cannot run the 16-bit tensor-core path (bf16 tl.dot is wrong there): compile the
    forward and backward kernels ahead of time for sm_90 in bfloat16 and float16 (no GPU needed; a
    subprocess, since this test session imported triton in interpreter mode)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    code = ("from beingh0.kernels.ce import aot_compile\n"
            "for dt in ('bf16', 'fp16'):\n"
            "    ks = aot_compile(dt)\n"
            "    assert all(k.asm.get('cubin') for k in ks.values()), dt\n"
            "print('compiled', sorted(ks))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    import beingh0

    root = os.path.dirname(os.path.dirname(os.path.abspath(beingh0.__file__)))  # the beingh0 these tests import
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "_ce_backward_dw_kernel" in res.stdout
