"""Retarget a MANO hand to the Inspire dexterous hand (6 actuated joints per hand).

The Inspire hand (RH56 series, as on the Unitree G1) has one motor per finger (the proximal joint;
the intermediate phalanx follows through a linkage) and two for the thumb (rotation across the palm,
"yaw", and bend, "pitch"). Unitree's teleoperation stack and the datasets it records (e.g. the real
G1 episode in ``shared/data/g1_inspire_lerobot_v21``) store per hand, in this order::

    Pinky, Ring, Middle, Index, ThumbBend, ThumbRotation

each **normalised to [0, 1] with 1 = fully open and 0 = fully closed**: ``v = (hi - q) / (hi - lo)``
with the joint angle ``q`` in radians and the ranges (``INSPIRE_RANGES``) fingers [0, 1.7], thumb
bend [0, 0.5], thumb rotation [-0.1, 1.3] (unitree xr_teleoperate's ``normalize``). We write the
same units, so a policy trained on our synthetic demonstrations speaks the real hand's language.

The mapping (:func:`inspire_from_keypoints`) is geometric on the 21 hand keypoints (wrist, then
thumb/index/middle/ring/pinky from base to tip), so it holds for any MANO-compatible model and any
global pose:

* hand frame: long axis ``u`` = wrist -> middle MCP; radial axis ``l`` = pinky MCP -> index MCP made
  orthogonal to ``u``; palmar normal ``n`` = ``l x u`` (right hand) or ``u x l`` (left hand).
* finger curl ``c`` = sum of the signed bend angles at MCP, PIP and DIP between consecutive bones
  (metacarpal wrist -> MCP, proximal, middle, distal), each about the finger's flexion axis
  ``a = b0 x n`` (flexion toward the palm positive). The Inspire finger's tip direction turns by
  ``(1 + 1.064) q`` for a proximal angle ``q`` (its intermediate joint follows 1.064 q - 0.045 in
  the Inspire URDF), so matching tip directions gives ``q = c / 2.064``.
* thumb bend: the unsigned bend angles at the thumb MCP and IP summed (``c_t``); the Inspire thumb's
  distal joints follow its bend joint with multipliers 1.6 and 2.4, so its tip turns by ``5 q``:
  ``q = c_t / 5``.
* thumb rotation: the azimuth of the thumb metacarpal (CMC -> MCP) about the long axis, from the
  radial direction (thumb beside the palm, 0) toward the palmar normal (thumb across the palm):
  ``q = atan2(w . n, w . l)`` with ``w`` the metacarpal direction made orthogonal to ``u``.

Every ``q`` is clipped to the Inspire's range before normalising (a human hand reaches past the
robot's limits; the robot cannot). Float64 throughout.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import UserValueError

__all__ = ["INSPIRE_JOINTS", "INSPIRE_RANGES", "inspire_from_keypoints", "inspire_from_mano", "inspire_normalize",
           "inspire_denormalize"]

#: Inspire joint names per hand, in the order Unitree's G1 datasets store them.
INSPIRE_JOINTS = ("Pinky", "Ring", "Middle", "Index", "ThumbBend", "ThumbRotation")
#: (lo, hi) joint angle ranges in radians, same order (hi = closed for the fingers and bend).
INSPIRE_RANGES = np.array([[0.0, 1.7], [0.0, 1.7], [0.0, 1.7], [0.0, 1.7], [0.0, 0.5], [-0.1, 1.3]], np.float64)
#: keypoints (MCP, PIP, DIP, tip) of the fingers in INSPIRE_JOINTS order (21-keypoint layout)
FINGER_KEYPOINTS = ((17, 18, 19, 20), (13, 14, 15, 16), (9, 10, 11, 12), (5, 6, 7, 8))
THUMB_KEYPOINTS = (1, 2, 3, 4)
#: tip-direction turn per radian of the actuated joint (1 + linkage multipliers)
FINGER_GAIN = 1.0 + 1.06399
THUMB_BEND_GAIN = 1.0 + 1.6 + 2.4


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _dot(a, b):
    return (a * b).sum(-1)


def inspire_normalize(q: np.ndarray) -> np.ndarray:
    """Joint angles (..., 6) in radians -> Unitree's normalised values (1 open, 0 closed), clipped."""
    q = np.asarray(q, np.float64)
    lo, hi = INSPIRE_RANGES[:, 0], INSPIRE_RANGES[:, 1]
    return (hi - np.clip(q, lo, hi)) / (hi - lo)


def inspire_denormalize(v: np.ndarray) -> np.ndarray:
    """Normalised values (..., 6) -> joint angles in radians."""
    v = np.asarray(v, np.float64)
    lo, hi = INSPIRE_RANGES[:, 0], INSPIRE_RANGES[:, 1]
    return hi - v * (hi - lo)


def inspire_from_keypoints(keypoints, side: str, *, normalized: bool = True) -> np.ndarray:
    """Inspire joint values (..., 6) (``INSPIRE_JOINTS`` order) of hands given as 21 keypoints (..., 21, 3).

    ``normalized=True`` (default): Unitree's [0, 1] (1 open); False: joint angles in radians (clipped
    to ``INSPIRE_RANGES``). See the module docstring for the mapping."""
    if side not in ("left", "right"):
        raise UserValueError(f"side must be 'left' or 'right', got {side!r}")
    k = np.asarray(keypoints, np.float64)
    if k.ndim < 2 or k.shape[-2:] != (21, 3):
        raise UserValueError(f"keypoints must be (..., 21, 3), got {k.shape}")
    u = _unit(k[..., 9, :] - k[..., 0, :])
    across = k[..., 5, :] - k[..., 17, :]
    l = _unit(across - _dot(across, u)[..., None] * u)
    n = np.cross(l, u) if side == "right" else np.cross(u, l)
    q = np.empty(k.shape[:-2] + (6,), np.float64)
    for j, (m, p, d, t) in enumerate(FINGER_KEYPOINTS):
        bones = [k[..., m, :] - k[..., 0, :], k[..., p, :] - k[..., m, :], k[..., d, :] - k[..., p, :],
                 k[..., t, :] - k[..., d, :]]
        a = _unit(np.cross(bones[0], n))
        curl = 0.0
        for b0, b1 in zip(bones[:-1], bones[1:]):
            curl = curl + np.arctan2(_dot(np.cross(b0, b1), a), _dot(b0, b1))
        q[..., j] = curl / FINGER_GAIN
    c1, c2, c3, c4 = THUMB_KEYPOINTS
    tb = [k[..., c2, :] - k[..., c1, :], k[..., c3, :] - k[..., c2, :], k[..., c4, :] - k[..., c3, :]]
    bend = 0.0
    for b0, b1 in zip(tb[:-1], tb[1:]):
        bend = bend + np.arctan2(np.linalg.norm(np.cross(b0, b1), axis=-1), _dot(b0, b1))
    q[..., 4] = bend / THUMB_BEND_GAIN
    w = tb[0] - _dot(tb[0], u)[..., None] * u
    q[..., 5] = np.arctan2(_dot(w, n), _dot(w, l))
    q = np.clip(q, INSPIRE_RANGES[:, 0], INSPIRE_RANGES[:, 1])
    return inspire_normalize(q) if normalized else q


def inspire_from_mano(hand_pose, side: str, betas=None, *, normalized: bool = True, model=None) -> np.ndarray:
    """Inspire joint values (T, 6) of MANO poses ``hand_pose`` (T, 45) axis-angle (flat_hand_mean)
    of hand ``side``, shape ``betas`` (10,) (default zeros); ``model``: a hand model (default:
    :func:`beingh0.mano.hand_model` of ``side``). The global orientation does not matter (the
    mapping works in the hand's own frame). Computed in float64."""
    import torch

    from ..mano import hand_model

    hp = np.asarray(hand_pose, np.float64)
    if hp.ndim != 2 or hp.shape[1] != 45:
        raise UserValueError(f"hand_pose must be (T, 45) axis-angle, got {hp.shape}")
    m = model if model is not None else hand_model(side)
    b = None if betas is None else torch.as_tensor(np.asarray(betas, np.float64).reshape(1, -1))
    with torch.no_grad():
        kp = m.keypoints(b if b is not None else torch.zeros(1, 10, dtype=torch.float64),
                         torch.zeros(len(hp), 3, dtype=torch.float64), torch.as_tensor(hp),
                         torch.zeros(len(hp), 3, dtype=torch.float64)).numpy()
    return inspire_from_keypoints(kp, side, normalized=normalized)
