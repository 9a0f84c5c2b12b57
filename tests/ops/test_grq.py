"""grq_encode: the reference against brute force and vector_quantize_pytorch, every backend against the
float64 reference (codes identical, quantized sums close), the tie rule, low-precision inputs, bad input."""
import pytest
import torch

from beingh0.ops import Backend
from beingh0.ops.backend import is_available
from beingh0.ops.grq import GRQCodebooks, code_norms, grq_encode, grq_encode_reference, prepare_codebooks
from beingh0.testing import assert_verbose_allclose, backend_device, skip_unless_available

KERNELS = [Backend.CPP, Backend.TRITON, Backend.CUDA]


def _problem(N, G, L, K, Dg, seed, structured=True):
    """float64 codebooks (G, L, K, Dg) and inputs (N, G*Dg).

    structured: layer l's codebook is scaled by 0.6**l and each input is a sum of one random code per
    layer plus a little noise, as trained residual codebooks look (later layers refine); the nearest
    code then wins by a clear margin. Otherwise plain Gaussians (near-ties possible)."""
    g = torch.Generator().manual_seed(seed)
    scale = (0.6 ** torch.arange(L, dtype=torch.float64)).view(1, L, 1, 1)
    cb = torch.randn(G, L, K, Dg, generator=g, dtype=torch.float64) * (scale if structured else 1.0)
    if not structured:
        return torch.randn(N, G * Dg, generator=g, dtype=torch.float64), cb
    pick = torch.randint(0, K, (N, G, L), generator=g)
    x = cb[torch.arange(G)[None, :, None], torch.arange(L)[None, None, :], pick].sum(2)
    x = x + 0.05 * 0.6 ** L * torch.randn(N, G, Dg, generator=g, dtype=torch.float64)
    return x.reshape(N, G * Dg), cb


def _margins(x, cb):
    """Per row: the smallest gap (over groups and layers) between the best and the second-best score
    along the reference's own path, relative to the score scale. Rows with a tiny gap are near-ties,
    where float32 kernels may legitimately pick the other code."""
    G, L, K, Dg = cb.shape
    N = x.shape[0]
    cb = cb.double()
    r = x.double().reshape(N, G, Dg).transpose(0, 1)
    c2 = code_norms(cb)
    gap = torch.full((N,), float("inf"), dtype=torch.float64)
    for layer in range(L):
        s = c2[:, layer, None, :] - 2 * torch.bmm(r, cb[:, layer].transpose(1, 2))   # (G, N, K)
        if K > 1:
            top = s.topk(2, dim=-1, largest=False).values
            rel = (top[..., 1] - top[..., 0]) / (1 + top[..., 0].abs())
            gap = torch.minimum(gap, rel.min(0).values)
        idx = s.argmin(-1)
        r = r - torch.gather(cb[:, layer], 1, idx[..., None].expand(G, N, Dg))
    return gap


def _check_backend(backend, x, cb, *, dtype=torch.float32, min_gap=1e-5, min_kept=1.0):
    dev = backend_device(backend)
    got = grq_encode(x.to(dev, dtype), cb.to(dev, torch.float32), return_quantized=True, backend=backend)
    xr = x.to(dtype).double() if dtype != torch.float32 else x
    ref_codes, ref_q = grq_encode_reference(xr, cb.float().double(), return_quantized=True)
    assert got.codes.dtype == torch.int64 and got.codes.shape == ref_codes.shape
    codes = got.codes.cpu()
    assert int(codes.min()) >= 0 and int(codes.max()) < cb.shape[2], "codes not written (poison -7) or out of range"
    keep = _margins(xr, cb.float().double()) > min_gap
    assert keep.float().mean() >= min_kept, f"only {keep.float().mean():.2%} rows without near-ties; change the test data"
    bad = (codes != ref_codes).flatten(1).any(1) & keep
    assert not bad.any(), (f"{backend.value}: codes differ from the reference at rows {bad.nonzero()[:5, 0].tolist()}: "
                           f"{codes[bad][:2].tolist()} vs {ref_codes[bad][:2].tolist()}")
    # quantized = sum of the chosen codes, float32 accumulation
    assert got.quantized.dtype == torch.float32 and got.quantized.shape == x.shape
    ok = keep[:, None].expand_as(ref_q)
    assert_verbose_allclose(got.quantized.cpu().double()[ok], ref_q[ok], atol=2e-5 * cb.abs().max().item() * cb.shape[1],
                            rtol=1e-5, name=f"{backend.value} quantized")
    return got


# --------------------------------------------------------------------------------------------
# the reference itself


def test_reference_matches_brute_force():
    """Residual VQ spelled out with full distances ||r - c||^2 (torch.cdist) and a Python loop."""
    x, cb = _problem(23, 3, 4, 11, 5, seed=1, structured=False)
    codes, q = grq_encode_reference(x, cb, return_quantized=True)
    G, L, K, Dg = cb.shape
    for n in range(x.shape[0]):
        for g in range(G):
            r = x[n, g * Dg:(g + 1) * Dg].clone()
            qs = torch.zeros(Dg, dtype=torch.float64)
            for layer in range(L):
                d = torch.cdist(r[None], cb[g, layer])[0]
                k = int(d.argmin())
                assert int(codes[n, g, layer]) == k
                r -= cb[g, layer, k]
                qs += cb[g, layer, k]
            torch.testing.assert_close(q[n, g * Dg:(g + 1) * Dg], qs, rtol=0, atol=1e-12)


def test_reference_matches_vector_quantize_pytorch():
    """Same codes as the library the official release uses (GroupedResidualVQ, eval mode), given our codebooks."""
    pytest.importorskip("vector_quantize_pytorch")
    from beingh0.benchmark.grq import vqp_codes, vqp_from_codebooks

    x, cb = _problem(200, 2, 4, 64, 16, seed=2)
    x, cb = x.float(), cb.float()
    model = vqp_from_codebooks(cb)
    codes = vqp_codes(model, x)
    ref, _ = grq_encode_reference(x, cb)
    keep = _margins(x, cb) > 1e-4
    assert keep.all()
    assert torch.equal(codes, ref)


def _integer_tie_problem(seed=3, N=40, G=2, L=3, K=9, Dg=6):
    """Small-integer codebooks and inputs: every norm and dot product is exact in float32, so equal
    scores are true ties. Codes 7 and 8 duplicate code 2; codes 4, 5, 6 are e0, e1, -e0 (equal norms,
    distinct vectors); the first rows are 0 (first layer: the scores are the norms, 4/5/6 tie)."""
    g = torch.Generator().manual_seed(seed)
    cb = torch.randint(-3, 4, (G, L, K, Dg), generator=g, dtype=torch.int64)
    cb[:, :, 7] = cb[:, :, 2]
    cb[:, :, 8] = cb[:, :, 2]
    cb[:, :, 4:7] = 0
    cb[:, :, 4, 0], cb[:, :, 5, 1], cb[:, :, 6, 0] = 1, 1, -1
    x = torch.randint(-6, 7, (N, G * Dg), generator=g, dtype=torch.int64)
    x[:8] = 0
    return x, cb


def _brute_force_int(x, cb):
    """Residual VQ in exact int64 arithmetic; ties to the lowest index spelled out."""
    G, L, K, Dg = cb.shape
    codes = torch.empty(x.shape[0], G, L, dtype=torch.int64)
    for n in range(x.shape[0]):
        for g in range(G):
            r = x[n, g * Dg:(g + 1) * Dg].clone()
            for layer in range(L):
                scores = [int((cb[g, layer, k] * cb[g, layer, k]).sum() - 2 * (r * cb[g, layer, k]).sum()) for k in range(K)]
                best = min(range(K), key=lambda k: (scores[k], k))
                codes[n, g, layer] = best
                r = r - cb[g, layer, best]
    return codes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ties_go_to_the_lowest_index_reference(dtype):
    """Exact ties (duplicated codes, and distinct codes with equal scores) resolve to the lowest index.
    Integer data keeps this independent of how a GEMM rounds (it failed on Gaussian data before)."""
    x, cb = _integer_tie_problem()
    want = _brute_force_int(x, cb)
    assert (want[:8, :, 0] == 4).all() and not (want == 7).any()  # the ties this data is built to contain
    codes, _ = grq_encode_reference(x.to(dtype), cb.to(dtype))
    assert torch.equal(codes, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_reference_duplicate_codes_on_gaussian_data(dtype):
    """Exact duplicate codes on non-integer data: a float32 GEMM may round the duplicates' dot products
    differently (it did on this machine's CPU, picking code 8 over its copy 2); the reference gives every
    copy its first copy's score, so the lowest index still wins."""
    x, cb = _problem(40, 2, 3, 9, 6, seed=3)
    cb[:, :, 7] = cb[:, :, 2]
    cb[:, :, 8] = cb[:, :, 2]
    codes, _ = grq_encode_reference(x.to(dtype), cb.to(dtype))
    assert not (codes == 7).any() and not (codes == 8).any()
    assert (codes == 2).any()


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_integer_ties(backend):
    """The kernels resolve the exact ties of the integer problem like the brute force."""
    skip_unless_available(backend)
    x, cb = _integer_tie_problem(seed=4)
    dev = backend_device(backend)
    got = grq_encode(x.float().to(dev), cb.float().to(dev), backend=backend).codes.cpu()
    assert torch.equal(got, _brute_force_int(x, cb))


# --------------------------------------------------------------------------------------------
# every kernel backend against the float64 reference

SHAPES = [  # N, G, L, K, Dg: odd sizes around the kernels' tile edges, and the tokenizer's own
    (1, 1, 1, 1, 1),
    (37, 2, 3, 13, 7),
    (50, 3, 2, 100, 33),
    (97, 1, 8, 33, 16),
    (130, 2, 8, 512, 64),
]


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_kernels_match_reference(backend, shape):
    skip_unless_available(backend)
    x, cb = _problem(*shape, seed=sum(shape))
    _check_backend(backend, x, cb)


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_gaussian_inputs(backend):
    """Unstructured inputs: every row without a near-tie gets exactly the reference's codes."""
    skip_unless_available(backend)
    x, cb = _problem(150, 2, 4, 40, 24, seed=5, structured=False)
    _check_backend(backend, x, cb, min_gap=1e-4, min_kept=0.8)


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_paper_configuration(backend):
    """The tokenizer's shape: 2 groups x 8 layers x 512 codes, 256 channels per group."""
    skip_unless_available(backend)
    N = 300
    x, cb = _problem(N, 2, 8, 512, 256, seed=6)
    _check_backend(backend, x, cb)


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_tie_rule(backend):
    skip_unless_available(backend)
    x, cb = _problem(70, 2, 3, 40, 12, seed=7)
    cb[:, :, 31] = cb[:, :, 5]
    cb[:, :, 39] = cb[:, :, 5]
    cb[:, :, 30] = cb[:, :, 17]
    x = x.reshape(70, 2, 12)
    x[:20] = cb[:, 0, 5] + 0.0  # rows sitting exactly on the duplicated codes (zero residual after)
    x = x.reshape(70, 24)
    dev = backend_device(backend)
    got = grq_encode(x.float().to(dev), cb.float().to(dev), backend=backend).codes.cpu()
    ref, _ = grq_encode_reference(x.float(), cb.float())
    for k in (31, 39, 30):
        assert not (got == k).any(), f"code {k} duplicates a lower one and must never be chosen"
    assert (got[:20, :, 0] == 5).all()
    assert torch.equal(got[:, :, 0], ref[:, :, 0])


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_kernels_low_precision_inputs(backend, dtype):
    """bf16/fp16 x is read as is and searched in float32: codes of the reference on the rounded x."""
    skip_unless_available(backend)
    x, cb = _problem(45, 2, 4, 30, 20, seed=8)
    _check_backend(backend, x, cb, dtype=dtype)


@pytest.mark.parametrize("backend", [Backend.REFERENCE] + KERNELS, ids=lambda b: b.value)
def test_strided_and_batched_inputs(backend):
    """A column slice of a wider tensor (row stride > G*Dg) and leading batch dims."""
    skip_unless_available(backend)
    dev = backend_device(backend)
    x, cb = _problem(30, 2, 3, 17, 10, seed=9)
    wide = torch.randn(30, 50, dtype=torch.float64)
    wide[:, 5:25] = x
    view = wide.float().to(dev)[:, 5:25]
    assert view.stride(0) == 50
    got = grq_encode(view, cb.float().to(dev), return_quantized=True, backend=backend)
    ref, _ = grq_encode_reference(x, cb)
    assert torch.equal(got.codes.cpu(), ref)
    b = grq_encode(view.reshape(5, 6, 20), cb.float().to(dev), return_quantized=True, backend=backend)
    assert b.codes.shape == (5, 6, 2, 3) and b.quantized.shape == (5, 6, 20)
    assert torch.equal(b.codes.reshape(30, 2, 3).cpu(), ref)


@pytest.mark.parametrize("backend", [Backend.REFERENCE] + KERNELS, ids=lambda b: b.value)
def test_broadcast_rows(backend):
    """One vector expanded to many rows (stride 0): the C++ backend refused it ("x_stride 0 is smaller
    than a row") though the reference takes it; every backend now reads the shared row."""
    skip_unless_available(backend)
    dev = backend_device(backend)
    x, cb = _problem(1, 2, 3, 17, 10, seed=13)
    ref, rq = grq_encode_reference(x.expand(25, 20).contiguous(), cb.float().double(), return_quantized=True)
    row = x.float().to(dev)
    for view in (row.expand(25, 20), row.view(1, 1, 20).expand(5, 5, 20)):
        assert view.stride(0) == 0
        got = grq_encode(view, cb.float().to(dev), return_quantized=True, backend=backend)
        assert torch.equal(got.codes.reshape(25, 2, 3).cpu(), ref)
        assert_verbose_allclose(got.quantized.reshape(25, 20), rq, atol=1e-5, name="quantized")


@pytest.mark.parametrize("rows", [16, 32, 64])
@pytest.mark.parametrize("shape", [(150, 2, 4, 150, 40), (None, 1, 3, 129, 37), (None, 2, 8, 512, 256)],
                         ids=["150rows", "one_row_tail", "tokenizer"])
def test_cuda_tile_paths(rows, shape, monkeypatch):
    """Each rows-per-block tile of the CUDA kernel (normally chosen by N and the device: at N = 65,536
    the 64- and 32-row tiles with their float4/float2 shared loads) against the reference, each with
    a ragged last tile: 150 rows (a partial tile for every size), 2 tiles + 1 row with Dg not a
    multiple of 4 and K one past a 128-code tile, and the tokenizer's 2x8x512x256 with 3 tiles + 5 rows."""
    skip_unless_available(Backend.CUDA)
    import beingh0.ops.grq as grq_mod

    monkeypatch.setattr(grq_mod, "CUDA_TILE_ROWS", rows)
    N = shape[0] or (2 * rows + 1 if shape[4] < 100 else 3 * rows + 5)
    assert N % rows, "the last tile must be ragged"
    x, cb = _problem(N, *shape[1:], seed=14 + rows)
    _check_backend(Backend.CUDA, x, cb)
    monkeypatch.setattr(grq_mod, "CUDA_TILE_ROWS", 48)
    with pytest.raises(ValueError, match="tile_rows must be 0"):
        grq_encode(x.float().cuda(), cb.float().cuda(), backend="cuda")


@pytest.mark.parametrize("Dg", [64, 256])
def test_triton_gpu_tile_configuration(Dg):
    """The Triton kernel with the tiles a GPU runs (64 rows for Dg <= 128, 32 rows and 8 warps for
    Dg = 256, 64 codes per chunk), not only the interpreter's default 256 x 256, with a ragged last
    row tile and a ragged last code chunk; fp32 (the interpreter's bf16 tl.dot is wrong)."""
    skip_unless_available(Backend.TRITON)
    from beingh0.kernels.grq import _default_blocks, grq_encode_triton

    block_n, block_k, warps = _default_blocks(Dg, interpret=False)
    assert (block_n, block_k) == ((64, 64) if Dg <= 128 else (32, 64)) and (Dg <= 64 or warps == 8)
    N, G, L, K = 2 * block_n + 5, 2, 3, 2 * block_k + 22
    x, cb = _problem(N, G, L, K, Dg, seed=Dg)
    dev = backend_device(Backend.TRITON)
    cbf = cb.float().to(dev)
    codes = torch.full((N, G, L), -7, dtype=torch.int64, device=dev)
    quant = torch.full((N, G * Dg), float("nan"), device=dev)
    grq_encode_triton(x.float().to(dev), cbf, code_norms(cbf).contiguous(), codes, quant,
                      block_n=block_n, block_k=block_k, num_warps=warps)
    ref_codes, ref_q = grq_encode_reference(x, cb.float().double(), return_quantized=True)
    keep = _margins(x, cb.float().double()) > 1e-5
    assert keep.all()
    assert torch.equal(codes.cpu(), ref_codes)
    assert_verbose_allclose(quant.cpu().double(), ref_q, atol=1e-4, rtol=1e-5, name="triton quantized")


@pytest.mark.parametrize("backend", [Backend.REFERENCE] + KERNELS, ids=lambda b: b.value)
def test_empty_input(backend):
    skip_unless_available(backend)
    dev = backend_device(backend)
    cb = torch.randn(2, 3, 5, 4, device=dev)
    out = grq_encode(torch.empty(0, 8, device=dev), cb, return_quantized=True, backend=backend)
    assert out.codes.shape == (0, 2, 3) and out.quantized.shape == (0, 8)


@pytest.mark.parametrize("backend", [Backend.REFERENCE] + KERNELS, ids=lambda b: b.value)
def test_prepared_codebooks(backend):
    """prepare_codebooks once, encode many times: same codes and sums; an in-place change is an error."""
    skip_unless_available(backend)
    dev = backend_device(backend)
    x, cb = _problem(77, 2, 5, 45, 20, seed=12)
    cb = cb.float().to(dev)
    p = prepare_codebooks(cb)
    assert isinstance(p, GRQCodebooks) and p.norms.shape == (2, 5, 45)
    if dev == "cpu" and backend is Backend.CPP:
        from beingh0.ops.backend import ext

        T = ext().grq_cpu_tile_codes()
        assert p.packed.shape == (2, 5, -(-45 // T), 20, T)
        assert torch.equal(p.packed[1, 3, 0, :, 2], cb[1, 3, 2]) and (p.packed[:, :, -1, :, 45 % T:] == 0).all()
    for rows in (x[:3], x):
        a = grq_encode(rows.float().to(dev), p, return_quantized=True, backend=backend)
        b = grq_encode(rows.float().to(dev), cb, return_quantized=True, backend=backend)
        assert torch.equal(a.codes, b.codes) and torch.equal(a.quantized, b.quantized)
    cb.mul_(1.01)
    with pytest.raises(ValueError, match="modified in place after prepare_codebooks"):
        grq_encode(x.float().to(dev), p, backend=backend)
    with pytest.raises(ValueError, match="codebooks contain NaN"):
        prepare_codebooks(torch.full((1, 1, 2, 3), float("nan")))


def test_auto_backend_and_float64():
    x, cb = _problem(20, 2, 2, 9, 4, seed=10)
    ref, _ = grq_encode_reference(x, cb)
    assert torch.equal(grq_encode(x, cb).codes, ref)                     # float64 -> the reference
    assert torch.equal(grq_encode(x.float(), cb.float()).codes, ref)     # float32 -> auto (C++ here)
    with pytest.raises(TypeError, match="float64 x runs only on backend='reference'"):
        grq_encode(x, cb, backend="cpp")


def test_under_torch_compile():
    skip_unless_available(Backend.CPP)
    x, cb = _problem(33, 2, 3, 19, 8, seed=11)
    x, cb = x.float(), cb.float()
    f = torch.compile(lambda a, c: grq_encode(a, c, return_quantized=True, backend="cpp"), fullgraph=True, backend="eager")
    ref, rq = grq_encode_reference(x, cb, return_quantized=True)
    for c in (cb, prepare_codebooks(cb)):
        codes, q = f(x, c)
        assert torch.equal(codes, ref)
        torch.testing.assert_close(q, rq)


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("backend", [Backend.REFERENCE, Backend.CPP], ids=lambda b: b.value)
def test_bad_input(backend):
    skip_unless_available(backend)
    cb = torch.randn(2, 3, 5, 4)
    x = torch.randn(10, 8)
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., G\*Dg\) = \(\.\.\., 8\)"):
        grq_encode(torch.randn(10, 7), cb, backend=backend)
    with pytest.raises(ValueError, match=r"codebooks must be \(G, L, K, Dg\)"):
        grq_encode(x, cb[0], backend=backend)
    with pytest.raises(ValueError, match="non-empty"):
        grq_encode(x[:, :0], cb[:, :, :, :0], backend=backend)
    with pytest.raises(TypeError, match="floating point"):
        grq_encode(x.long(), cb, backend=backend)
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor \(\.\.\., G\*Dg\), got ndarray"):
        grq_encode(x.numpy(), cb, backend=backend)
    bad = x.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf \(rows \[3\]"):
        grq_encode(bad, cb, backend=backend)
    cbad = cb.clone()
    cbad[1, 2, 3, 0] = float("inf")
    with pytest.raises(ValueError, match="codebooks contain NaN"):
        grq_encode(x, cbad, backend=backend)
    with pytest.raises(ValueError, match="unknown backend"):
        grq_encode(x, cb, backend="fortran")
    if backend is Backend.CPP:
        with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
            grq_encode(x.to(torch.float8_e4m3fn), cb, backend=backend, check=False)


def test_cpp_launcher_validates_its_arguments():
    """The C++ entry point checks what the Python side promises (a direct caller of beingh0._C)."""
    skip_unless_available(Backend.CPP)
    from beingh0.ops.backend import ext

    x = torch.randn(4, 8)
    cb = torch.randn(2, 3, 5, 4)
    n = code_norms(cb)
    codes = torch.empty(4, 2, 3, dtype=torch.int64)
    args = dict(x=x.data_ptr(), N=4, G=2, L=3, K=5, Dg=4, x_stride=8, x_dtype=0, codebooks=cb.data_ptr(),
                code_norms=n.data_ptr(), codes=codes.data_ptr(), quantized=0)
    ext().grq_encode_cpu(**args)
    ext().grq_encode_cpu(**{**args, "x_stride": 0})  # a broadcast row
    for change, msg in [(dict(x_stride=7), "smaller than a row"), (dict(x_stride=-8), "x_stride must be >= 0"),
                        (dict(x_dtype=1), "x_dtype"),
                        (dict(K=0), "non-empty"), (dict(codes=0), "must not be null"), (dict(N=-1), "N must be")]:
        with pytest.raises(ValueError, match=msg):
            ext().grq_encode_cpu(**{**args, **change})


def test_cuda_backend_rejects_cpu_tensors():
    ok, _ = is_available(Backend.CUDA)
    if ok:
        pytest.skip("machine has CUDA; the unavailable-backend message is not reachable")
    with pytest.raises(RuntimeError, match="'cuda' was requested but is unavailable"):
        grq_encode(torch.randn(3, 8), torch.randn(2, 3, 5, 4), backend="cuda")


def test_triton_sizes_not_specialized():
    """N = 1 or a multiple of 16 must not compile a new kernel variant."""
    pytest.importorskip("triton")
    from beingh0.kernels.grq import _grq_encode_kernel as kernel

    names = ({p.name for p in kernel.params if p.do_not_specialize} if hasattr(kernel, "params")
             else set(kernel.kwargs.get("do_not_specialize") or ()))
    assert "N" in names
