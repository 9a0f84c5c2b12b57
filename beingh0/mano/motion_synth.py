"""Plausible synthetic hand motion for demos and tests: reach, power grasp, rotate, release.

Not data: a hand-written trajectory in MANO parameters (right hand, rest frame of the embedded
model / MANO: fingers along -x, palm towards -y, thumb side +z; finger flexion is +z). Finger
joints follow one grasp-closure signal with fixed synergy gains (MCP < PIP, DIP ~ 0.7 PIP, the
ulnar fingers slightly ahead, spread closing as the hand closes); the thumb opposes (rotation
about the finger axis) and flexes. Timing uses minimum-jerk profiles at 15 FPS.
Left hands: ``beingh0.mano.model.mirror_pose`` / ``mirror_points`` of the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FPS = 15.0


def _min_jerk(s: np.ndarray) -> np.ndarray:
    """0 -> 1 over s in [0, 1], zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def _ramp(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return _min_jerk((t - t0) / max(t1 - t0, 1e-9))


def _axis_angle_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle of R(a) @ R(b), row-wise (T, 3)."""
    from scipy.spatial.transform import Rotation

    return (Rotation.from_rotvec(a) * Rotation.from_rotvec(b)).as_rotvec()


@dataclass
class SynthMotion:
    """MANO parameters of a synthetic right-hand sequence (float64 numpy) and its grasp signal."""

    betas: np.ndarray          # (10,)
    global_orient: np.ndarray  # (T, 3)
    hand_pose: np.ndarray      # (T, 45)
    trans: np.ndarray          # (T, 3) wrist position, OpenCV camera frame (x right, y down, z forward)
    grasp: np.ndarray          # (T,) closure 0 (open) .. 1 (closed)


#: Per-finger flexion gains (MCP, PIP, DIP) at full closure, MANO order index, middle, pinky, ring.
_FLEX = {"index": (1.05, 1.35, 0.9), "middle": (1.15, 1.45, 0.95), "pinky": (1.3, 1.45, 1.0), "ring": (1.25, 1.5, 1.0)}
#: Abduction (about +y, towards the thumb) of the open hand, relaxed to ~0 when closed.
_SPREAD = {"index": 0.16, "middle": 0.03, "pinky": -0.28, "ring": -0.12}
#: Ulnar fingers close slightly earlier (fraction of the closure phase).
_LEAD = {"index": 0.0, "middle": 0.04, "pinky": 0.12, "ring": 0.08}


def grasp_motion(frames: int = 90, seed: int = 0, fps: float = FPS, betas_std: float = 0.8) -> SynthMotion:
    """Reach-and-grasp: the open hand approaches (wrist forward/down), closes into a power grasp
    with finger synergies, lifts and turns the wrist (pronation ~40 deg), then opens a little.
    ``seed`` fixes the betas and small per-run variations of the gains and path."""
    if frames < 2:
        raise ValueError(f"frames={frames} must be >= 2")
    rng = np.random.default_rng(seed)
    T = frames
    t = np.arange(T) / fps
    dur = T / fps
    u = t / max(dur, 1e-9)                          # 0 .. 1 over the sequence
    reach, close = _ramp(u, 0.0, 0.35), _ramp(u, 0.25, 0.6)
    lift, turn = _ramp(u, 0.55, 0.85), _ramp(u, 0.6, 0.95)
    release = _ramp(u, 0.88, 1.0)
    g = np.clip(close * (1 - 0.45 * release), 0, 1)

    # wrist path in the camera frame (metres): from the lower right towards the centre, then up
    start = np.array([0.12, 0.10, 0.55]) + rng.normal(0, 0.01, 3)
    goal = np.array([0.02, 0.04, 0.42]) + rng.normal(0, 0.01, 3)
    trans = start + reach[:, None] * (goal - start) + lift[:, None] * np.array([0.0, -0.08, 0.02])
    trans = trans + 0.004 * np.sin(2 * np.pi * 0.7 * t)[:, None] * np.array([1.0, 0.5, 0.0])

    # orientation: fingers pointing up-left-forward, back of the hand towards the camera
    base = np.array([0.35, -0.9, 1.2]) + rng.normal(0, 0.05, 3)
    approach = np.stack([0.25 * (1 - reach), 0.0 * reach, -0.2 * reach], 1)         # wrist settles
    pronate = np.stack([-0.7 * turn, 0.1 * turn, 0.0 * turn], 1)                     # about the finger axis (x)
    go = _axis_angle_mul(np.tile(base, (T, 1)), _axis_angle_mul(approach, pronate))

    pose = np.zeros((T, 15, 3))
    fingers = ("index", "middle", "pinky", "ring")
    gain = 1.0 + rng.normal(0, 0.05, (4, 3))
    for fi, name in enumerate(fingers):
        gf = np.clip(close * (1 + _LEAD[name]) - _LEAD[name] * 0.5, 0, 1) * (1 - 0.45 * release)
        for j in range(3):
            pose[:, 3 * fi + j, 2] = _FLEX[name][j] * gain[fi, j] * gf + (0.1 if j == 0 else 0.05)
        pose[:, 3 * fi, 1] = _SPREAD[name] * (1 - 0.8 * gf)
        pose[:, 3 * fi + 1, 0] = 0.05 * gf * (1 if name in ("pinky", "ring") else -1)
    # thumb: a little opposition (about +x, under the palm), then all three joints curl about one
    # axis that carries the tip palmar and across the fingers (ends over the index/middle middle
    # phalanges at full closure; chosen by checking the tip position of the embedded hand)
    axis = np.array([0.48, -0.84, 0.25])
    pose[:, 12] = g[:, None] * (np.array([0.2, 0.0, 0.0]) + 0.3 * axis)
    pose[:, 13] = g[:, None] * 0.6 * axis
    pose[:, 14] = g[:, None] * 0.6 * axis
    betas = rng.normal(0, betas_std, 10)
    return SynthMotion(betas=betas, global_orient=go, hand_pose=pose.reshape(T, 45), trans=trans, grasp=g)
