"""Rotation representations: axis-angle, matrices, quaternions and the 6D representation.

Pure torch functions on batched shapes (..., k), float64-capable and differentiable. Conventions:

- axis-angle: (..., 3) vector r = angle * unit axis, angle in [0, pi] on output.
- matrix: (..., 3, 3) rotation acting on column vectors (x' = R x).
- quaternion: (..., 4) in (w, x, y, z) order, unit norm; outputs have w >= 0 (the hemisphere that
  gives the shortest rotation, angle <= pi).
- 6D (Zhou et al. 2019, "On the Continuity of Rotation Representations in Neural Networks"):
  (..., 6) = concat(first column of R, second column of R); decoded by Gram-Schmidt.

Accuracy (float64, tested in ``tests/motion/test_rotations.py``): matrix -> axis-angle goes through
the quaternion (Shepperd's branch on the largest of trace/diagonal), so the result is accurate to
~1e-15 absolute at angles near 0 and near pi alike, and its gradient is finite at angle 0 (series
below |v|^2 = 1e-6). At exactly angle pi, r and -r are the same rotation: the sign is arbitrary there
(the inverse map is discontinuous, not ill-conditioned in value).
"""
from __future__ import annotations

import torch


__all__ = [
    "rodrigues", "axis_angle_to_matrix", "matrix_to_axis_angle", "matrix_to_6d", "sixd_to_matrix",
    "quaternion_to_matrix", "matrix_to_quaternion", "axis_angle_to_quaternion", "quaternion_to_axis_angle",
    "quaternion_multiply", "quaternion_conjugate", "quaternion_slerp", "slerp_axis_angle",
]


def rodrigues(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3).

    Uses R = I + a K + b K^2 with a = sin(t)/t and b = (1 - cos t)/t^2, K = [r]_x, switching to
    their Taylor series below t = 1e-3 so the value and the gradient are exact at t = 0. Accurate
    up to and beyond t = pi (the map itself has no singularity there).
    """
    t2 = (rotvec * rotvec).sum(-1, keepdim=True)
    small = t2 < 1e-6
    t2s = torch.where(small, torch.ones_like(t2), t2)
    ts = t2s.sqrt()
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(ts) / ts)
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - torch.cos(ts)) / t2s)
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


def _check(x: torch.Tensor, shape: tuple, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor")
    if x.dim() < len(shape) or tuple(x.shape[-len(shape):]) != shape:
        want = "(..., " + ", ".join(map(str, shape)) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}; reshape the trailing dims "
                         f"(e.g. hand_pose (T, 45) -> (T, 15, 3))")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}; call .double() or .float()")


# -- axis-angle <-> matrix ----------------------------------------------------------------------
def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3). Same function as :func:`rodrigues`."""
    _check(rotvec, (3,), "rotvec")
    return rodrigues(rotvec)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3) with angle in [0, pi].

    Goes through the quaternion: accurate near 0 and near pi, gradient finite at 0.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


# -- quaternions --------------------------------------------------------------------------------
def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions (..., 4) (w, x, y, z), normalised first -> rotation matrices (..., 3, 3)."""
    _check(quat, (4,), "quat")
    q = quat / quat.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1)
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) (w, x, y, z) with w >= 0.

    Shepperd's method: of the four ways to read q off R, use the one whose pivot component
    (w, x, y or z) is largest, so the division is always by a number >= 1/2. The four pivot
    radicands sum to 4, so the chosen one is >= 1; the others are clamped at 0.1 only to keep
    their (discarded) branches free of NaN gradients.
    """
    _check(matrix, (3, 3), "matrix")
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    rad = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    p = 0.5 * rad.clamp_min(0.1).sqrt()              # (..., 4): pivot value of each branch
    d = 4 * p
    pw, px, py, pz = p.unbind(-1)
    dw, dx, dy, dz = d.unbind(-1)
    cand = torch.stack([
        torch.stack([pw, (m21 - m12) / dw, (m02 - m20) / dw, (m10 - m01) / dw], -1),
        torch.stack([(m21 - m12) / dx, px, (m01 + m10) / dx, (m02 + m20) / dx], -1),
        torch.stack([(m02 - m20) / dy, (m01 + m10) / dy, py, (m12 + m21) / dy], -1),
        torch.stack([(m10 - m01) / dz, (m02 + m20) / dz, (m12 + m21) / dz, pz], -1),
    ], -2)                                            # (..., 4 branches, 4)
    best = rad.argmax(-1)[..., None, None].expand(*rad.shape[:-1], 1, 4)
    q = cand.gather(-2, best)[..., 0, :]
    q = torch.where(q[..., :1] < 0, -q, q)
    return q / q.norm(dim=-1, keepdim=True)


def axis_angle_to_quaternion(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> unit quaternions (..., 4) (w, x, y, z); series below angle^2 = 1e-6."""
    _check(rotvec, (3,), "rotvec")
    t2 = (rotvec * rotvec).sum(-1, keepdim=True)
    small = t2 < 1e-6
    ts = torch.where(small, torch.ones_like(t2), t2).sqrt()
    # sin(t/2)/t = 1/2 - t^2/48 + t^4/3840 - ...; cos(t/2) = 1 - t^2/8 + t^4/384 - ...
    s = torch.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, torch.sin(ts / 2) / ts)
    c = torch.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, torch.cos(ts / 2))
    return torch.cat([c, s * rotvec], -1)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions (..., 4) (w, x, y, z) -> axis-angle (..., 3), angle in [0, pi].

    r = v * 2 atan2(|v|, w) / |v| after flipping q to w >= 0; below |v|^2 = 1e-6 the factor uses
    its series 2/w (1 - n^2/(3 w^2) + n^4/(5 w^4)) so value and gradient are exact at 0.
    """
    _check(quat, (4,), "quat")
    q = quat / quat.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    n2 = (v * v).sum(-1, keepdim=True)
    small = n2 < 1e-6
    ns = torch.where(small, torch.ones_like(n2), n2).sqrt()
    # w >= sqrt(1 - 1e-6) on the small branch, so the series in n^2 / w^2 converges fast.
    ws = torch.where(small, w, torch.ones_like(w))
    r = n2 / (ws * ws)
    factor = torch.where(small, 2.0 / ws * (1.0 - r / 3.0 + r * r / 5.0), 2.0 * torch.atan2(ns, w) / ns)
    return factor * v


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b of (..., 4) quaternions (w, x, y, z); as matrices R(a) @ R(b)."""
    _check(a, (4,), "a")
    _check(b, (4,), "b")
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


def quaternion_conjugate(quat: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) -> (w, -x, -y, -z): the inverse rotation of a unit quaternion."""
    _check(quat, (4,), "quat")
    return quat * quat.new_tensor([1.0, -1.0, -1.0, -1.0])


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t) -> torch.Tensor:
    """Spherical linear interpolation along the shortest arc.

    q0, q1: (..., 4) unit quaternions (w, x, y, z); t: float or tensor broadcastable to (...,)
    (0 -> q0, 1 -> q1). Computed as q0 * exp(t log(q0^-1 q1)), where the log takes the w >= 0
    representative (the shortest path, angle <= pi), so it stays accurate for tiny steps.
    Returns (..., 4) with w >= 0.
    """
    _check(q0, (4,), "q0")
    _check(q1, (4,), "q1")
    rel = quaternion_to_axis_angle(quaternion_multiply(quaternion_conjugate(q0), q1))   # (..., 3)
    t = torch.as_tensor(t, dtype=rel.dtype, device=rel.device)
    out = quaternion_multiply(q0, axis_angle_to_quaternion(t[..., None] * rel))
    return torch.where(out[..., :1] < 0, -out, out)


def slerp_axis_angle(r0: torch.Tensor, r1: torch.Tensor, t) -> torch.Tensor:
    """Slerp between axis-angle rotations (..., 3) along the shortest arc -> axis-angle (..., 3).

    The output angle lies in [0, pi]; compare results as matrices, since r and the equivalent
    r (1 - 2 pi / |r|) describe the same rotation.
    """
    _check(r0, (3,), "r0")
    _check(r1, (3,), "r1")
    q = quaternion_slerp(axis_angle_to_quaternion(r0), axis_angle_to_quaternion(r1), t)
    return quaternion_to_axis_angle(q)


# -- 6D -----------------------------------------------------------------------------------------
def matrix_to_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> (..., 6) = concat(R[:, 0], R[:, 1]) (first two columns)."""
    _check(matrix, (3, 3), "matrix")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], -1)


def sixd_to_matrix(sixd: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(..., 6) = (a1, a2) -> rotation matrices (..., 3, 3) by Gram-Schmidt.

    b1 = a1 / |a1|, b2 = normalise(a2 - (b1 . a2) b1), b3 = b1 x b2; R = [b1 b2 b3] (columns).
    Any input with a1 and a2 not parallel gives a proper rotation; ``eps`` only guards the division
    for degenerate input (which has no meaningful rotation).
    """
    _check(sixd, (6,), "sixd")
    a1, a2 = sixd[..., :3], sixd[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)
