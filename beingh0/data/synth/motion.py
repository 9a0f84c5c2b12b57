"""Procedural bimanual manipulation: hands that reach, grasp, move, place, pour, press and open.

Each hand follows a *plan*: a list of keyframes (wrist position and orientation in the world frame
of :mod:`.scene`, 15 finger-joint rotations, a phase label), joined by minimum-jerk segments
(position lerp with an optional lift arc, rotation slerp, finger lerp), so velocity and
acceleration vanish at every keyframe. Tasks are sequences of phases:

``reach`` (pre-shape the fingers on the way), ``grasp`` (close: synergies blended per object,
each finger stopping at contact), ``lift``, ``move``, ``place``, ``release``, ``retreat``; and
``tilt``/``pour``/``untilt`` (pouring into a bowl), ``press`` (pointing index on a button),
``twist`` (unscrewing a jar lid), ``hold`` (steadying an object with the other hand), ``rest``
(an idle hand lying on the table, breathing slightly).

Grasp synergies (right-hand MANO conventions: per joint x twist, y abduction, z flexion; the
thumb curls about a fixed axis as in :mod:`beingh0.mano.motion_synth`): *power* (all fingers wrap),
*precision* (fingertips of thumb, index and middle), *pinch* (thumb and index, the other fingers
tucked) and *point* (index extended). Weights depend on the object's size. Closure is contact
driven: the closed pose of every finger is the first closure level at which one of its keypoints
or bone midpoints comes within a finger radius of the object's contact shape (model keypoints,
evaluated in one batch). Poses are clipped to :func:`beingh0.mano.fit.joint_limits`. Left hands
use the left model: wrist frames are built for each side's rest frame and the finger poses are
mirrored with :func:`beingh0.mano.model.mirror_pose`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from ...mano.fit import joint_limits
from .scene import SceneObject, pose_matrix

UP = np.array([0.0, 1.0, 0.0])
THUMB_AXIS = np.array([0.48, -0.84, 0.25])
FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO hand_pose order
#: 21-keypoint ids of each MANO finger (base .. tip), Being-H0 order.
FINGER_KP = {"index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "pinky": (17, 18, 19, 20), "ring": (13, 14, 15, 16), "thumb": (1, 2, 3, 4)}
SPREAD = {"index": 0.16, "middle": 0.03, "pinky": -0.26, "ring": -0.11}
FINGER_RADIUS = 0.0085
MAX_SPEED = 0.4  # m/s, mean over a segment (min-jerk peaks at 1.875x)
MAX_ANGULAR_SPEED = 2.5  # rad/s


def min_jerk(s):
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def _n(v):
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


def hand_rotation(side: str, fingers, palm) -> np.ndarray:
    """World rotation of a hand whose fingers point along ``fingers`` and palm faces ``palm``.

    Rest frames: the right hand's fingers point along -x, the left hand's along +x; both palms face
    -y; the thumb side is then ``fingers x palm`` for a right hand and ``palm x fingers`` for a left
    one, which is anatomically right for both."""
    f = _n(fingers)
    p = _n(np.asarray(palm, float) - np.dot(palm, f) * f)
    x = -f if side == "right" else f
    y = -p
    return np.stack([x, y, np.cross(x, y)], 1)


# ------------------------------------------------------------------------------------------------
# synergies (right-hand conventions, (15, 3))


def _fingers(mcp, pip, dip, spread=0.0, twist=0.0) -> np.ndarray:
    P = np.zeros((15, 3))
    for i, f in enumerate(FINGERS[:4]):
        m, p, d = (x[i] if np.ndim(x) else x for x in (mcp, pip, dip))
        P[3 * i] = (twist * (1 if f in ("pinky", "ring") else -1), SPREAD[f] * spread, m)
        P[3 * i + 1, 2], P[3 * i + 2, 2] = p, d
    return P


def _thumb(P: np.ndarray, opp: float, c1: float, c2: float, c3: float) -> np.ndarray:
    P = P.copy()
    P[12] = np.array([opp, 0.0, 0.0]) + c1 * THUMB_AXIS
    P[13] = c2 * THUMB_AXIS
    P[14] = c3 * THUMB_AXIS
    return P


SYNERGIES = {
    "open": _thumb(_fingers(-0.05, 0.05, 0.03, spread=1.0), -0.05, -0.1, 0.0, 0.05),
    "relaxed": _thumb(_fingers((0.3, 0.38, 0.5, 0.45), (0.35, 0.4, 0.45, 0.45), 0.2, spread=0.6), 0.1, 0.15, 0.15, 0.2),
    "power": _thumb(_fingers((1.05, 1.15, 1.3, 1.25), (1.35, 1.45, 1.45, 1.5), (0.9, 0.95, 1.0, 1.0), spread=0.15, twist=0.05), 0.2, 0.3, 0.6, 0.6),
    "precision": _thumb(_fingers((0.95, 0.95, 0.95, 0.9), (0.7, 0.75, 1.1, 1.0), (0.35, 0.4, 0.7, 0.6), spread=0.4), 0.4, 0.35, 0.35, 0.3),
    "pinch": _thumb(_fingers((0.8, 1.2, 1.35, 1.3), (0.75, 1.4, 1.45, 1.45), (0.45, 0.9, 1.0, 1.0), spread=0.3), 0.4, 0.32, 0.35, 0.35),
    "point": _thumb(_fingers((0.08, 1.25, 1.35, 1.3), (0.1, 1.5, 1.5, 1.5), (0.05, 1.0, 1.0, 1.0), spread=0.2), 0.25, 0.3, 0.5, 0.45),
}
_LIM = joint_limits("right")


def clip_pose(P: np.ndarray) -> np.ndarray:
    return np.clip(P, _LIM[..., 0], _LIM[..., 1])


def blend(weights: dict[str, float]) -> np.ndarray:
    tot = sum(weights.values())
    return sum(w / tot * SYNERGIES[k] for k, w in weights.items())


# ------------------------------------------------------------------------------------------------
# hand kinematics helper


class HandKinematics:
    """Model keypoints of one hand (fixed betas) in its rest frame, batched over poses."""

    def __init__(self, model, betas: np.ndarray):
        self.model, self.side = model, model.side
        self.betas = torch.as_tensor(betas, dtype=torch.float64)[None]

    def local_keypoints(self, poses_right: np.ndarray) -> np.ndarray:
        """(K, 15, 3) right-convention finger poses -> (K, 21, 3) keypoints, wrist at the origin,
        identity global orientation (the side's rest frame)."""
        P = torch.as_tensor(poses_right.reshape(len(poses_right), 45), dtype=torch.float64)
        if self.side == "left":
            from ...mano.model import mirror_pose

            P = mirror_pose(P)
        K = len(P)
        z = torch.zeros(K, 3, dtype=torch.float64)
        return self.model.keypoints(self.betas.double(), z, P, z).numpy()

    def palm_point(self) -> np.ndarray:
        """Centre of the palm surface (rest frame, flat hand): where a power grasp touches."""
        k = self.local_keypoints(SYNERGIES["open"][None] * 0)[0]
        c = 0.35 * k[0] + 0.65 * k[[5, 9, 13, 17]].mean(0)
        return c + np.array([0.0, -0.024, 0.0])


def contact_closure(kin: HandKinematics, open_pose: np.ndarray, closed_pose: np.ndarray, R: np.ndarray,
                    wrist: np.ndarray, obj: SceneObject, obj_pose: np.ndarray, levels: int = 24) -> np.ndarray:
    """Per-finger closure: each finger moves from ``open_pose`` towards ``closed_pose`` until it
    touches the object (or closes fully). Returns the (15, 3) contact pose."""
    g = np.linspace(0, 1, levels)
    poses = open_pose[None] + g[:, None, None] * (closed_pose - open_pose)[None]
    kp = kin.local_keypoints(poses)  # (L, 21, 3)
    world = kp @ R.T + wrist
    inv = np.linalg.inv(obj_pose)
    local = world @ inv[:3, :3].T + inv[:3, 3]
    out = open_pose.copy()
    for fi, f in enumerate(FINGERS):
        ids = FINGER_KP[f]
        pts = local[:, ids[1:]]  # joints after the base, and the tip
        mids = 0.5 * (local[:, ids[:-1]] + local[:, ids[1:]])
        d = obj.sdf(np.concatenate([pts, mids], 1)).min(1)
        hit = np.flatnonzero(d <= FINGER_RADIUS)
        gf = 1.0 if hit.size == 0 else g[max(hit[0] - 1, 0)] if hit[0] > 0 else 0.0
        rows = slice(3 * fi, 3 * fi + 3)
        out[rows] = open_pose[rows] + gf * (closed_pose[rows] - open_pose[rows])
    return out


# ------------------------------------------------------------------------------------------------
# plans


@dataclass
class Key:
    t: float
    pos: np.ndarray
    rot: np.ndarray  # (3, 3) world
    pose: np.ndarray  # (15, 3) right-hand convention
    phase: str  # the phase that ends at this key
    obj: int | None = None
    arc: float = 0.0  # lift of the path midpoint on the way to this key (metres)


@dataclass
class Phase:
    t0: float
    t1: float
    name: str
    obj: int | None
    hand: str
    extra: dict = field(default_factory=dict)


class HandPlan:
    """Keyframes of one hand, plus when it holds which object."""

    def __init__(self, side: str, pos, rot, pose, t0: float = 0.0):
        self.side = side
        self.keys = [Key(t0, np.asarray(pos, float), np.asarray(rot, float), np.asarray(pose, float), "start")]
        self.attach: list[tuple[float, float, int]] = []  # (t_grab, t_let_go, object index)
        self.phases: list[Phase] = []
        self._holding: tuple[float, int] | None = None

    @property
    def t(self) -> float:
        return self.keys[-1].t

    @property
    def last(self) -> Key:
        return self.keys[-1]

    def add(self, dur: float, phase: str, pos=None, rot=None, pose=None, obj=None, arc=0.0, extra=None, label=True):
        k = self.last
        new = Key(0.0, k.pos if pos is None else np.asarray(pos, float), k.rot if rot is None else np.asarray(rot, float),
                  k.pose if pose is None else np.asarray(pose, float), phase, obj, arc)
        # human-like speed limits: mean wrist speed <= 0.4 m/s, wrist rotation <= 2.5 rad/s
        dist = np.linalg.norm(new.pos - k.pos) + 2 * arc
        ang = np.linalg.norm(Rotation.from_matrix(new.rot @ k.rot.T).as_rotvec())
        dur = max(dur, dist / MAX_SPEED, ang / MAX_ANGULAR_SPEED, 1e-3)
        t1 = new.t = k.t + dur
        self.keys.append(new)
        if label:
            if self.phases and self.phases[-1].name == phase and self.phases[-1].obj == obj and self.phases[-1].t1 == k.t:
                self.phases[-1].t1 = t1
            else:
                self.phases.append(Phase(k.t, t1, phase, obj, self.side, dict(extra or {})))
        return self

    def grab(self, obj: int):
        self._holding = (self.t, obj)

    def let_go(self):
        if self._holding is not None:
            self.attach.append((self._holding[0], self.t, self._holding[1]))
            self._holding = None

    def finish(self, t_end: float, breathe: np.random.Generator | None = None):
        if self.t < t_end:
            self.add(t_end - self.t, "rest" if self.last.phase in ("start", "retreat", "rest") else "hold", label=True)
        if self._holding is not None:
            self.attach.append((self._holding[0], np.inf, self._holding[1]))
            self._holding = None

    def sample(self, times: np.ndarray):
        """Wrist positions (T, 3), rotations (T, 3, 3) and right-convention finger poses (T, 15, 3)."""
        kt = np.array([k.t for k in self.keys])
        T = len(times)
        pos, rot, pose = np.empty((T, 3)), np.empty((T, 3, 3)), np.empty((T, 15, 3))
        seg = np.clip(np.searchsorted(kt, times, side="right") - 1, 0, len(kt) - 2) if len(kt) > 1 else np.zeros(T, int)
        for i in range(T):
            if len(kt) == 1:
                a = b = self.keys[0]
                s = 0.0
            else:
                a, b = self.keys[seg[i]], self.keys[seg[i] + 1]
                s = float(min_jerk((times[i] - a.t) / max(b.t - a.t, 1e-9)))
            pos[i] = a.pos + s * (b.pos - a.pos) + 4 * s * (1 - s) * b.arc * UP
            if np.allclose(a.rot, b.rot):
                rot[i] = a.rot
            else:
                rot[i] = Slerp([0, 1], Rotation.from_matrix(np.stack([a.rot, b.rot])))([s]).as_matrix()[0]
            pose[i] = a.pose + s * (b.pose - a.pose)
        return pos, rot, pose


# ------------------------------------------------------------------------------------------------
# task builders


@dataclass
class World:
    objects: list[SceneObject]
    init: list[np.ndarray]  # initial 4x4 poses
    rest: dict[str, np.ndarray]  # side -> resting wrist position
    kin: dict[str, HandKinematics]
    rng: np.random.Generator
    speed: float

    def dur(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi) / self.speed


def rest_rotation(side: str, rng: np.random.Generator) -> np.ndarray:
    s = 1.0 if side == "right" else -1.0
    yaw = s * rng.uniform(0.15, 0.45)  # fingers turned slightly inwards
    f = np.array([-np.sin(yaw), -0.12, -np.cos(yaw)])
    return hand_rotation(side, f, [0.0, -1.0, 0.0])


def rest_pose(w: "World", side: str):
    """A resting wrist pose near ``w.rest[side]``: fingers relaxed, lifted so no keypoint is below
    the table (finger radius above the plane)."""
    R = rest_rotation(side, w.rng)
    kp = w.kin[side].local_keypoints(SYNERGIES["relaxed"][None])[0] @ R.T
    pos = w.rest[side].copy()
    pos[1] = FINGER_RADIUS + 0.002 - kp[:, 1].min()
    return pos, R


def _world_point(M: np.ndarray, p) -> np.ndarray:
    return M[:3, :3] @ np.asarray(p, float) + M[:3, 3]


def plan_grasp(w: World, plan: HandPlan, oi: int, obj_pose: np.ndarray, style: str | None = None):
    """Reach for object ``oi`` (at ``obj_pose``) and close on it. Returns (wrist, R, contact pose)."""
    rng, obj, kin, side = w.rng, w.objects[oi], w.kin[plan.side], plan.side
    c = obj_pose[:3, 3]
    a = c - plan.last.pos
    a[1] = 0
    a = _n(a) if np.linalg.norm(a) > 1e-6 else np.array([0.0, 0.0, -1.0])
    if style is None:
        style = "side" if obj.shape == "cylinder" and obj.height > 0.07 else "top"
    if style == "side":
        wts = {"power": rng.uniform(0.6, 1.0), "precision": rng.uniform(0.0, 0.4)}
        f = _n(a + np.array([0, -rng.uniform(0.05, 0.25), 0]))
        p = np.cross(UP, f) if side == "right" else np.cross(f, UP)
        p = _n(p + 0.25 * a)
        R = hand_rotation(side, f, p)
        hc = obj.height * (rng.uniform(0.35, 0.45) if obj.kind == "bottle" else rng.uniform(0.4, 0.6))
        contact = c + hc * UP - (obj.radius + 0.004) * _n(p - np.dot(p, UP) * UP)
        wrist = contact - R @ kin.palm_point()
    else:
        small = obj.radius < 0.035
        wts = {"pinch": rng.uniform(0.3, 1.0), "precision": rng.uniform(0.2, 0.8)} if small else \
              {"precision": rng.uniform(0.4, 1.0), "power": rng.uniform(0.1, 0.6)}
        tilt = rng.uniform(0.35, 0.7)
        f = _n(a * np.cos(tilt) - UP * np.sin(tilt))
        R = hand_rotation(side, f, -UP)
        closed = blend(wts)
        kp = kin.local_keypoints((SYNERGIES["open"] + 0.75 * (closed - SYNERGIES["open"]))[None])[0]
        grip = 0.5 * kp[4] + 0.5 * kp[[8, 12]].mean(0)  # between thumb tip and index/middle tips
        target = c + UP * (obj.height * (0.55 if obj.shape != "sphere" else 0.5))
        wrist = target - R @ grip
    closed = clip_pose(blend(wts))
    open_pose = SYNERGIES["open"]
    grasp_pose = contact_closure(kin, open_pose, closed, R, wrist, obj, obj_pose)
    back = -a * rng.uniform(0.05, 0.08) + UP * rng.uniform(0.04, 0.07)
    plan.add(w.dur(0.6, 1.0), "reach", wrist + back, R, open_pose, oi, arc=rng.uniform(0.0, 0.04))
    plan.add(w.dur(0.3, 0.45), "reach", wrist, R, open_pose, oi)
    plan.add(w.dur(0.3, 0.5), "grasp", pose=grasp_pose, obj=oi, extra={"synergy": max(wts, key=wts.get)})
    plan.grab(oi)
    return wrist, R, grasp_pose


def _carry(plan: HandPlan, oi: int, grasp_obj: np.ndarray, wrist_g: np.ndarray, R_g: np.ndarray, new_wrist, new_R=None) -> np.ndarray:
    """Object pose when the wrist goes from (wrist_g, R_g) to (new_wrist, new_R)."""
    new_R = R_g if new_R is None else new_R
    Wg, Wn = np.eye(4), np.eye(4)
    Wg[:3, :3], Wg[:3, 3] = R_g, wrist_g
    Wn[:3, :3], Wn[:3, 3] = new_R, new_wrist
    return Wn @ np.linalg.inv(Wg) @ grasp_obj


def plan_release(w: World, plan: HandPlan, oi: int):
    rng = w.rng
    plan.let_go()
    plan.add(w.dur(0.25, 0.45), "release", pose=SYNERGIES["open"], obj=oi)
    back = plan.last.pos + UP * rng.uniform(0.05, 0.09)
    plan.add(w.dur(0.2, 0.35), "release", pos=back, obj=oi)
    rp, rr = rest_pose(w, plan.side)
    plan.add(w.dur(0.6, 0.9), "retreat", pos=rp, rot=rr, pose=SYNERGIES["relaxed"], arc=0.03)


def task_pick_place(w: World, plan: HandPlan, oi: int, dest: np.ndarray, onto: int | None = None) -> dict:
    rng = w.rng
    O = w.init[oi]
    wrist, R, gp = plan_grasp(w, plan, oi, O)
    lift = rng.uniform(0.06, 0.12)
    plan.add(w.dur(0.35, 0.55), "lift", pos=wrist + UP * lift, obj=oi)
    d = dest - O[:3, 3]
    d[1] = 0
    yaw = rng.normal(0, 0.25)
    Ry = Rotation.from_rotvec(UP * yaw).as_matrix()
    place_wrist = O[:3, 3] + d + Ry @ (wrist - O[:3, 3]) + (UP * (dest[1] - O[1, 3]))
    plan.add(w.dur(0.5, 0.9), "move", pos=place_wrist + UP * lift * 0.6, rot=Ry @ R, obj=oi, arc=rng.uniform(0.0, 0.05),
             extra={"onto": onto})
    plan.add(w.dur(0.35, 0.55), "place", pos=place_wrist + UP * 0.002, obj=oi, extra={"onto": onto})
    plan_release(w, plan, oi)
    return {"task": "pick_place", "obj": oi, "onto": onto}


def task_pour(w: World, plan: HandPlan, oi: int, bowl: int) -> dict:
    rng = w.rng
    O, B = w.init[oi], w.init[bowl]
    wrist, R, gp = plan_grasp(w, plan, oi, O, style="side")
    obj = w.objects[oi]
    lift = rng.uniform(0.10, 0.16) + w.objects[bowl].height
    plan.add(w.dur(0.35, 0.55), "lift", pos=wrist + UP * lift, obj=oi)
    # carry the object so its mouth is beside and above the bowl, then roll about the fingers' axis
    to_bowl = B[:3, 3] - O[:3, 3]
    to_bowl[1] = 0
    dist = np.linalg.norm(to_bowl)
    side_off = _n(to_bowl) * (dist - (w.objects[bowl].radius + obj.radius * 0.5)) if dist > 1e-6 else np.zeros(3)
    pre = wrist + side_off + UP * lift
    plan.add(w.dur(0.5, 0.8), "move", pos=pre, obj=oi, extra={"to": bowl})
    c_obj = _world_point(_carry(plan, oi, O, wrist, R, pre), [0.0, obj.height * 0.5, 0.0])
    f = R[:, 0] * (-1.0 if plan.side == "right" else 1.0)  # finger direction
    best = None
    up_now = _carry(plan, oi, O, wrist, R, pre)[:3, 1]
    amount = rng.uniform(1.6, 2.0)
    for sgn in (1.0, -1.0):
        Rr = Rotation.from_rotvec(f * sgn * amount).as_matrix()
        up_after = Rr @ up_now
        score = np.dot(up_after, _n(B[:3, 3] - c_obj))
        if best is None or score > best[0]:
            best = (score, Rr)
    Rr = best[1]
    tilt_wrist = c_obj + Rr @ (pre - c_obj)
    plan.add(w.dur(0.5, 0.8), "tilt", pos=tilt_wrist, rot=Rr @ R, obj=oi, extra={"to": bowl})
    plan.add(w.dur(0.5, 1.0), "pour", obj=oi, extra={"to": bowl})
    plan.add(w.dur(0.4, 0.7), "untilt", pos=pre, rot=R, obj=oi)
    plan.add(w.dur(0.5, 0.8), "move", pos=wrist + UP * 0.05, obj=oi, extra={"back": True})
    plan.add(w.dur(0.3, 0.5), "place", pos=wrist + UP * 0.002, obj=oi)
    plan_release(w, plan, oi)
    return {"task": "pour", "obj": oi, "to": bowl}


def task_press(w: World, plan: HandPlan, oi: int) -> dict:
    rng, kin, side = w.rng, w.kin[plan.side], plan.side
    O, obj = w.init[oi], w.objects[oi]
    a = O[:3, 3] - plan.last.pos
    a[1] = 0
    a = _n(a)
    tilt = rng.uniform(0.5, 0.9)
    f = _n(a * np.cos(tilt) - UP * np.sin(tilt))
    R = hand_rotation(side, f, _n(-UP + 0.3 * a))
    pose = clip_pose(SYNERGIES["point"])
    tip = kin.local_keypoints(pose[None])[0][8]
    top = O[:3, 3] + UP * obj.height
    above = top + UP * rng.uniform(0.03, 0.05) - R @ tip
    plan.add(w.dur(0.6, 1.0), "reach", pos=above, rot=R, pose=pose, obj=oi, arc=0.03)
    n = int(rng.integers(1, 3))
    for _ in range(n):
        plan.add(w.dur(0.25, 0.4), "press", pos=top - UP * 0.004 - R @ tip + UP * (FINGER_RADIUS - 0.002), obj=oi)
        plan.add(w.dur(0.1, 0.25), "press", obj=oi)
        plan.add(w.dur(0.2, 0.35), "release", pos=above, obj=oi)
    rp, rr = rest_pose(w, side)
    plan.add(w.dur(0.6, 0.9), "retreat", pos=rp, rot=rr, pose=SYNERGIES["relaxed"], arc=0.03)
    return {"task": "press", "obj": oi, "presses": n}


def task_open_jar(w: World, plan: HandPlan, lid: int, dest: np.ndarray) -> dict:
    rng = w.rng
    L = w.init[lid]
    wrist, R, gp = plan_grasp(w, plan, lid, L, style="top")
    c = L[:3, 3]
    ang = 0.0
    for _ in range(int(rng.integers(1, 3))):
        ang += rng.uniform(0.6, 1.0) * (1 if plan.side == "right" else -1)
        Ry = Rotation.from_rotvec(UP * ang).as_matrix()
        plan.add(w.dur(0.4, 0.7), "twist", pos=c + Ry @ (wrist - c) + UP * 0.003, rot=Ry @ R, obj=lid)
    Ry = Rotation.from_rotvec(UP * ang).as_matrix()
    w_tw = c + Ry @ (wrist - c) + UP * 0.003
    plan.add(w.dur(0.35, 0.5), "lift", pos=w_tw + UP * rng.uniform(0.07, 0.11), obj=lid)
    d = dest - c
    d[1] = 0
    plan.add(w.dur(0.5, 0.8), "move", pos=w_tw + d + UP * 0.05, obj=lid, arc=0.02)
    plan.add(w.dur(0.3, 0.5), "place", pos=w_tw + d - UP * (c[1] - 0.0), obj=lid)
    plan_release(w, plan, lid)
    return {"task": "open_jar", "obj": lid}


def task_hold(w: World, plan: HandPlan, oi: int, until: float) -> dict:
    """Steady object ``oi`` (a jar or bowl) with a side power grasp until ``until`` seconds."""
    O = w.init[oi]
    plan_grasp(w, plan, oi, O, style="side")
    plan.phases[-1].name = "hold"
    plan._holding = None  # steadied, not carried: the object stays where it is
    if plan.t < until:
        plan.add(until - plan.t, "hold", obj=oi)
    plan.add(w.dur(0.25, 0.4), "release", pose=SYNERGIES["open"], obj=oi)
    rp, rr = rest_pose(w, plan.side)
    plan.add(w.dur(0.6, 0.9), "retreat", pos=rp, rot=rr, pose=SYNERGIES["relaxed"], arc=0.03)
    return {"task": "hold", "obj": oi}


# ------------------------------------------------------------------------------------------------
# whole-episode sampling


def object_poses(objects, init, plans: dict[str, HandPlan], times, wrists) -> np.ndarray:
    """(n_obj, T, 4, 4) world poses: objects follow the hand that holds them."""
    T = len(times)
    out = np.repeat(np.stack(init)[:, None], T, 1)
    for side, plan in plans.items():
        Wp, WR = wrists[side]
        for (ta, tb, oi) in plan.attach:
            i0 = int(np.searchsorted(times, ta))
            if i0 >= T:
                continue
            Wa = np.eye(4)
            # wrist pose exactly at the grab time (plan is continuous: sample it)
            pa, ra, _ = plan.sample(np.array([ta]))
            Wa[:3, :3], Wa[:3, 3] = ra[0], pa[0]
            rel = np.linalg.inv(Wa) @ out[oi, max(i0 - 1, 0)] if i0 > 0 else np.linalg.inv(Wa) @ out[oi, 0]
            for i in range(i0, T):
                if times[i] > tb:
                    out[oi, i:] = out[oi, i - 1]
                    break
                Wi = np.eye(4)
                Wi[:3, :3], Wi[:3, 3] = WR[i], Wp[i]
                out[oi, i] = Wi @ rel
            # objects that this object carries (lid on a jar) are not modelled: lids are grabbed themselves
    return out


def breathing(times: np.ndarray, rng: np.random.Generator, amp: float = 0.003) -> np.ndarray:
    ph = rng.uniform(0, 2 * np.pi, 3)
    fr = rng.uniform(0.2, 0.5, 3)
    return amp * np.sin(2 * np.pi * fr[None] * times[:, None] + ph[None])


def place_objects(rng, objects: list[SceneObject], region_x=(-0.2, 0.2), region_z=(-0.22, -0.02), gap=0.02, fixed=None):
    """Non-overlapping positions on the table (rejection sampling); ``fixed`` maps index -> pose."""
    fixed = fixed or {}
    poses: list[np.ndarray | None] = [None] * len(objects)
    placed = []
    for i, o in enumerate(objects):
        if i in fixed:
            poses[i] = fixed[i]
            continue
        for _ in range(200):
            p = np.array([rng.uniform(*region_x), 0.0, rng.uniform(*region_z)])
            if all(np.hypot(*(p - q)[[0, 2]]) > o.radius + r + gap for q, r in placed):
                break
        placed.append((p, o.radius))
        poses[i] = pose_matrix(p, rng.uniform(-np.pi, np.pi))
    return poses


def free_spot(rng, objects, poses, radius, region_x, region_z, gap=0.03, avoid=()):
    for _ in range(200):
        p = np.array([rng.uniform(*region_x), 0.0, rng.uniform(*region_z)])
        ok = all(np.hypot(*(p - P[:3, 3])[[0, 2]]) > o.radius + radius + gap for o, P in zip(objects, poses))
        ok &= all(np.hypot(*(p - q)[[0, 2]]) > radius * 2 + gap for q in avoid)
        if ok:
            return p
    return p
