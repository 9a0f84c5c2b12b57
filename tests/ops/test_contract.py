"""One contract for every op of beingh0.ops.registry: opcheck of its custom ops (backward included),
an empty batch, strided and broadcast (stride-0) inputs, poisoned outputs, and every kernel backend
compared with the float64 reference (never with another build of itself)."""
import re
from pathlib import Path

import pytest
import torch

from beingh0.ops import Backend
from beingh0.ops._scaffold import DTYPE_CODES, new_output, poison_outputs
from beingh0.ops.registry import REGISTRY, OpEntry, Sample
from beingh0.testing import backend_device, skip_unless_available

ENTRIES = list(REGISTRY.values())
KERNELS = [Backend.CPP, Backend.CUDA, Backend.TRITON]
CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _cases(with_reference=False):
    backends = ([Backend.REFERENCE] if with_reference else []) + KERNELS
    return [pytest.param(e, b, id=f"{e.name}-{b.value}") for e in ENTRIES for b in backends
            if b is Backend.REFERENCE or b in e.backends]


def _dtypes(entry: OpEntry, backend: Backend):
    # float64 kernels: the C++ CPU ones (CUDA and Triton compute in float32 or lower)
    return [d for d in entry.dtypes if d != torch.float64 or backend in (Backend.CPP, Backend.REFERENCE)]


def _run(entry: OpEntry, backend: Backend, sample: Sample, dtype):
    s = entry.to(sample, backend_device(backend), dtype)
    return entry.fn(*s.args, backend=backend, **s.kwargs)


def _reference(entry: OpEntry, sample: Sample):
    """The float64 reference on the very same values (samples are float32-representable)."""
    s = entry.to(sample, "cpu", torch.float64)
    return entry.reference(*s.args, **s.kwargs)


def _map_batched(sample: Sample, f) -> Sample:
    return sample.with_args([f(a) if i in sample.batched else a for i, a in enumerate(sample.args)])


# --------------------------------------------------------------------------------------------
# shared pieces


def test_registry_lists_every_op():
    import beingh0.ops as ops

    public = {n for n in ops.__all__ if n.endswith("_reference")}
    assert {f"{e.name}_reference" for e in ENTRIES} == public, "an op's reference is public but the op is not registered"
    for e in ENTRIES:
        assert e.reference.__name__ == f"{e.name}_reference" and e.fn.__name__ == e.name


def test_dtype_table_mirrors_status_h():
    """beingh0.ops._scaffold.DTYPE_CODES is the C++ `enum DType` of csrc/common/status.h, entry for entry."""
    text = (CSRC / "common" / "status.h").read_text()
    enum = re.search(r"enum DType : int \{([^}]*)\}", text).group(1)
    cpp = {name.strip(): int(v) for name, v in re.findall(r"(\w+)\s*=\s*(\d+)", enum)}
    names = {torch.float32: "kF32", torch.float64: "kF64", torch.float16: "kF16", torch.bfloat16: "kBF16",
             torch.uint8: "kU8"}
    assert {names[d]: c for d, c in DTYPE_CODES.items()} == cpp


def test_poison_is_on_and_reaches_every_dtype():
    assert poison_outputs(), "tests/conftest.py sets BEINGH0_POISON_OUTPUTS=1"
    assert new_output((3,), torch.float32, "cpu").isnan().all()
    assert new_output((3,), torch.bfloat16, "cpu").isnan().all()
    assert (new_output((3,), torch.int64, "cpu") == -7).all()
    assert (new_output((3,), torch.uint8, "cpu") == 77).all()
    assert (new_output((3,), torch.bool, "cpu").view(torch.uint8) == 255).all()


# --------------------------------------------------------------------------------------------
# the contract


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("backend", ["cpp", "cuda"])
def test_opcheck(entry, backend):
    """Schema, fake (meta) implementation, autograd registration, and torch.compile's AOT dispatch."""
    skip_unless_available(Backend(backend))
    for op, args in entry.opcheck(backend, backend_device(Backend(backend))):
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("entry,backend", _cases())
def test_kernel_matches_float64_reference(entry, backend):
    """Every dtype the backend takes; outputs start poisoned, so an unwritten element fails too."""
    skip_unless_available(backend)
    sample = entry.sample(5, 1)
    ref = _reference(entry, sample)
    for dtype in _dtypes(entry, backend):
        entry.compare(_run(entry, backend, sample, dtype), ref, dtype)


@pytest.mark.parametrize("entry,backend", _cases(with_reference=True))
def test_empty_batch(entry, backend):
    skip_unless_available(backend)
    sample = entry.sample(0, 2)
    got = _run(entry, backend, sample, torch.float32)
    ref = _reference(entry, sample)
    got_t = got if isinstance(got, tuple) else (got,)
    ref_t = ref if isinstance(ref, tuple) else (ref,)
    assert type(got) is type(ref)
    for a, e in zip(got_t, ref_t):
        assert (a is None) == (e is None)
        if a is not None:
            assert a.shape == e.shape and a.shape[0] == 0


@pytest.mark.parametrize("entry,backend", _cases(with_reference=True))
def test_strided_inputs(entry, backend):
    """A column slice of a wider tensor (row stride > row size) and an every-other-element view (inner
    stride 2) of every batched input give the reference's output on the contiguous values."""
    skip_unless_available(backend)
    sample = entry.sample(6, 3)
    ref = _reference(entry, sample)
    wide = lambda t: torch.cat([t, torch.zeros_like(t)], -1)[..., : t.shape[-1]]
    every_other = lambda t: torch.stack([t, torch.zeros_like(t)], -1)[..., 0]
    for f in (wide, every_other):
        s = _map_batched(entry.to(sample, backend_device(backend), torch.float32), f)
        assert any(not s.args[i].is_contiguous() for i in s.batched)
        entry.compare(entry.fn(*s.args, backend=backend, **s.kwargs), ref, torch.float32)


@pytest.mark.parametrize("entry,backend", _cases(with_reference=True))
def test_broadcast_inputs(entry, backend):
    """Batched inputs that are one row expanded to the batch (stride 0, as ``expand`` makes them)."""
    skip_unless_available(backend)
    sample = _map_batched(entry.sample(4, 4), lambda t: t[:1].expand_as(t))
    assert all(sample.args[i].stride(0) == 0 for i in sample.batched)
    ref = _reference(entry, _map_batched(sample, lambda t: t.contiguous()))
    s = entry.to(sample, backend_device(backend), torch.float32)
    s = _map_batched(s, lambda t: t[:1].expand_as(t))  # .to() may have copied: expand again on the device
    entry.compare(entry.fn(*s.args, backend=backend, **s.kwargs), ref, torch.float32)


@pytest.mark.parametrize("entry,backend", [c for c in _cases() if c.values[0].differentiable])
def test_gradients_match_reference(entry, backend):
    """The kernels' backward (our backward op) against autograd through the float64 reference."""
    skip_unless_available(backend)
    sample = entry.sample(3, 6)
    dtype = torch.float64 if backend is Backend.CPP else torch.float32

    def grads(fn, s):
        inputs = [s.args[i].detach().requires_grad_() for i in s.batched]
        args = list(s.args)
        for i, t in zip(s.batched, inputs):
            args[i] = t
        out = fn(*args, **s.kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        g = torch.Generator().manual_seed(0)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o)).sum() for o in outs)
        return torch.autograd.grad(loss, inputs)

    ref = grads(entry.reference, entry.to(sample, "cpu", torch.float64))
    got = grads(lambda *a, **k: entry.fn(*a, backend=backend, **k), entry.to(sample, backend_device(backend), dtype))
    for a, e in zip(got, ref):
        tol = 1e-9 if dtype == torch.float64 else 2e-3
        torch.testing.assert_close(a.cpu().double(), e, atol=tol, rtol=tol)
