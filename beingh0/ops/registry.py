"""Every op of ``beingh0.ops``, listed once with what a generic test needs to drive it.

``tests/ops/test_contract.py`` runs one contract over each entry: ``torch.library.opcheck`` on its
custom ops (backward ops included), an empty batch, strided and broadcast (stride-0) inputs,
poisoned outputs, and every kernel backend against the float64 reference. Adding an op means adding
an ``OpEntry`` here (docs/adding-an-op.md).

Sample inputs are float32-representable (drawn in float32, kept in float64), so the float64
reference and a float32 kernel see the same numbers.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from .backend import Backend

__all__ = ["Sample", "OpEntry", "REGISTRY", "get"]


@dataclass(frozen=True)
class Sample:
    """One call: ``entry.fn(*args, backend=..., **kwargs)``; ``batched`` are the positions of the
    tensors in ``args`` whose first dim is the batch (the contract strides and broadcasts those)."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    batched: tuple[int, ...] = ()

    def with_args(self, args) -> "Sample":
        return replace(self, args=tuple(args))


@dataclass(frozen=True)
class OpEntry:
    name: str
    fn: Callable
    """The public function: ``fn(*args, backend=..., **kwargs)``."""
    reference: Callable
    """``<name>_reference(*args, **kwargs)``: plain torch, float64 for float64 samples."""
    backends: tuple[Backend, ...]
    """Kernel backends besides the reference."""
    sample: Callable[[int, int], Sample]
    """``sample(batch, seed)``: float64 inputs on the CPU (float32-representable values)."""
    to: Callable[[Sample, Any, torch.dtype], Sample]
    """``to(sample, device, dtype)``: the inputs a kernel backend takes in ``dtype`` on ``device``."""
    compare: Callable[[Any, Any, torch.dtype], None]
    """``compare(got, reference_output, dtype)``: raise AssertionError where they disagree."""
    opcheck: Callable[[str, Any], list]
    """``opcheck(backend, device)``: ``[(custom op, args), ...]`` for ``torch.library.opcheck``."""
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)
    """Dtypes the contract runs the kernel backends in (each backend skips those it does not take)."""
    differentiable: bool = False
    """Gradients of the kernel path are compared with the reference's autograd."""


# --------------------------------------------------------------------------------------------
# helpers


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _f32(t: torch.Tensor) -> torch.Tensor:
    """float32-representable float64."""
    return t.float().double()


def _allclose(name, got, exp, atol, rtol=0.0):
    """A poisoned (NaN) element left in ``got`` fails: the reference has none."""
    torch.testing.assert_close(got.detach().cpu().double(), exp.detach().cpu().double(), atol=atol, rtol=rtol,
                               msg=lambda m: f"{name}: {m}")


# --------------------------------------------------------------------------------------------
# mano_forward / mano_joints (one custom op pair: beingh0::mano_lbs, beingh0::mano_lbs_backward)

_MANO_V = 40  # a small random model keeps opcheck and gradients quick; the kernels take any V
_MANO_TIPS = (3, 9, 17, 25, 39)


def _mano_constants(dtype=torch.float64, device="cpu"):
    from .mano import ManoConstants

    g = _gen(1234)
    V = _MANO_V
    jr = torch.rand(16, V, generator=g, dtype=torch.float64) ** 4
    w = torch.exp(3 * torch.randn(V, 16, generator=g, dtype=torch.float64))
    arrays = dict(v_template=0.05 * torch.randn(V, 3, generator=g, dtype=torch.float64),
                  shapedirs=2e-3 * torch.randn(V, 3, 10, generator=g, dtype=torch.float64),
                  posedirs=2e-3 * torch.randn(V, 3, 135, generator=g, dtype=torch.float64),
                  J_regressor=jr / jr.sum(1, keepdim=True), weights=w / w.sum(1, keepdim=True))
    arrays = {k: _f32(v) for k, v in arrays.items()}
    return ManoConstants.from_arrays(**arrays, tip_ids=_MANO_TIPS, device=device, dtype=dtype)


def _mano_sample(batch: int, seed: int) -> Sample:
    g = _gen(seed)
    betas = torch.randn(batch, 10, generator=g)
    pose = 0.6 * torch.randn(batch, 48, generator=g)
    trans = 0.1 * torch.randn(batch, 3, generator=g)
    return Sample((betas.double(), pose.double(), trans.double(), _mano_constants()), {"trans_mode": 0}, (0, 1, 2))


def _mano_to(s: Sample, device, dtype) -> Sample:
    from .mano import ManoConstants

    b, p, t, c = s.args
    cdt = torch.float64 if dtype == torch.float64 else torch.float32
    c = ManoConstants(*[x.to(device=device, dtype=cdt if x.is_floating_point() else x.dtype) for x in c.tensors()],
                      tips_only=c.tips_only)
    return s.with_args([b.to(device, dtype), p.to(device, dtype), t.to(device, dtype), c])


_MANO_TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def _mano_compare(got, ref, dtype):
    if isinstance(ref, tuple):
        assert type(got) is type(ref), f"result type {type(got).__name__}, reference {type(ref).__name__}"
        for name, a, e in zip(ref._fields, got, ref):
            _allclose(name, a, e, _MANO_TOL[dtype])
    else:
        _allclose("keypoints", got, ref, _MANO_TOL[dtype])


def _mano_opcheck(with_vertices: bool, backend: str, device) -> list:
    """mano_forward: the ops with vertices; mano_joints: keypoints only (the tip constants)."""
    from .mano import _mano_lbs_backward_op, _mano_lbs_op

    out = []
    for with_vertices in (with_vertices,):
        c = _mano_constants(torch.float64, device)
        c = c if with_vertices else c.tips()
        b, p, t, _ = _mano_to(_mano_sample(3, 7), device, torch.float64).args
        b, p, t = (x.requires_grad_() for x in (b, p, t))
        out.append((_mano_lbs_op, (b, p, t, *c.tensors(), 0, with_vertices, backend)))
        g = _gen(8)
        gv = torch.randn(3, c.num_verts if with_vertices else 0, 3, generator=g, dtype=torch.float64).to(device)
        gk = torch.randn(3, 21, 3, generator=g, dtype=torch.float64).to(device)
        out.append((_mano_lbs_backward_op, (gv, gk, b.detach(), p.detach(), t.detach(), *c.tensors(), 1,
                                            with_vertices, backend)))
    return out


def _mano_entry(name: str) -> OpEntry:
    from .mano import mano_forward, mano_forward_reference, mano_joints, mano_joints_reference

    fn, ref = (mano_forward, mano_forward_reference) if name == "mano_forward" else (mano_joints, mano_joints_reference)
    opcheck = functools.partial(_mano_opcheck, name == "mano_forward")
    return OpEntry(name, fn, ref, (Backend.CPP, Backend.CUDA, Backend.TRITON), _mano_sample, _mano_to, _mano_compare,
                   opcheck, dtypes=(torch.float32, torch.float64), differentiable=True)


# --------------------------------------------------------------------------------------------
# grq_encode (custom op beingh0::grq_encode)


def _grq_problem(batch: int, seed: int, G=2, L=3, K=21, Dg=6):
    """Structured residual codebooks (layer l scaled 0.6**l) and inputs near sums of codes: the best code
    wins by a clear margin, so a float32 kernel must pick exactly the float64 reference's codes."""
    g = _gen(seed)
    scale = (0.6 ** torch.arange(L, dtype=torch.float32)).view(1, L, 1, 1)
    cb = torch.randn(G, L, K, Dg, generator=g) * scale
    pick = torch.randint(0, K, (batch, G, L), generator=g)
    x = cb[torch.arange(G)[None, :, None], torch.arange(L)[None, None, :], pick].sum(2)
    x = x + 0.02 * 0.6 ** L * torch.randn(batch, G, Dg, generator=g)
    return x.reshape(batch, G * Dg).double(), cb.double()


def _grq_sample(batch: int, seed: int) -> Sample:
    x, cb = _grq_problem(batch, seed)
    return Sample((x, cb), {"return_quantized": True}, (0,))


def _grq_to(s: Sample, device, dtype) -> Sample:
    x, cb = s.args
    return s.with_args([x.to(device, dtype), cb.to(device, torch.float32)])


def _grq_compare(got, ref, dtype):
    assert type(got) is type(ref), f"result type {type(got).__name__}, reference {type(ref).__name__}"
    assert got.codes.dtype == torch.int64 and got.codes.shape == ref.codes.shape
    bad = got.codes.cpu() != ref.codes
    assert not bad.any(), f"codes differ from the reference at {bad.nonzero()[:5].tolist()} (poison is -7)"
    _allclose("quantized", got.quantized, ref.quantized, atol=1e-5, rtol=1e-5)


def _grq_opcheck(backend: str, device) -> list:
    from .backend import ext, is_available
    from .grq import _grq_encode_op, _pack_cpu, code_norms

    x, cb = _grq_to(_grq_sample(9, 3), device, torch.float32).args
    norms = code_norms(cb).contiguous()
    out = [(_grq_encode_op, (x, cb, norms, rq, backend, None)) for rq in (True, False)]
    if backend == "cpp" and is_available(Backend.CPP)[0]:
        out.append((_grq_encode_op, (x, cb, norms, True, backend, _pack_cpu(cb, ext().grq_cpu_tile_codes()))))
    return out


def _grq_entry() -> OpEntry:
    from .grq import grq_encode, grq_encode_reference

    return OpEntry("grq_encode", grq_encode, grq_encode_reference, (Backend.CPP, Backend.CUDA, Backend.TRITON),
                   _grq_sample, _grq_to, _grq_compare, _grq_opcheck)


# --------------------------------------------------------------------------------------------
# warp_align (custom op beingh0::warp_align)

_WARP_SRC, _WARP_OUT = (11, 13), (6, 7)  # (H, W) of the source images and of the output


def _warp_sample(batch: int, seed: int) -> Sample:
    g = _gen(seed)
    H, W = _WARP_SRC
    images = torch.randint(0, 256, (batch, H, W, 3), generator=g, dtype=torch.uint8)
    # zoom in (scale 1.3..1.6) with a small rotation and a shift that keeps every sample point inside
    # the image and away from its edges: no edge case of the mask definition, smooth bilinear taps
    ang = 0.1 * (torch.rand(batch, generator=g, dtype=torch.float64) - 0.5)
    s = 1.3 + 0.3 * torch.rand(batch, generator=g, dtype=torch.float64)
    A = torch.zeros(batch, 3, 3, dtype=torch.float64)
    A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1] = s * ang.cos(), -s * ang.sin(), s * ang.sin(), s * ang.cos()
    A[:, 0, 2], A[:, 1, 2], A[:, 2, 2] = -s * 2.5, -s * 2.5, 1.0
    return Sample((images, _f32(A), _WARP_OUT), {"return_mask": True}, (0, 1))


def _warp_to(s: Sample, device, dtype) -> Sample:
    images, A, hw = s.args
    return replace(s, args=(images.to(device), A, hw), kwargs={**s.kwargs, "out_dtype": dtype})


def _warp_compare(got, ref, dtype):
    assert type(got) is type(ref), f"result type {type(got).__name__}, reference {type(ref).__name__}"
    _allclose("image", got.image, ref.image, atol=2e-3 if dtype == torch.float32 else 5e-2)
    assert got.mask.view(torch.uint8).max() <= 1, "mask bytes not written (poison 0xFF left)"
    assert torch.equal(got.mask.cpu(), ref.mask.cpu())


def _warp_opcheck(backend: str, device) -> list:
    from .warp import WarpOptions, _warp_align_op, prepare

    images, A, hw = _warp_sample(2, 5).args
    p = prepare(images, A, WarpOptions(hw))
    params = p.params.float().to(device)
    return [(_warp_align_op, (images.to(device), params, p.chan, *hw, mode, 0, out_dtype, rm, backend))
            for mode, out_dtype, rm in ((0, torch.float32, True), (0, torch.float32, False), (1, torch.float32, True))]


def _warp_entry() -> OpEntry:
    from .warp import warp_align, warp_align_reference

    return OpEntry("warp_align", warp_align, warp_align_reference, (Backend.CPP, Backend.CUDA, Backend.TRITON),
                   _warp_sample, _warp_to, _warp_compare, _warp_opcheck, dtypes=(torch.float32,))


# --------------------------------------------------------------------------------------------
# fused_linear_cross_entropy (custom ops beingh0::fused_linear_ce, ..._backward, ..._backward_units)

_CE_H, _CE_V = 12, 37  # V not a multiple of any tile or chunk


def _ce_sample(batch: int, seed: int) -> Sample:
    """hidden (batch, H) is the batched argument; targets are drawn per row (every third ignored),
    the weight and bias are fixed. Logits of order 1: a well-conditioned softmax."""
    g = _gen(seed)
    hidden = torch.randn(batch, _CE_H, generator=g)
    weight = 0.4 * torch.randn(_CE_V, _CE_H, generator=_gen(77))
    bias = 0.1 * torch.randn(_CE_V, generator=_gen(78))
    targets = torch.randint(0, _CE_V, (batch,), generator=g)
    targets[::3] = -100
    return Sample((hidden.double(), weight.double(), targets), {"bias": bias.double(), "chunk_size": 2}, (0,))


def _ce_to(s: Sample, device, dtype) -> Sample:
    h, w, t = s.args
    return replace(s, args=(h.to(device, dtype), w.to(device, dtype), t.to(device)),
                   kwargs={**s.kwargs, "bias": s.kwargs["bias"].to(device, dtype)})


def _ce_compare(got, ref, dtype):
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32), got.dtype
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    _allclose("loss", got, ref, atol=tol, rtol=tol)


def _ce_opcheck(backend: str, device) -> list:
    from .ce import _ce_backward_op, _ce_backward_units_op, _ce_op, _forward_impl

    h, w, t = _ce_to(_ce_sample(7, 5), device, torch.float64).args
    b = 0.1 * torch.randn(_CE_V, dtype=torch.float64, generator=_gen(3)).to(device)
    restrict = torch.zeros(7, dtype=torch.bool, device=device)
    t = t.clone()
    t[1], restrict[1] = 20, True
    out = []
    for bias, r, gif in ((b, restrict, False), (b, restrict, True), (None, None, True)):
        args = (h.detach().requires_grad_(), w.detach().requires_grad_(), t,
                bias.detach().requires_grad_() if bias is not None else None, r, 10, 30, 3, backend)
        out.append((_ce_op, args + (gif,)))
        loss, lse, dh, dw, db = _forward_impl(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args], True)
        grad = torch.randn(7, dtype=torch.float64, generator=_gen(4)).to(device)
        out.append((_ce_backward_op, (grad, h, w, t, bias, r, lse, 10, 30, 3, backend)))
        out.append((_ce_backward_units_op, (grad, h, w, t, bias, r, lse, dh, dw, db, 10, 30, 3)))
    return out


def _ce_entry() -> OpEntry:
    from .ce import fused_linear_cross_entropy, fused_linear_cross_entropy_reference

    return OpEntry("fused_linear_cross_entropy", fused_linear_cross_entropy, fused_linear_cross_entropy_reference,
                   (Backend.CPP, Backend.TRITON), _ce_sample, _ce_to, _ce_compare, _ce_opcheck,
                   dtypes=(torch.float32, torch.float64), differentiable=True)


# --------------------------------------------------------------------------------------------

REGISTRY: dict[str, OpEntry] = {e.name: e for e in (_mano_entry("mano_forward"), _mano_entry("mano_joints"),
                                                    _grq_entry(), _warp_entry(), _ce_entry())}


def get(name: str) -> OpEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op {name!r} registered; registered: {sorted(REGISTRY)}") from None
