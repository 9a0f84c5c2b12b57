"""Tests of beingh0.core.rotations (float64 round trips, edge angles, gradients, shapes)."""
from __future__ import annotations

import math

import pytest
import torch

from beingh0.core.rotations import rodrigues
from beingh0.core import rotations as rot
from beingh0.testing import assert_verbose_allclose

F64 = torch.float64


def _axes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 3, dtype=F64, generator=g), dim=-1)


def _random_rotvecs(n, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    return _axes(n, seed) * (torch.rand(n, 1, dtype=F64, generator=g) * (math.pi - 1e-3))


EDGE_ANGLES = [0.0, 1e-8, 1e-4, 1e-3, 0.5, 2.0, math.pi - 1e-3, math.pi - 1e-6]


def test_axis_angle_to_matrix_is_rodrigues():
    r = _random_rotvecs(50).reshape(5, 10, 3)
    assert torch.equal(rot.axis_angle_to_matrix(r), rodrigues(r))


@pytest.mark.parametrize("angle", EDGE_ANGLES)
def test_matrix_axis_angle_round_trip(angle):
    r = _axes(200) * angle
    assert_verbose_allclose(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(r)), r, atol=1e-12, name="aa")


def test_matrix_to_axis_angle_random_and_batched():
    r = _random_rotvecs(600).reshape(2, 3, 100, 3)
    out = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(r))
    assert out.shape == r.shape
    assert_verbose_allclose(out, r, atol=1e-12, name="aa")


def test_angle_pi_gives_an_equivalent_rotation():
    # At exactly pi, r and -r are the same rotation: the sign is arbitrary, the matrix is not.
    r = _axes(100) * math.pi
    R = rot.axis_angle_to_matrix(r)
    out = rot.matrix_to_axis_angle(R)
    assert_verbose_allclose(out.norm(dim=-1), torch.full((100,), math.pi, dtype=F64), atol=1e-12, name="angle")
    assert_verbose_allclose(rot.axis_angle_to_matrix(out), R, atol=1e-12, name="R")


@pytest.mark.parametrize("angle", EDGE_ANGLES)
def test_quaternion_round_trips(angle):
    r = _axes(100, seed=3) * angle
    q = rot.axis_angle_to_quaternion(r)
    assert_verbose_allclose(q.norm(dim=-1), torch.ones(100, dtype=F64), atol=1e-14, name="|q|")
    assert_verbose_allclose(rot.quaternion_to_axis_angle(q), r, atol=1e-12, name="q->aa")
    R = rot.axis_angle_to_matrix(r)
    assert_verbose_allclose(rot.quaternion_to_matrix(q), R, atol=1e-14, name="q->R")
    assert_verbose_allclose(rot.matrix_to_quaternion(R), q, atol=1e-12, name="R->q")


def test_quaternion_sign_and_multiply():
    r1, r2 = _random_rotvecs(50, 1), _random_rotvecs(50, 2)
    q1, q2 = rot.axis_angle_to_quaternion(r1), rot.axis_angle_to_quaternion(r2)
    assert_verbose_allclose(rot.quaternion_to_axis_angle(-q1), r1, atol=1e-12, name="-q")
    prod = rot.quaternion_to_matrix(rot.quaternion_multiply(q1, q2))
    assert_verbose_allclose(prod, rot.axis_angle_to_matrix(r1) @ rot.axis_angle_to_matrix(r2), atol=1e-13, name="q1q2")
    ident = rot.quaternion_multiply(q1, rot.quaternion_conjugate(q1))
    assert_verbose_allclose(ident, torch.tensor([1.0, 0, 0, 0], dtype=F64).expand(50, 4), atol=1e-14, name="q q*")


@pytest.mark.parametrize("angle", [1e-8, 0.5, 2.0, math.pi - 1e-6])
def test_6d_round_trip_and_orthonormality(angle):
    r = _axes(100, seed=5) * angle
    R = rot.axis_angle_to_matrix(r)
    d6 = rot.matrix_to_6d(R)
    assert d6.shape == (100, 6)
    assert torch.equal(d6[:, :3], R[:, :, 0]) and torch.equal(d6[:, 3:], R[:, :, 1])
    assert_verbose_allclose(rot.sixd_to_matrix(d6), R, atol=1e-14, name="6d->R")


def test_sixd_to_matrix_of_noisy_input_is_a_rotation():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 40, 6, dtype=F64, generator=g)
    R = rot.sixd_to_matrix(x)
    eye = torch.eye(3, dtype=F64).expand_as(R)
    assert_verbose_allclose(R.transpose(-1, -2) @ R, eye, atol=1e-13, name="R^T R")
    assert_verbose_allclose(torch.linalg.det(R), torch.ones(3, 40, dtype=F64), atol=1e-13, name="det")
    # The first column is the normalised first input column (Gram-Schmidt keeps its direction).
    assert_verbose_allclose(R[..., :, 0], torch.nn.functional.normalize(x[..., :3], dim=-1), atol=1e-14, name="b1")


def test_outputs_are_orthonormal():
    r = _random_rotvecs(100, 9)
    for R in (rot.axis_angle_to_matrix(r), rot.quaternion_to_matrix(rot.axis_angle_to_quaternion(r))):
        assert_verbose_allclose(R.transpose(-1, -2) @ R, torch.eye(3, dtype=F64).expand(100, 3, 3), atol=1e-14,
                                name="R^T R")
        assert_verbose_allclose(torch.linalg.det(R), torch.ones(100, dtype=F64), atol=1e-14, name="det")


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, 1.0, math.pi - 1e-2])
def test_gradcheck_matrix_to_axis_angle(angle):
    R = rot.axis_angle_to_matrix(_axes(3, seed=11) * angle).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.matrix_to_axis_angle, (R,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1.0])
def test_gradcheck_quaternion_and_6d(angle):
    r = (_axes(3, seed=12) * angle).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_quaternion, (r,), eps=1e-6, atol=1e-6)
    q = rot.axis_angle_to_quaternion(r.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.quaternion_to_axis_angle, (q,), eps=1e-6, atol=1e-6)
    d6 = rot.matrix_to_6d(rot.axis_angle_to_matrix(r.detach())).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.sixd_to_matrix, (d6,), eps=1e-6, atol=1e-6)
    R = rot.axis_angle_to_matrix(r.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.matrix_to_6d, (R,), eps=1e-6, atol=1e-6)


def test_gradients_finite_at_identity():
    R = torch.eye(3, dtype=F64).expand(4, 3, 3).clone().requires_grad_(True)
    rot.matrix_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()
    q = torch.tensor([[1.0, 0, 0, 0]], dtype=F64, requires_grad=True)
    rot.quaternion_to_axis_angle(q).sum().backward()
    assert torch.isfinite(q.grad).all()


def test_slerp_endpoints_midpoint_and_shortest_path():
    r0, r1 = _random_rotvecs(50, 20), _random_rotvecs(50, 21)
    R0, R1 = rot.axis_angle_to_matrix(r0), rot.axis_angle_to_matrix(r1)
    aa = lambda t: rot.axis_angle_to_matrix(rot.slerp_axis_angle(r0, r1, t))  # noqa: E731
    assert_verbose_allclose(aa(0.0), R0, atol=1e-13, name="t=0")
    assert_verbose_allclose(aa(1.0), R1, atol=1e-13, name="t=1")
    # The midpoint M satisfies M = R0 exp(log(R0^T R1) / 2): R0^T M applied twice gives R0^T R1.
    M = aa(0.5)
    half = R0.transpose(-1, -2) @ M
    assert_verbose_allclose(half @ half, R0.transpose(-1, -2) @ R1, atol=1e-12, name="mid")
    # Shortest path: q1 and -q1 give the same result, and the step angle is <= pi / 2.
    q0, q1 = rot.axis_angle_to_quaternion(r0), rot.axis_angle_to_quaternion(r1)
    assert_verbose_allclose(rot.quaternion_slerp(q0, -q1, 0.3), rot.quaternion_slerp(q0, q1, 0.3), atol=1e-13,
                            name="sign")
    step = rot.matrix_to_axis_angle(half).norm(dim=-1)
    assert bool((step <= math.pi / 2 + 1e-12).all())


def test_slerp_per_element_t_and_tiny_steps():
    axis = _axes(1, 30)
    r0 = axis * 0.3
    t = torch.linspace(0, 1, 11, dtype=F64)
    out = rot.slerp_axis_angle(r0.expand(11, 3), (axis * (0.3 + 1e-9)).expand(11, 3), t)
    assert_verbose_allclose(out, axis * (0.3 + 1e-9 * t[:, None]), atol=1e-15, name="tiny")


@pytest.mark.parametrize("fn,shape", [
    (rot.axis_angle_to_matrix, (4, 4)), (rot.matrix_to_axis_angle, (3, 4)), (rot.matrix_to_6d, (4, 9)),
    (rot.sixd_to_matrix, (4, 5)), (rot.quaternion_to_matrix, (4, 3)), (rot.matrix_to_quaternion, (3,)),
    (rot.axis_angle_to_quaternion, (2, 45)), (rot.quaternion_to_axis_angle, (2, 3)),
])
def test_bad_shapes_raise_value_error(fn, shape):
    with pytest.raises(ValueError, match="must have shape"):
        fn(torch.zeros(shape, dtype=F64))


def test_non_float_input_raises_type_error():
    with pytest.raises(TypeError, match="floating"):
        rot.axis_angle_to_quaternion(torch.zeros(2, 3, dtype=torch.long))
