"""Tests of beingh0.motion.windows (resampling, windowing, canonical frames, reference sampling)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from beingh0.core.rotations import axis_angle_to_matrix
from beingh0.motion.windows import (
    canonical_frame,
    canonicalize,
    decanonicalize,
    make_windows,
    resample,
    sample_reference_index,
)
from beingh0.testing import assert_verbose_allclose

F64 = torch.float64


def _rotation_path(times, axis, omega, base):
    """R(t) = R_base @ exp(omega t axis): a constant-velocity rotation, as axis-angle rows (T, 3)."""
    from beingh0.core.rotations import matrix_to_axis_angle

    R = axis_angle_to_matrix(base) @ axis_angle_to_matrix(times[:, None] * omega * axis)
    return matrix_to_axis_angle(R)


def _constant_velocity(fps, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    axes = torch.nn.functional.normalize(torch.randn(16, 3, dtype=F64, generator=g), dim=-1)
    bases = torch.randn(16, 3, dtype=F64, generator=g)
    omega = torch.rand(16, dtype=F64, generator=g) * 6.0           # up to 6 rad/s
    v, t0 = torch.randn(3, dtype=F64, generator=g), torch.randn(3, dtype=F64, generator=g)

    def at(times):
        rots = torch.stack([_rotation_path(times, axes[j], omega[j], bases[j]) for j in range(16)], 1)
        return {"global_orient": rots[:, 0], "hand_pose": rots[:, 1:].reshape(len(times), 45),
                "trans": t0 + times[:, None] * v, "betas": torch.linspace(0, 1, 10, dtype=F64)}

    return at(torch.arange(T, dtype=F64) / fps), at


@pytest.mark.parametrize("src_fps,T", [(30, 61), (60, 100), (24, 50), (10, 21)])
def test_resample_constant_velocity_is_exact(src_fps, T):
    params, at = _constant_velocity(src_fps, T)
    out = resample(params, src_fps, 15)
    n = math.floor((T - 1) * 15 / src_fps + 1e-9) + 1
    assert out["global_orient"].shape == (n, 3) and out["hand_pose"].shape == (n, 45) and out["trans"].shape == (n, 3)
    expected = at(torch.arange(n, dtype=F64) / 15)
    for key in ("global_orient", "hand_pose"):
        got = axis_angle_to_matrix(out[key].reshape(n, -1, 3))
        want = axis_angle_to_matrix(expected[key].reshape(n, -1, 3))
        assert_verbose_allclose(got, want, atol=1e-12, name=key)
    assert_verbose_allclose(out["trans"], expected["trans"], atol=1e-12, name="trans")
    assert torch.equal(out["betas"], params["betas"])


def test_resample_identity_and_per_frame_betas():
    params, _ = _constant_velocity(15, 20)
    params["betas"] = torch.randn(20, 10, dtype=F64)
    out = resample(params, 15, 15)
    for key in params:
        assert_verbose_allclose(out[key], params[key], atol=1e-12, name=key)


def test_resample_errors():
    params, _ = _constant_velocity(30, 10)
    with pytest.raises(ValueError, match="src_fps"):
        resample(params, 0, 15)
    with pytest.raises(ValueError, match="unknown parameter keys"):
        resample(dict(params, foo=torch.zeros(10, 2)), 30)
    with pytest.raises(ValueError, match="time-major"):
        resample(dict(params, trans=torch.zeros(9, 3, dtype=F64)), 30)


@pytest.mark.parametrize("T,N", [(1, 1), (15, 1), (16, 2), (31, 3), (45, 3)])
def test_make_windows_count_padding_mask(T, N):
    x = torch.arange(T * 4, dtype=F64).reshape(T, 4) + 1.0
    w, m = make_windows(x)
    assert w.shape == (N, 16, 4) and m.shape == (N, 16) and m.dtype == torch.bool
    assert int(m.sum()) == T
    assert not m[:, 15].any() and torch.equal(w[:, 15], torch.zeros(N, 4, dtype=F64))
    assert torch.equal(w[m], x)                           # frames in order, nothing lost
    assert torch.equal(w[~m], torch.zeros(int((~m).sum()), 4, dtype=F64))
    assert torch.equal(w[0, 0], x[0])
    if T > 15:
        assert torch.equal(w[1, 0], x[15])


def test_make_windows_errors():
    with pytest.raises(ValueError, match="frames <= pad_to"):
        make_windows(torch.zeros(5, 3), frames=16, pad_to=15)
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        make_windows(torch.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        make_windows(torch.zeros(0, 3))


@pytest.mark.parametrize("ref_index", [0, 7, -1])
def test_canonicalize_round_trip(ref_index):
    params, _ = _constant_velocity(15, 15, seed=4)
    params["joints"] = torch.randn(15, 21, 3, dtype=F64)
    canon, frame = canonicalize(params, ref_index)
    # The reference frame becomes the identity at the origin.
    assert_verbose_allclose(canon["global_orient"][ref_index], torch.zeros(3, dtype=F64), atol=1e-12, name="R_ref")
    assert_verbose_allclose(canon["trans"][ref_index], torch.zeros(3, dtype=F64), atol=1e-15, name="t_ref")
    assert torch.equal(canon["hand_pose"], params["hand_pose"]) and torch.equal(canon["betas"], params["betas"])
    back = decanonicalize(canon, frame)
    R = lambda p: axis_angle_to_matrix(p["global_orient"])  # noqa: E731
    assert_verbose_allclose(R(back), R(params), atol=1e-12, name="global_orient")
    assert_verbose_allclose(back["global_orient"], params["global_orient"], atol=1e-9, name="aa")
    for key in ("trans", "joints"):
        assert_verbose_allclose(back[key], params[key], atol=1e-12, name=key)


def test_canonicalize_preserves_relative_geometry():
    params, _ = _constant_velocity(15, 15, seed=5)
    canon, frame = canonicalize(params, 3)
    R, Rc = axis_angle_to_matrix(params["global_orient"]), axis_angle_to_matrix(canon["global_orient"])
    # Relative rotations between frames and distances between wrist positions are unchanged.
    assert_verbose_allclose(Rc[1].T @ Rc[9], R[1].T @ R[9], atol=1e-12, name="rel R")
    d = lambda t: (t[:, None] - t[None]).norm(dim=-1)  # noqa: E731
    assert_verbose_allclose(d(canon["trans"]), d(params["trans"]), atol=1e-12, name="distances")
    assert_verbose_allclose(frame.rotation, R[3], atol=0, name="frame")


def test_canonicalize_with_an_earlier_reference():
    params, _ = _constant_velocity(15, 60, seed=6)
    frame = canonical_frame(params, 10)
    window = {k: (v if k == "betas" else v[30:45]) for k, v in params.items()}
    canon, used = canonicalize(window, frame=frame)
    full, _ = canonicalize(params, 10)
    assert used is frame
    assert_verbose_allclose(canon["trans"], full["trans"][30:45], atol=0, name="trans")
    with pytest.raises(ValueError, match="outside"):
        canonicalize(window, 15)


@pytest.mark.parametrize("start", [0, 1, 20, 149, 150, 151, 1000])
def test_sample_reference_index_bounds(start):
    rng = np.random.default_rng(0)
    draws = [sample_reference_index(rng, start) for _ in range(2000)]
    low = max(0, start - 150)
    assert min(draws) >= low and max(draws) <= start
    assert min(draws) == low and max(draws) == start        # both ends are reachable
    g = torch.Generator().manual_seed(0)
    draws_t = [sample_reference_index(g, start) for _ in range(500)]
    assert min(draws_t) >= low and max(draws_t) <= start


def test_sample_reference_index_errors():
    with pytest.raises(ValueError, match="window_start"):
        sample_reference_index(np.random.default_rng(0), -1)
    with pytest.raises(TypeError, match="default_rng"):
        sample_reference_index(np.random, 5)
    assert sample_reference_index(np.random.default_rng(0), 10, max_back_frames=0) == 10
