"""Test helpers shared by the test suite and benchmarks (kept in the package, like torch.testing)."""
from __future__ import annotations

import numpy as np
import torch

from .core.constants import PARENTS


def assert_verbose_allclose(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float = 0.0, name: str = "tensor"):
    """allclose that reports the mismatch count, the first indices and NaN/Inf mismatches."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    nan_a, nan_e = ~torch.isfinite(a), ~torch.isfinite(e)
    if (nan_a != nan_e).any():
        idx = (nan_a != nan_e).nonzero()[:5].tolist()
        raise AssertionError(f"{name}: NaN/Inf mismatch at {int((nan_a != nan_e).sum())} elements, first {idx}")
    diff = (a - e).abs()
    bad = (diff > atol + rtol * e.abs()) & ~nan_e
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        raise AssertionError(
            f"{name}: {int(bad.sum())}/{a.numel()} elements differ (atol={atol}, rtol={rtol}); max abs diff "
            f"{diff[~nan_e].max().item():.3e}; first at {idx}: got {[a[tuple(i)].item() for i in idx]}, "
            f"expected {[e[tuple(i)].item() for i in idx]}")


def random_mano_arrays(seed: int = 0, num_verts: int = 778, num_betas: int = 10) -> dict:
    """A random but well-formed model in MANO's layout (for kernel tests: fresh, never zeros)."""
    rng = np.random.default_rng(seed)
    V = num_verts
    jr = rng.random((16, V)) ** 4
    w = np.exp(3 * rng.standard_normal((V, 16)))
    return dict(
        v_template=rng.normal(0, 0.05, (V, 3)),
        shapedirs=rng.normal(0, 2e-3, (V, 3, num_betas)),
        posedirs=rng.normal(0, 2e-3, (V, 3, 135)),
        J_regressor=jr / jr.sum(1, keepdims=True),
        weights=w / w.sum(1, keepdims=True),
        kintree_table=np.stack([np.array(PARENTS), np.arange(16)]).astype(np.int64),
        f=rng.integers(0, V, (1538, 3)),
        hands_components=np.linalg.qr(rng.standard_normal((45, 45)))[0],
        hands_mean=rng.normal(0, 0.1, 45),
    )


def random_pose(batch: int, seed: int = 0, dtype=torch.float64, mix: bool = True) -> torch.Tensor:
    """(B, 48) axis-angle: ordinary angles, and (with ``mix``) rows near 0 and near pi."""
    g = torch.Generator().manual_seed(seed)
    pose = 0.6 * torch.randn(batch, 48, generator=g, dtype=torch.float64)
    if mix and batch >= 3:
        pose[0::3] *= 1e-9                                                   # angles near 0
        axes = torch.nn.functional.normalize(pose[1::3].reshape(-1, 3), dim=-1)
        near_pi = (torch.pi - 1e-4 * torch.rand(axes.shape[0], 1, generator=g, dtype=torch.float64))
        pose[1::3] = (axes * near_pi).reshape(-1, 48)                        # angles near pi
    return pose.to(dtype)


def backend_device(backend) -> str:
    """The device a backend's tests run on: CUDA for the CUDA backend and for Triton when a GPU is
    present (else Triton runs under its CPU interpreter), CPU otherwise."""
    from .ops.backend import Backend

    b = Backend(backend)
    return "cuda" if b is Backend.CUDA or (b is Backend.TRITON and torch.cuda.is_available()) else "cpu"


def skip_unless_available(backend) -> None:
    """pytest.skip with the reason when ``backend`` cannot run on this machine."""
    import pytest

    from .ops.backend import Backend, is_available

    ok, why = is_available(Backend(backend))
    if not ok:
        pytest.skip(f"{Backend(backend).value} backend unavailable: {why}")
