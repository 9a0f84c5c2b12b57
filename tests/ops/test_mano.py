"""mano_forward / mano_joints: every backend vs the float64 reference, gradients, op registration, bad input."""

import pytest
import torch

from beingh0.mano.model import ManoModel, mirror_points, mirror_pose
from beingh0.ops import Backend, ManoConstants, mano_forward, mano_joints
from beingh0.ops.backend import ENV_VAR, is_available, resolve
from beingh0.testing import assert_verbose_allclose, backend_device, random_mano_arrays, random_pose, skip_unless_available

KERNELS = [Backend.CPP, Backend.TRITON, Backend.CUDA]


@pytest.fixture(scope="module")
def arrays():
    return random_mano_arrays(seed=11)


def _inputs(B, shared, seed, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(1 if shared else B, 10, generator=g, dtype=torch.float64)
    trans = 0.1 * torch.randn(B, 3, generator=g, dtype=torch.float64)
    pose = random_pose(B, seed=seed)
    return [t.to(device=device, dtype=dtype) for t in (betas, pose, trans)]


def _reference(c64, betas, pose, trans, trans_mode, with_vertices=True):
    v, k = mano_forward(betas.double().cpu(), pose.double().cpu(), trans.double().cpu(), c64, trans_mode=trans_mode,
                        backend="reference")
    return v, k


TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
@pytest.mark.parametrize("B", [1, 3, 17])
@pytest.mark.parametrize("shared", [True, False], ids=["shared_betas", "own_betas"])
@pytest.mark.parametrize("trans_mode", [0, 1], ids=["wrist", "smplx"])
def test_forward_matches_reference(arrays, backend, B, shared, trans_mode):
    skip_unless_available(backend)
    dev = backend_device(backend)
    m = ManoModel(arrays)
    c64 = m.constants("cpu", torch.float64)
    dtypes = [torch.float32] + ([torch.float64] if backend is Backend.CPP else []) + \
             ([torch.float16, torch.bfloat16] if dev == "cuda" else [])
    for dtype in dtypes:
        betas, pose, trans = _inputs(B, shared, seed=B * 7 + trans_mode, dtype=dtype, device=dev)
        v_ref, k_ref = _reference(c64, betas, pose, trans, trans_mode)
        c = m.constants(dev, dtype)
        v, k = mano_forward(betas, pose, trans, c, trans_mode=trans_mode, backend=backend)
        assert v.dtype == dtype and k.dtype == dtype and v.shape == (B, 778, 3) and k.shape == (B, 21, 3)
        assert_verbose_allclose(v, v_ref, atol=TOL[dtype], name=f"{backend.value} {dtype} vertices")
        assert_verbose_allclose(k, k_ref, atol=TOL[dtype], name=f"{backend.value} {dtype} keypoints")
        kj = mano_joints(betas, pose, trans, m.constants(dev, dtype, tips_only=True), trans_mode=trans_mode, backend=backend)
        assert_verbose_allclose(kj, k_ref, atol=TOL[dtype], name=f"{backend.value} {dtype} mano_joints")


@pytest.mark.parametrize("backend", [Backend.CPP, Backend.CUDA], ids=lambda b: b.value)
@pytest.mark.parametrize("shared", [True, False], ids=["shared_betas", "own_betas"])
@pytest.mark.parametrize("trans_mode", [0, 1], ids=["wrist", "smplx"])
def test_backward_matches_reference(arrays, backend, shared, trans_mode):
    skip_unless_available(backend)
    dev = backend_device(backend)
    m = ManoModel(arrays)
    B = 5
    for joints_only in (False, True):
        base = _inputs(B, shared, seed=3 + trans_mode)
        g = torch.Generator().manual_seed(5)
        gv, gk = torch.randn(B, 778, 3, generator=g, dtype=torch.float64), torch.randn(B, 21, 3, generator=g, dtype=torch.float64)
        grads = {}
        for name, b, d in (("ref", "reference", "cpu"), ("kernel", backend, dev)):
            x = [t.to(d).requires_grad_() for t in base]
            c = m.constants(d, torch.float64, tips_only=joints_only)
            if joints_only:
                loss = (mano_joints(*x, c, trans_mode=trans_mode, backend=b) * gk.to(d)).sum()
            else:
                v, k = mano_forward(*x, c, trans_mode=trans_mode, backend=b)
                loss = (v * gv.to(d)).sum() + (k * gk.to(d)).sum()
            grads[name] = torch.autograd.grad(loss, x)
        for n, a, e in zip(("betas", "pose", "trans"), grads["kernel"], grads["ref"]):
            assert_verbose_allclose(a, e, atol=1e-9, rtol=1e-9, name=f"grad {n} (joints_only={joints_only})")


@pytest.mark.parametrize("backend", [Backend.CPP, Backend.CUDA], ids=lambda b: b.value)
@pytest.mark.parametrize("used", ["keypoints", "vertices"])
def test_backward_of_one_output(arrays, backend, used, monkeypatch):
    """A loss on the keypoints alone runs the keypoint-only backward kernel (grad_verts pointer 0,
    5 fingertip vertices) instead of a full 778-vertex backward of a zero vertex gradient; a loss on
    the vertices alone still gets the keypoints' zero gradient. Both match the float64 reference."""
    skip_unless_available(backend)
    import beingh0.ops.mano as mano_ops

    dev = backend_device(backend)
    m = ManoModel(arrays)
    base = _inputs(4, False, seed=21)
    g = torch.Generator().manual_seed(22)
    w = torch.randn(4, 21 if used == "keypoints" else 778, 3, generator=g, dtype=torch.float64)
    calls = []
    real_launch = mano_ops.launch
    monkeypatch.setattr(mano_ops, "launch", lambda op, *a, **kw: (calls.append((op, a)), real_launch(op, *a, **kw))[1])
    grads = {}
    for name, b, d in (("ref", "reference", "cpu"), ("kernel", backend, dev)):
        x = [t.to(d).requires_grad_() for t in base]
        out = mano_forward(*x, m.constants(d, torch.float64), backend=b)
        loss = (out[1 if used == "keypoints" else 0] * w.to(d)).sum()
        grads[name] = torch.autograd.grad(loss, x)
    (bwd,) = [a for op, a in calls if op == "mano_backward"]
    grad_verts_ptr = bwd[3]  # launch(op, backend, device, dtype_code, grad_verts, grad_keypoints, ...)
    assert (grad_verts_ptr == 0) == (used == "keypoints")
    for n, a, e in zip(("betas", "pose", "trans"), grads["kernel"], grads["ref"]):
        assert_verbose_allclose(a, e, atol=1e-9, rtol=1e-9, name=f"grad {n} ({used} only)")


@pytest.mark.parametrize("backend", [Backend.CPP, Backend.CUDA], ids=lambda b: b.value)
def test_float32_backward_small_angles(arrays, backend):
    """float32 backward at joint angles of 1e-3..1e-2 rad, where the Rodrigues derivative terms
    subtract nearly equal numbers: against the float64 reference on the same (rounded) inputs. The
    CUDA build compiles the MANO files without --use_fast_math (approximate sinf/cosf/sqrtf would
    fail this); the C++ kernel runs the same math (mano_math.h) and calibrates the tolerance."""
    skip_unless_available(backend)
    dev = backend_device(backend)
    m = ManoModel(arrays)
    B = 8
    g = torch.Generator().manual_seed(31)
    axes = torch.nn.functional.normalize(torch.randn(B, 16, 3, generator=g, dtype=torch.float64), dim=-1)
    angles = 10 ** (-3 + torch.rand(B, 16, 1, generator=g, dtype=torch.float64))     # 1e-3 .. 1e-2 rad
    pose = (axes * angles).reshape(B, 48).float().double()
    betas = torch.randn(B, 10, generator=g, dtype=torch.float64).float().double()
    trans = (0.1 * torch.randn(B, 3, generator=g, dtype=torch.float64)).float().double()
    gv, gk = torch.randn(B, 778, 3, generator=g, dtype=torch.float64), torch.randn(B, 21, 3, generator=g, dtype=torch.float64)
    grads = {}
    for name, b, d, dt in (("ref", "reference", "cpu", torch.float64), ("kernel", backend, dev, torch.float32)):
        x = [t.to(d, dt).requires_grad_() for t in (betas, pose, trans)]
        v, k = mano_forward(*x, m.constants(d, dt), backend=b)
        loss = (v * gv.to(d, dt)).sum() + (k * gk.to(d, dt)).sum()
        grads[name] = [t.double().cpu() for t in torch.autograd.grad(loss, x)]
    for n, a, e in zip(("betas", "pose", "trans"), grads["kernel"], grads["ref"]):
        assert_verbose_allclose(a, e, atol=2e-5 * e.abs().max().item(), rtol=0, name=f"float32 grad {n}")


@pytest.mark.parametrize("shared", [True, False], ids=["shared_betas", "own_betas"])
def test_gradcheck_cpp(arrays, shared):
    skip_unless_available(Backend.CPP)
    m = ManoModel(random_mano_arrays(seed=2, num_verts=40))  # small model keeps gradcheck quick
    c = ManoConstants.from_arrays(m.v_template, m.shapedirs, m.posedirs, m.J_regressor, m.weights, (3, 9, 17, 25, 39),
                                  dtype=torch.float64)
    x = [t.requires_grad_() for t in _inputs(2, shared, seed=1)]
    for mode in (0, 1):
        assert torch.autograd.gradcheck(lambda *a: mano_forward(*a, c, trans_mode=mode, backend="cpp"), x)
        assert torch.autograd.gradcheck(lambda *a: mano_joints(*a, c, trans_mode=mode, backend="cpp"), x)


def test_gradcheck_reference(arrays):
    m = ManoModel(random_mano_arrays(seed=4, num_verts=30))
    c = ManoConstants.from_arrays(m.v_template, m.shapedirs, m.posedirs, m.J_regressor, m.weights, (0, 5, 10, 15, 20),
                                  dtype=torch.float64)
    x = [t.requires_grad_() for t in _inputs(3, False, seed=9)]
    assert torch.autograd.gradcheck(lambda *a: mano_forward(*a, c, backend="reference"), x)


# opcheck of beingh0::mano_lbs and beingh0::mano_lbs_backward: tests/ops/test_contract.py


def test_compile_with_kernels(arrays):
    skip_unless_available(Backend.CPP)
    m = ManoModel(arrays)
    c = m.constants("cpu", torch.float32)
    betas, pose, trans = _inputs(3, True, seed=2, dtype=torch.float32)
    f = torch.compile(lambda b, p, t: mano_forward(b, p, t, c, backend="cpp", check=False)[0].sum(-1), fullgraph=True)
    eager = mano_forward(betas, pose, trans, c, backend="cpp")[0].sum(-1)
    assert_verbose_allclose(f(betas, pose, trans), eager, atol=1e-6)


def test_left_hand_mirror():
    """A mirrored model with a mirrored pose gives the mirrored mesh (left-hand handling)."""
    arrays = random_mano_arrays(seed=6)
    M = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    left = dict(arrays)
    left["v_template"] = arrays["v_template"] * M.numpy()
    left["shapedirs"] = arrays["shapedirs"] * M.numpy()[None, :, None]
    # pose features f = R - I transform as M (R - I) M: entry (i, j) picks up M_ii M_jj
    sign = (M[:, None] * M[None, :]).reshape(9).repeat(15).numpy()
    left["posedirs"] = arrays["posedirs"] * M.numpy()[None, :, None] * sign[None, None, :]
    r, l_ = ManoModel(arrays), ManoModel(left, "left")
    pose = random_pose(4, seed=8, mix=False)
    betas, trans = torch.randn(1, 10, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    out_r = r(betas, pose[:, :3], pose[:, 3:], trans, backend="reference")
    mp = mirror_pose(pose)
    out_l = l_(betas, mp[:, :3], mp[:, 3:], mirror_points(trans), backend="reference")
    assert_verbose_allclose(out_l.vertices, mirror_points(out_r.vertices), atol=1e-12)


# ----------------------------------------------------------------------------------- selection


def test_backend_selection(arrays, monkeypatch):
    assert resolve("x", "reference", "cpu", tuple(Backend)) is Backend.REFERENCE
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        resolve("x", "fast", "cpu", tuple(Backend))
    monkeypatch.setenv(ENV_VAR, "reference")
    assert resolve("x", None, "cpu", tuple(Backend)) is Backend.REFERENCE
    monkeypatch.setenv(ENV_VAR, "nonsense")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve("x", None, "cpu", tuple(Backend))
    monkeypatch.delenv(ENV_VAR)
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, ValueError), match="cuda"):
            resolve("mano_forward", "cuda", "cpu", tuple(Backend))
    if is_available(Backend.CPP)[0]:
        assert resolve("x", None, "cpu", tuple(Backend)) is Backend.CPP
        with pytest.raises(ValueError, match="cannot run on cuda"):
            resolve("x", "cpp", "cuda", tuple(Backend))


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_bad_input_errors(arrays, backend):
    if backend == "cpp":
        skip_unless_available(Backend.CPP)
    c = ManoModel(arrays).constants("cpu", torch.float32)
    betas, pose, trans = _inputs(4, True, seed=0, dtype=torch.float32)
    f = lambda **kw: mano_forward(**{"betas": betas, "pose": pose, "trans": trans, "constants": c, "backend": backend, **kw})
    with pytest.raises(ValueError, match=r"pose must have shape \(B, 48\)"):
        f(pose=pose[:, :45])
    with pytest.raises(ValueError, match=r"trans must have shape \(4, 3\)"):
        f(trans=trans[:3])
    with pytest.raises(ValueError, match="betas must have shape"):
        f(betas=torch.zeros(2, 10))
    with pytest.raises(TypeError, match="dtype torch.int64"):
        f(pose=pose.long())
    with pytest.raises(TypeError, match="cast them to one dtype"):
        f(trans=trans.double())
    with pytest.raises(TypeError, match="constants are torch.float32"):
        f(betas=betas.double(), pose=pose.double(), trans=trans.double())
    with pytest.raises(ValueError, match="trans_mode"):
        f(trans_mode=3)
    bad = pose.clone()
    bad[2, 7] = float("nan")
    with pytest.raises(ValueError, match=r"pose contains NaN or inf \(first at index \[2, 7\]\)"):
        f(pose=bad)
    bad = trans.clone()
    bad[1, 0] = float("inf")
    with pytest.raises(ValueError, match="trans contains NaN or inf"):
        f(trans=bad)
    with pytest.raises(ValueError, match="is on meta"):
        f(pose=pose.to("meta"))
    with pytest.raises(TypeError, match="ManoConstants"):
        f(constants=arrays)
    with pytest.raises(TypeError, match="torch.Tensor"):
        f(pose=pose.numpy())


def test_bad_tip_ids(arrays):
    m = ManoModel(arrays)
    with pytest.raises(ValueError, match=r"tip_ids must be 5 vertex ids in \[0, 778\)"):
        ManoConstants.from_arrays(m.v_template, m.shapedirs, m.posedirs, m.J_regressor, m.weights, (1, 2, 3, 4, 778))
    with pytest.raises(ValueError, match="tip_ids"):
        ManoConstants.from_arrays(m.v_template, m.shapedirs, m.posedirs, m.J_regressor, m.weights, (1, 2, 3))


def test_cpp_rejects_half(arrays):
    skip_unless_available(Backend.CPP)
    c = ManoModel(arrays).constants("cpu", torch.float16)
    b, p, t = _inputs(2, True, seed=0, dtype=torch.float16)
    with pytest.raises(TypeError, match="C\\+\\+ CPU kernels take float32 or float64"):
        mano_forward(b, p, t, c, backend="cpp")


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_empty_batch(arrays, backend):
    """The reference used to fail here (reshape(0, -1) in the pose features) while C++ returned empty outputs."""
    if backend == "cpp":
        skip_unless_available(Backend.CPP)
    for dtype in (torch.float32, torch.float64):
        c = ManoModel(arrays).constants("cpu", dtype)
        for betas in (torch.zeros(1, 10, dtype=dtype), torch.zeros(0, 10, dtype=dtype)):
            v, k = mano_forward(betas, torch.zeros(0, 48, dtype=dtype), torch.zeros(0, 3, dtype=dtype), c, backend=backend)
            assert v.shape == (0, 778, 3) and k.shape == (0, 21, 3) and v.dtype == dtype
            kj = mano_joints(betas, torch.zeros(0, 48, dtype=dtype), torch.zeros(0, 3, dtype=dtype), c, backend=backend)
            assert kj.shape == (0, 21, 3)


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_bad_model_constants(arrays, backend):
    """Constants with wrong shapes, dtypes or devices are refused before any kernel reads them: a
    1-element posedirs_t or weights made the C++ kernel read past its buffers (NaN out, no error),
    int64 tip_ids or float32 weights inside float64 constants gave silently wrong vertices."""
    import dataclasses

    if backend == "cpp":
        skip_unless_available(Backend.CPP)
    c = ManoModel(arrays).constants("cpu", torch.float64)
    betas, pose, trans = _inputs(3, False, seed=4)
    run = lambda **change: mano_forward(betas, pose, trans, dataclasses.replace(c, **change), backend=backend)
    cases = [
        (dict(posedirs_t=torch.zeros(1, dtype=torch.float64)), r"posedirs_t must have shape \(135, 2334\)"),
        (dict(posedirs_t=c.posedirs_t[:, :-3].contiguous()), r"posedirs_t must have shape"),
        (dict(weights=torch.zeros(1, dtype=torch.float64)), r"weights must have shape \(778, 16\)"),
        (dict(shapedirs_t=c.shapedirs_t[:, :6].contiguous()), r"shapedirs_t must have shape \(S, V\*3\)"),
        (dict(j_shapedirs_t=c.j_shapedirs_t[:9].contiguous()), r"j_shapedirs_t must have shape \(10, 48\)"),
        (dict(j_template=c.j_template[:15].contiguous()), r"j_template must have shape \(16, 3\)"),
        (dict(v_template=c.v_template[:, :2].contiguous()), r"v_template must have shape \(V, 3\)"),
        (dict(tip_ids=c.tip_ids.long()), r"tip_ids must be int32"),
        (dict(tip_ids=c.tip_ids[:4]), r"tip_ids must have shape \(5,\)"),
        (dict(weights=c.weights.float()), r"weights is torch.float32 but v_template is torch.float64"),
        (dict(v_template=c.v_template.half(), shapedirs_t=c.shapedirs_t.half(), posedirs_t=c.posedirs_t.half(),
              j_template=c.j_template.half(), j_shapedirs_t=c.j_shapedirs_t.half(), weights=c.weights.half()),
         r"float32 or float64"),
        (dict(posedirs_t=c.posedirs_t.to("meta")), r"posedirs_t is on meta but v_template on cpu"),
        (dict(weights=c.weights.T.contiguous().T), r"weights must be contiguous"),
        (dict(tip_ids=torch.tensor([0, 1, 2, 3, 778], dtype=torch.int32)), r"tip_ids must be vertex ids in \[0, 778\)"),
    ]
    bad = dataclasses.replace(c, tip_ids=c.tip_ids.clone())
    mano_forward(betas, pose, trans, bad, backend=backend)  # checked once, cached ...
    bad.tip_ids[4] = -1
    with pytest.raises(ValueError, match="tip_ids must be vertex ids"):  # ... until modified in place
        mano_forward(betas, pose, trans, bad, backend=backend)
    for change, msg in cases:
        with pytest.raises(ValueError, match=msg):
            run(**change)
    from beingh0.core.errors import UserError

    with pytest.raises(UserError):
        run(weights=torch.zeros(1, dtype=torch.float64))
    # the unchanged constants still run
    run()


def _not_specialized(kernel) -> set:
    """Names a Triton kernel marks do_not_specialize (compiled JITFunction or the interpreter's wrapper)."""
    if hasattr(kernel, "params"):
        return {p.name for p in kernel.params if p.do_not_specialize}
    return set(kernel.kwargs.get("do_not_specialize") or ())


def test_triton_sizes_not_specialized():
    """B = 1, 16, 17, ... and shared betas (stride 0) must not each compile a new variant (36 compiles
    in one test run on a GPU before)."""
    pytest.importorskip("triton")
    from beingh0.kernels import mano as k

    for kernel in (k._mano_chain_kernel, k._mano_skin_kernel):
        assert {"B", "V", "betas_row_stride"} <= _not_specialized(kernel)


def test_backward_benchmark_records():
    """``run_mano_backward_bench`` (forward + backward vs smplx autograd): one record per op and
    backend next to the anchor's, gradients close to the float64 reference."""
    pytest.importorskip("smplx")
    skip_unless_available(Backend.CPP)
    from beingh0.benchmark.mano import BACKWARD_OPS, run_mano_backward_bench

    recs = run_mano_backward_bench(device="cpu", batches=[3], backends=["cpp"], repeats=1, quiet=True)
    assert [(r["op"], r["impl"]) for r in recs] == [("mano_forward_backward", "smplx")] + [(op, "cpp") for op in BACKWARD_OPS]
    for r in recs[1:]:
        assert r["max_abs_err_vs_reference"] < 1e-3 and r["forward_ms"] > 0 and r["speedup_vs_baseline"] > 0
