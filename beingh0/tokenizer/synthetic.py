"""Varied synthetic hand motion for tokenizer training, tests and the quickstart (NOT data).

``beingh0.mano.motion_synth.grasp_motion`` plays one reach-grasp-lift script; a tokenizer needs
variety. ``random_clip`` strings together key poses at random times (0.3-1.8 s apart, so speeds
vary ~6x): the wrist wanders through a 50 x 40 x 50 cm workspace in front of the camera (OpenCV
frame, 25-75 cm deep), turns by up to ~70 deg between keys about random axes, and the fingers move
between grasp shapes (power, pinch, point, tripod, hook, spread-open) with random closure,
per-joint gain and spread noise. Segments use minimum-jerk timing; a small tremor is added.
Right-hand conventions of the embedded model (finger flexion about +z, abduction about +y;
see ``motion_synth``); ``side="left"`` mirrors the result. A proper synthetic UniHand source
replaces this later.
"""
from __future__ import annotations

import numpy as np
import torch

from ..motion import slerp_axis_angle
from .data import MotionClip

__all__ = ["random_clip", "random_clips", "GRASPS"]

#: grasp shape -> closure of (index, middle, pinky, ring, thumb) at full grasp
GRASPS = {
    "power": (1.0, 1.0, 1.0, 1.0, 1.0),
    "pinch": (0.75, 0.2, 0.1, 0.15, 0.9),
    "point": (0.05, 1.0, 1.0, 1.0, 0.8),
    "tripod": (0.7, 0.7, 0.3, 0.3, 0.9),
    "hook": (0.8, 0.8, 0.8, 0.8, 0.1),
    "open": (0.0, 0.0, 0.0, 0.0, 0.0),
}
_FLEX = np.array([1.2, 1.5, 1.0])                 # MCP, PIP, DIP flexion (rad) at closure 1
_SPREAD = np.array([0.18, 0.03, -0.3, -0.13])      # index, middle, pinky, ring abduction (open hand)
_THUMB_AXIS = np.array([0.48, -0.84, 0.25]) / np.linalg.norm([0.48, -0.84, 0.25])


def _min_jerk(s):
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def _key_pose(rng) -> np.ndarray:
    """One hand_pose key (15, 3): a random grasp shape at a random closure, with noise."""
    kind = list(GRASPS)[rng.integers(len(GRASPS))]
    c = rng.uniform(0.2, 1.0) if kind != "open" else 0.0
    close = np.clip(np.array(GRASPS[kind]) * c + rng.normal(0, 0.05, 5), 0.0, 1.0)
    pose = np.zeros((15, 3))
    spread = rng.uniform(0.3, 1.6)
    for f in range(4):
        gains = _FLEX * rng.uniform(0.85, 1.15, 3)
        pose[3 * f:3 * f + 3, 2] = gains * close[f] + rng.uniform(-0.05, 0.12, 3)
        if kind == "hook":
            pose[3 * f, 2] *= 0.2
        pose[3 * f, 1] = _SPREAD[f] * spread * (1 - 0.8 * close[f])
        pose[3 * f:3 * f + 3, 0] = rng.normal(0, 0.04, 3)
    g = close[4]
    pose[12] = g * (np.array([rng.uniform(0.0, 0.4), 0.0, 0.0]) + 0.3 * _THUMB_AXIS) + rng.normal(0, 0.05, 3)
    pose[13] = g * rng.uniform(0.4, 0.8) * _THUMB_AXIS + rng.normal(0, 0.03, 3)
    pose[14] = g * rng.uniform(0.4, 0.8) * _THUMB_AXIS + rng.normal(0, 0.03, 3)
    return pose


def _random_rotvec(rng, max_angle):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return axis * rng.uniform(0, max_angle)


def random_clip(rng: np.random.Generator, seconds: float = 8.0, fps: float = 15.0, side: str = "right",
                name: str = "") -> MotionClip:
    """One varied clip of ``seconds`` at ``fps`` (see the module docstring)."""
    from scipy.spatial.transform import Rotation

    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    T = int(round(seconds * fps))
    if T < 2:
        raise ValueError(f"seconds * fps = {seconds * fps} gives fewer than 2 frames")
    t = np.arange(T) / fps
    keys = [0.0]
    while keys[-1] < t[-1]:
        keys.append(keys[-1] + rng.uniform(0.3, 1.8))
    K = len(keys)
    lo, hi = np.array([-0.25, -0.2, 0.25]), np.array([0.25, 0.2, 0.75])
    pos = [rng.uniform(lo, hi)]
    base = Rotation.random(random_state=rng)
    rots = [base]
    for _ in range(K - 1):
        pos.append(np.clip(pos[-1] + rng.normal(0, 0.08, 3), lo, hi))
        rots.append(Rotation.from_rotvec(_random_rotvec(rng, 1.2)) * rots[-1])
    poses = [_key_pose(rng) for _ in range(K)]
    pos, rv = np.array(pos), np.array([r.as_rotvec() for r in rots])
    poses = np.array(poses)

    seg = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, K - 2)
    k0, k1 = np.array(keys)[seg], np.array(keys)[seg + 1]
    s = _min_jerk((t - k0) / (k1 - k0))
    trans = pos[seg] + s[:, None] * (pos[seg + 1] - pos[seg])
    go = slerp_axis_angle(torch.as_tensor(rv[seg]), torch.as_tensor(rv[seg + 1]), torch.as_tensor(s)).numpy()
    hp = poses[seg] + s[:, None, None] * (poses[seg + 1] - poses[seg])
    # tremor: two slow sines per axis, ~1.5 mm and ~0.01 rad
    ph = rng.uniform(0, 2 * np.pi, (2, 3))
    fr = rng.uniform(1.0, 4.0, (2, 3))
    trem = np.sin(2 * np.pi * fr[0] * t[:, None] + ph[0])
    trans = trans + 0.0015 * trem
    go = (Rotation.from_rotvec(0.01 * np.sin(2 * np.pi * fr[1] * t[:, None] + ph[1])) * Rotation.from_rotvec(go)).as_rotvec()
    betas = rng.normal(0, 0.6, 10)
    go_t, hp_t, tr_t = (torch.as_tensor(a, dtype=torch.float64) for a in (go, hp.reshape(T, 45), trans))
    if side == "left":
        from ..mano.model import mirror_points, mirror_pose

        go_t, hp_t, tr_t = mirror_pose(go_t), mirror_pose(hp_t), mirror_points(tr_t)
    return MotionClip(global_orient=go_t, hand_pose=hp_t, betas=betas, trans=tr_t, fps=fps, side=side, name=name)


def random_clips(n: int, seed: int = 0, seconds=(4.0, 12.0), fps: float = 15.0, left_fraction: float = 0.0) -> list:
    """``n`` clips with lengths uniform in ``seconds`` (s), reproducible from ``seed``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        side = "left" if rng.random() < left_fraction else "right"
        out.append(random_clip(rng, float(rng.uniform(*seconds)), fps, side, name=f"synth-{seed}-{i}"))
    return out
