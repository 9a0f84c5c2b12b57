"""Procedural bimanual manipulation: hands that reach, grasp, move, place, pour, press and open.

THE synthetic-motion generator of beingh0 (the synthetic UniHand source, the ``mano demo`` job and
the tests all draw their hand motion from here; :func:`beingh0.data.synth.grasp_motion` is the
one-hand entry point).

Each hand follows a *plan*: a list of keyframes (wrist position and orientation in the world frame
of :mod:`.scene`, 15 finger-joint rotations, a phase label), joined by minimum-jerk segments
(position lerp with an optional lift arc, rotation slerp, finger lerp), so velocity and
acceleration vanish at every keyframe. Tasks are sequences of phases:

``reach`` (pre-shape the fingers on the way), ``grasp`` (close: synergies blended per object,
each finger stopping at contact), ``lift``, ``move``, ``place``, ``release``, ``retreat``; and
``tilt``/``pour``/``untilt`` (pouring into a bowl), ``press`` (pointing index on a button),
``twist`` (unscrewing a jar lid), ``hold`` (steadying an object with the other hand), ``rest``
(an idle hand lying on the table, breathing slightly).

Grasp synergies (the tables below, right-hand MANO conventions): *power* (all fingers wrap),
*precision* (fingertips of thumb, index and middle), *pinch* (thumb and index, the other fingers
tucked) and *point* (index extended). Weights depend on the object's size. Closure is contact
driven: the closed pose of every finger is the first closure level at which one of its keypoints
or bone midpoints comes within a finger radius of the object's contact shape (model keypoints,
evaluated in one batch). Poses are clipped to :func:`beingh0.mano.fit.joint_limits` (the one
table of joint-angle limits). Left hands use the left model: wrist frames are built for each
side's rest frame and the finger poses are mirrored with :func:`beingh0.mano.model.mirror_pose`.

Rotations go through :mod:`beingh0.core.rotations` (torch, float64) at a numpy boundary
(:func:`rotvec_to_matrix`, :func:`matrix_to_rotvec`, :func:`slerp_matrices`); no scipy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...core.constants import KEYPOINT_NAMES
from ...core.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, quaternion_slerp,
                               quaternion_to_matrix)
from ...mano import hand_model, mirror_pose
from ...mano.fit import joint_limits
from .scene import COLORS, SceneObject, fit_camera, make_object, pose_matrix, sample_camera

UP = np.array([0.0, 1.0, 0.0])
MAX_SPEED = 0.4  # m/s, mean over a segment (min-jerk peaks at 1.875x)
MAX_ANGULAR_SPEED = 2.5  # rad/s


# ------------------------------------------------------------------------------------------------
# rotations: numpy float64 in and out, beingh0.core.rotations inside


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float64))


def rotvec_to_matrix(rotvec) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3), float64 numpy."""
    return axis_angle_to_matrix(_t(rotvec)).numpy()


def matrix_to_rotvec(matrix) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3) with angle in [0, pi], float64 numpy."""
    return matrix_to_axis_angle(_t(matrix)).numpy()


def slerp_matrices(R0, R1, s) -> np.ndarray:
    """Shortest-arc slerp between rotation matrices R0, R1 (..., 3, 3) at fractions ``s`` (...,)
    (0 -> R0, 1 -> R1), float64 numpy."""
    q = quaternion_slerp(matrix_to_quaternion(_t(R0)), matrix_to_quaternion(_t(R1)), _t(s))
    return quaternion_to_matrix(q).numpy()


# ------------------------------------------------------------------------------------------------
# hand tables: the ONE copy of the generator's finger geometry and grasp synergies
#
# Right-hand MANO conventions (the rest frame of MANO and of the embedded model): fingers point
# along -x, the palm faces -y, the thumb side is +z. A finger joint's axis-angle components are
# x = twist about the bone, y = abduction (+: towards the thumb), z = flexion (+: curl towards
# the palm). hand_pose rows are MANO's order: index 0-2, middle 3-5, pinky 6-8, ring 9-11,
# thumb 12-14 (each MCP/CMC, PIP/MCP, DIP/IP). Joint-angle LIMITS are not here: they are
# ``beingh0.mano.fit.JOINT_LIMITS_RIGHT`` (shared with the fitter's soft limits).

#: Fingers in MANO hand_pose order.
FINGERS = ("index", "middle", "pinky", "ring", "thumb")
#: 21-keypoint ids of each finger (base .. tip), Being-H0 order (from ``core.constants``).
FINGER_KP = {f: tuple(i for i, n in enumerate(KEYPOINT_NAMES) if n.startswith(f)) for f in FINGERS}
#: Abduction (rad, about +y) of each finger's MCP when the hand is spread fully open: the index
#: tilts towards the thumb, middle stays near the hand's axis, ring and pinky fan out ulnarly.
SPREAD = {"index": 0.16, "middle": 0.03, "pinky": -0.26, "ring": -0.11}
#: The thumb has no joint axis aligned with its rest frame: all three thumb joints flex about
#: this one axis, which carries the tip palmar and across the fingers (at full closure it ends
#: over the index/middle middle phalanges; chosen by checking the tip of the embedded hand).
THUMB_AXIS = np.array([0.48, -0.84, 0.25])
#: Contact distance (m): a finger stops closing when a joint or bone midpoint comes this close.
FINGER_RADIUS = 0.0085


def _fingers(mcp, pip, dip, spread=0.0, twist=0.0) -> np.ndarray:
    """(15, 3) pose of the four fingers: flexion (rad) at MCP, PIP, DIP (scalars, or one value per
    finger in MANO order index, middle, pinky, ring), ``spread`` x :data:`SPREAD` abduction, and a
    small ``twist`` that rolls the ulnar fingers (pinky, ring) towards the others when they wrap."""
    P = np.zeros((15, 3))
    for i, f in enumerate(FINGERS[:4]):
        m, p, d = (x[i] if np.ndim(x) else x for x in (mcp, pip, dip))
        P[3 * i] = (twist * (1 if f in ("pinky", "ring") else -1), SPREAD[f] * spread, m)
        P[3 * i + 1, 2], P[3 * i + 2, 2] = p, d
    return P


def _thumb(P: np.ndarray, opp: float, c1: float, c2: float, c3: float) -> np.ndarray:
    """Set the thumb: ``opp`` opposition (rad about +x at the CMC, rolling the thumb under the
    palm) and flexion ``c1, c2, c3`` (rad about :data:`THUMB_AXIS`) at CMC, MCP and IP."""
    P = P.copy()
    P[12] = np.array([opp, 0.0, 0.0]) + c1 * THUMB_AXIS
    P[13] = c2 * THUMB_AXIS
    P[14] = c3 * THUMB_AXIS
    return P


#: Grasp synergies: (15, 3) right-hand poses that grasps blend. Flexion grows MCP < PIP, DIP about
#: 0.7 x PIP (the DIP-PIP coupling of real fingers), ulnar fingers flex further than radial ones
#: in a power grasp; spread relaxes as the hand closes.
#: ``open``: fingers straight and spread (pre-shape while reaching, release);
#: ``relaxed``: the resting hand, slightly curled; ``power``: all fingers wrap an object, thumb
#: over them; ``precision``: thumb, index and middle fingertips meet, ring and pinky follow;
#: ``pinch``: thumb and index tips meet, the other fingers tucked; ``point``: index extended,
#: the others curled (pressing buttons).
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
    """Clip a right-hand (15, 3) pose to the joint-angle limits of ``beingh0.mano.fit``."""
    return np.clip(P, _LIM[..., 0], _LIM[..., 1])


def blend(weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of :data:`SYNERGIES` (weights need not sum to 1)."""
    tot = sum(weights.values())
    return sum(w / tot * SYNERGIES[k] for k, w in weights.items())


# ------------------------------------------------------------------------------------------------
# articulation drawn from the anatomical range (not only the synergies above)

#: DIP/PIP coupling of real fingers: the DIP flexes about this fraction of the PIP's flexion (the
#: ratio is drawn per pose from this range, plus a small independent deviation).
DIP_PIP_RATIO = (0.1, 1.0)
#: MCP flexion range (rad) that free articulation draws from (hyperextension to a full fist) and
#: the PIP range; both inside :func:`beingh0.mano.fit.joint_limits`.
FREE_MCP, FREE_PIP = (-0.35, 1.9), (0.0, 2.0)
#: Thumb ranges of free articulation: opposition at the CMC (rad about +x) and flexion (rad about
#: :data:`THUMB_AXIS`) at CMC, MCP and IP.
FREE_THUMB = ((-0.4, 0.9), (-0.4, 0.9), (-0.3, 1.0), (-0.3, 1.2))
#: Radial abduction of the thumb (rad about +y at the CMC; +: away from the index in the palm
#: plane, the thumb-index tip span of a spread hand grows from ~85 to ~160 mm at 0.8).
THUMB_ABDUCTION = (-0.4, 0.8)


def random_articulation(rng: np.random.Generator) -> np.ndarray:
    """A right-hand (15, 3) finger pose drawn from the anatomical range.

    Per pose: a common flexion level and an *independence* ``lam`` in [0, 1] (0: all four fingers
    flex alike, a synergy; 1: each finger flexes on its own), so that fingers range from moving
    together to moving independently; each finger's MCP and PIP flexion mix the common level and
    its own draw; the DIP follows the PIP (ratio in :data:`DIP_PIP_RATIO`, plus 0.15 rad of its own);
    abduction spreads or closes the fingers (a spread level in [-0.6, 1.6] x :data:`SPREAD`, less
    when the MCP is flexed, plus 0.12 rad per finger); small twists (0.1 rad) and off-axis
    components (0.07-0.08 rad) as fitted real hands show; the thumb draws opposition and flexion
    from :data:`FREE_THUMB` and radial abduction from :data:`THUMB_ABDUCTION`, with 0.2 rad
    off-axis. Clipped to the joint limits (:func:`clip_pose`)."""
    lam = rng.uniform(0.0, 1.0)
    cm, cp = rng.uniform(*FREE_MCP), rng.uniform(*FREE_PIP)
    spread, ratio = rng.uniform(-0.6, 1.6), rng.uniform(*DIP_PIP_RATIO)
    P = np.zeros((15, 3))
    for i, f in enumerate(FINGERS[:4]):
        m = (1 - lam) * cm + lam * rng.uniform(*FREE_MCP)
        p = (1 - lam) * cp + lam * rng.uniform(*FREE_PIP)
        d = ratio * p + rng.normal(0.0, 0.15)
        ab = SPREAD[f] * spread * (1.0 - 0.5 * np.clip(m, 0.0, 1.6) / 1.6) + rng.normal(0.0, 0.12)
        P[3 * i] = (rng.normal(0.0, 0.1), ab, m)
        P[3 * i + 1] = (rng.normal(0.0, 0.08), rng.normal(0.0, 0.07), p)
        P[3 * i + 2] = (rng.normal(0.0, 0.08), rng.normal(0.0, 0.07), d)
    P = _thumb(P, *(rng.uniform(*r) for r in FREE_THUMB))
    P[12, 1] += rng.uniform(*THUMB_ABDUCTION)
    P[12:] += rng.normal(0.0, 0.2, (3, 3))
    return clip_pose(P)


def vary_pose(rng: np.random.Generator, pose: np.ndarray, amount: float) -> np.ndarray:
    """``pose`` moved towards a :func:`random_articulation` by ``amount`` (0: unchanged), clipped."""
    return clip_pose(pose + amount * (random_articulation(rng) - pose))


#: How far (fraction towards a free articulation) each synergy a plan uses is varied per use.
VARY = {"open": (0.0, 0.25), "relaxed": (0.15, 0.6), "closed": (0.0, 0.3)}


# ------------------------------------------------------------------------------------------------
# timing and wrist frames


def min_jerk(s):
    """0 -> 1 over s in [0, 1] (clipped outside), zero velocity and acceleration at both ends."""
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
        ang = np.linalg.norm(matrix_to_rotvec(new.rot @ k.rot.T))
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
        times = np.asarray(times, np.float64)
        kt = np.array([k.t for k in self.keys])
        if len(kt) == 1:
            ia = ib = np.zeros(len(times), int)
            s = np.zeros(len(times))
        else:
            ia = np.clip(np.searchsorted(kt, times, side="right") - 1, 0, len(kt) - 2)
            ib = ia + 1
            s = min_jerk((times - kt[ia]) / np.maximum(kt[ib] - kt[ia], 1e-9))
        kpos = np.stack([k.pos for k in self.keys])
        krot = np.stack([k.rot for k in self.keys])
        kpose = np.stack([k.pose for k in self.keys])
        karc = np.array([k.arc for k in self.keys])
        s1, s3 = s[:, None], s[:, None, None]
        pos = kpos[ia] + s1 * (kpos[ib] - kpos[ia]) + 4 * s1 * (1 - s1) * karc[ib, None] * UP
        pose = kpose[ia] + s3 * (kpose[ib] - kpose[ia])
        # segments whose end rotations agree keep the first one exactly (no slerp round-off)
        same_key = np.array([np.allclose(krot[i], krot[min(i + 1, len(krot) - 1)]) for i in range(len(krot))], bool)
        same = same_key[ia]
        rot = krot[ia].copy()
        if (~same).any():
            rot[~same] = slerp_matrices(krot[ia[~same]], krot[ib[~same]], s[~same])
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

    def pose(self, name: str) -> np.ndarray:
        """A variant of ``SYNERGIES[name]`` ('open', 'relaxed'): each use differs (:data:`VARY`)."""
        return vary_pose(self.rng, SYNERGIES[name], self.rng.uniform(*VARY[name]))


def rest_rotation(side: str, rng: np.random.Generator) -> np.ndarray:
    s = 1.0 if side == "right" else -1.0
    yaw = s * rng.uniform(0.15, 0.45)  # fingers turned slightly inwards
    f = np.array([-np.sin(yaw), -0.12, -np.cos(yaw)])
    return hand_rotation(side, f, [0.0, -1.0, 0.0])


def rest_pose(w: "World", side: str, pose: np.ndarray | None = None):
    """A resting wrist pose near ``w.rest[side]``: fingers in ``pose`` (default the relaxed
    synergy), lifted so no keypoint is below the table (finger radius above the plane)."""
    R = rest_rotation(side, w.rng)
    kp = w.kin[side].local_keypoints((SYNERGIES["relaxed"] if pose is None else pose)[None])[0] @ R.T
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
    closed = vary_pose(rng, clip_pose(blend(wts)), rng.uniform(*VARY["closed"]))
    open_pose = w.pose("open")
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
    plan.add(w.dur(0.25, 0.45), "release", pose=w.pose("open"), obj=oi)
    back = plan.last.pos + UP * rng.uniform(0.05, 0.09)
    plan.add(w.dur(0.2, 0.35), "release", pos=back, obj=oi)
    relaxed = w.pose("relaxed")
    rp, rr = rest_pose(w, plan.side, relaxed)
    plan.add(w.dur(0.6, 0.9), "retreat", pos=rp, rot=rr, pose=relaxed, arc=0.03)


def task_pick_place(w: World, plan: HandPlan, oi: int, dest: np.ndarray, onto: int | None = None) -> dict:
    rng = w.rng
    O = w.init[oi]
    wrist, R, gp = plan_grasp(w, plan, oi, O)
    lift = rng.uniform(0.06, 0.12)
    plan.add(w.dur(0.35, 0.55), "lift", pos=wrist + UP * lift, obj=oi)
    d = dest - O[:3, 3]
    d[1] = 0
    yaw = rng.normal(0, 0.25)
    Ry = rotvec_to_matrix(UP * yaw)
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
        Rr = rotvec_to_matrix(f * sgn * amount)
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
    relaxed = w.pose("relaxed")
    rp, rr = rest_pose(w, side, relaxed)
    plan.add(w.dur(0.6, 0.9), "retreat", pos=rp, rot=rr, pose=relaxed, arc=0.03)
    return {"task": "press", "obj": oi, "presses": n}


def task_open_jar(w: World, plan: HandPlan, lid: int, dest: np.ndarray) -> dict:
    rng = w.rng
    L = w.init[lid]
    wrist, R, gp = plan_grasp(w, plan, lid, L, style="top")
    c = L[:3, 3]
    ang = 0.0
    for _ in range(int(rng.integers(1, 3))):
        ang += rng.uniform(0.6, 1.0) * (1 if plan.side == "right" else -1)
        Ry = rotvec_to_matrix(UP * ang)
        plan.add(w.dur(0.4, 0.7), "twist", pos=c + Ry @ (wrist - c) + UP * 0.003, rot=Ry @ R, obj=lid)
    Ry = rotvec_to_matrix(UP * ang)
    w_tw = c + Ry @ (wrist - c) + UP * 0.003
    plan.add(w.dur(0.35, 0.5), "lift", pos=w_tw + UP * rng.uniform(0.07, 0.11), obj=lid)
    d = dest - c
    d[1] = 0
    plan.add(w.dur(0.5, 0.8), "move", pos=w_tw + d + UP * 0.05, obj=lid, arc=0.02)
    plan.add(w.dur(0.3, 0.5), "place", pos=w_tw + d - UP * (c[1] - 0.0), obj=lid)
    plan_release(w, plan, lid)
    return {"task": "open_jar", "obj": lid}


def plan_gesture(w: World, plan: HandPlan, until: float) -> dict | None:
    """An idle hand gestures until about ``until`` seconds: it lifts 4-10 cm off the table and
    turns (0.2-0.8 rad about a random axis), its fingers move through free articulations
    (:func:`random_articulation`, a new one every 0.3-0.9 s: counting, pointing, spreading,
    fists, thumb opposition), the wrist drifts (1 cm) and turns (0.1 rad) a little between some
    of them, and the hand goes back to rest. Nothing happens when less than 1.5 s are left."""
    rng = w.rng
    if until - plan.t < 1.5:
        return None
    p0, R0 = plan.last.pos, plan.last.rot
    lift = p0 + UP * rng.uniform(0.04, 0.10) + np.array([rng.normal(0, 0.02), 0.0, rng.normal(0, 0.02)])
    axis = _n(rng.normal(0, 1, 3))
    R = rotvec_to_matrix(axis * rng.uniform(0.2, 0.8)) @ R0
    plan.add(w.dur(0.4, 0.7), "gesture", pos=lift, rot=R, pose=random_articulation(rng), arc=0.01)
    pos = lift
    while plan.t < until - 1.0:
        if rng.random() < 0.4:  # the wrist drifts and turns a little (a gesturing hand keeps it steady)
            pos = lift + rng.normal(0, 0.01, 3)
            R = rotvec_to_matrix(rng.normal(0, 0.1, 3)) @ R
        plan.add(w.dur(0.3, 0.9), "gesture", pos=pos, rot=R, pose=random_articulation(rng))
        if rng.random() < 0.3:  # a short hold
            plan.add(w.dur(0.1, 0.4), "gesture")
    relaxed = w.pose("relaxed")
    rp, rr = rest_pose(w, plan.side, relaxed)
    plan.add(w.dur(0.5, 0.8), "gesture", pos=rp, rot=rr, pose=relaxed, arc=0.02)
    plan.add(w.dur(0.2, 0.4), "rest")
    return {"task": "gesture"}


def task_hold(w: World, plan: HandPlan, oi: int, until: float) -> dict:
    """Steady object ``oi`` (a jar or bowl) with a side power grasp until ``until`` seconds."""
    O = w.init[oi]
    plan_grasp(w, plan, oi, O, style="side")
    plan.phases[-1].name = "hold"
    plan._holding = None  # steadied, not carried: the object stays where it is
    if plan.t < until:
        plan.add(until - plan.t, "hold", obj=oi)
    plan.add(w.dur(0.25, 0.4), "release", pose=w.pose("open"), obj=oi)
    relaxed = w.pose("relaxed")
    rp, rr = rest_pose(w, plan.side, relaxed)
    plan.add(w.dur(0.6, 0.9), "retreat", pos=rp, rot=rr, pose=relaxed, arc=0.03)
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


# ------------------------------------------------------------------------------------------------
# worlds: objects + both hands' plans for a scenario

#: Scenarios of the synthetic source (``SynthConfig.scenario``, ``grasp_motion(scenario=...)``).
SCENARIOS = ("pick_place", "pour", "press", "open_jar", "bimanual_pick")
#: Probability that a hand without a task gestures (:func:`plan_gesture`) instead of resting.
GESTURE_P = 0.8
#: Probability that the active hand gestures (2-3.5 s) before its task.
GESTURE_BEFORE_P = 0.4


def build_world(rng: np.random.Generator, scenario: str, active: str | None = None):
    """Objects, their initial poses and both hands' plans for one of :data:`SCENARIOS`.

    ``active`` forces the hand that does the task ('left' or 'right'; None: right with
    probability 0.65); the random draws are the same either way. Returns (world, plans by side,
    betas (10,), task records, active side)."""
    betas = np.clip(rng.normal(0, 0.7, 10), -2.0, 2.0)
    kin = {s: HandKinematics(hand_model(s), betas) for s in ("left", "right")}
    rest = {"right": np.array([rng.uniform(0.15, 0.24), 0.035, rng.uniform(0.2, 0.27)]),
            "left": np.array([-rng.uniform(0.15, 0.24), 0.035, rng.uniform(0.2, 0.27)])}
    drawn = "right" if rng.random() < 0.65 else "left"
    active = drawn if active is None else active
    sx = 1.0 if active == "right" else -1.0
    n_distract = int(rng.integers(0, 3))
    kinds = {
        "pick_place": [str(rng.choice(["cup", "can", "bottle", "box", "block", "ball"]))] + (["plate"] if rng.random() < 0.5 else []),
        "pour": [str(rng.choice(["cup", "bottle"])), "bowl"],
        "press": ["button"],
        "open_jar": ["jar", "lid"],
        "bimanual_pick": [str(rng.choice(["cup", "can", "block", "ball", "box"])), str(rng.choice(["cup", "can", "block", "ball", "box"]))],
    }[scenario]
    kinds = kinds + [str(rng.choice(["cup", "can", "box", "block", "ball", "bottle"])) for _ in range(n_distract)]
    cols = [list(COLORS)[i] for i in rng.permutation(len(COLORS))[:len(kinds)]]
    objects = [make_object(k, rng, c) for k, c in zip(kinds, cols)]
    # positions: the manipulated object on the active hand's side
    fixed = {}
    if scenario == "bimanual_pick":
        fixed[0] = pose_matrix([-rng.uniform(0.08, 0.2), 0.0, rng.uniform(-0.16, -0.02)], rng.uniform(-np.pi, np.pi))
        fixed[1] = pose_matrix([rng.uniform(0.08, 0.2), 0.0, rng.uniform(-0.16, -0.02)], rng.uniform(-np.pi, np.pi))
    else:
        fixed[0] = pose_matrix([sx * rng.uniform(0.03, 0.17), 0.0, rng.uniform(-0.16, -0.02)], rng.uniform(-np.pi, np.pi))
        if scenario == "open_jar":
            fixed[1] = pose_matrix(fixed[0][:3, 3] + [0.0, objects[0].height, 0.0], rng.uniform(-np.pi, np.pi))
    init = place_objects(rng, objects, fixed=fixed)
    w = World(objects, init, rest, kin, rng, speed=float(rng.uniform(0.75, 1.35)))
    relaxed = {s: w.pose("relaxed") for s in ("left", "right")}
    plans = {s: HandPlan(s, *rest_pose(w, s, relaxed[s]), relaxed[s]) for s in ("left", "right")}
    for s in plans:
        plans[s].add(rng.uniform(0.0, 0.4), "rest")
    other = "left" if active == "right" else "right"
    tasks = []
    if rng.random() < GESTURE_BEFORE_P:  # the active hand sometimes gestures before its task
        g = plan_gesture(w, plans[active], until=plans[active].t + rng.uniform(2.0, 3.5))
        if g is not None:
            tasks.append(g)
    if scenario == "pick_place":
        onto = 1 if len(kinds) > 1 and kinds[1] == "plate" else None
        if onto is not None:
            dest = init[1][:3, 3] + [0.0, objects[1].height, 0.0]
        else:
            dest = free_spot(rng, objects, init, objects[0].radius, (-0.22, 0.22), (-0.2, -0.02))
        tasks.append(task_pick_place(w, plans[active], 0, dest, onto))
    elif scenario == "pour":
        if rng.random() < 0.35:
            tasks.append(task_hold(w, plans[other], 1, until=6.0))
        tasks.append(task_pour(w, plans[active], 0, 1))
    elif scenario == "press":
        tasks.append(task_press(w, plans[active], 0))
    elif scenario == "open_jar":
        hold = rng.random() < 0.7
        if hold:
            tasks.append(task_hold(w, plans[other], 0, until=0.0))
        dest = free_spot(rng, objects, init, objects[1].radius, (-0.22, 0.22), (-0.2, -0.02))
        tasks.append(task_open_jar(w, plans[active], 1, dest))
        if hold:  # the steadying hand lets go once the lid is off: rebuild its plan with that timing
            plans[other] = HandPlan(other, *rest_pose(w, other, relaxed[other]), relaxed[other])
            plans[other].add(rng.uniform(0.0, 0.3), "rest")
            t_lid_off = next(p.t1 for p in plans[active].phases if p.name == "lift")
            tasks[0] = task_hold(w, plans[other], 0, until=t_lid_off)
    else:
        tasks.append(task_pick_place(w, plans["left"], 0, free_spot(rng, objects, init, objects[0].radius, (-0.24, 0.0), (-0.2, -0.02))))
        plans["right"].add(rng.uniform(0.0, 1.2), "rest")
        tasks.append(task_pick_place(w, plans["right"], 1, free_spot(rng, objects, init, objects[1].radius, (0.0, 0.24), (-0.2, -0.02))))
    # a hand without a task gestures (free finger articulation, wrist turns) most of the time
    idle = [s for s in ("left", "right") if all(k.phase in ("start", "rest") for k in plans[s].keys)]
    for s in idle:
        if rng.random() < GESTURE_P:
            g = plan_gesture(w, plans[s], until=max(p.t for p in plans.values()))
            if g is not None:
                tasks.append(g)
    return w, plans, betas, tasks, active


def hand_world(side: str, plan: HandPlan, times: np.ndarray, rng: np.random.Generator, breathe: bool = True):
    """Sample ``plan`` at ``times``: world wrist positions (T, 3), rotations (T, 3, 3), their
    axis-angle ``global_orient`` (T, 3) and the side's MANO ``hand_pose`` (T, 45) (mirrored for a
    left hand), float64. ``breathe`` adds a slight sway of the wrist (2 mm)."""
    pos, rot, pose = plan.sample(times)
    if breathe:
        pos = pos + breathing(times, rng, 0.002)
    P = torch.as_tensor(pose.reshape(len(times), 45))
    if side == "left":
        P = mirror_pose(P)
    return pos, rot, matrix_to_rotvec(rot), P.numpy()


# ------------------------------------------------------------------------------------------------
# the one-hand entry point


@dataclass
class HandMotion:
    """MANO parameters of one synthetic hand (float64 numpy), in an OpenCV camera frame (x right,
    y down, z forward; Being-H0's conventions: ``trans`` is the wrist, ``flat_hand_mean``), for
    the embedded model of ``side`` (or MANO), and the grasp closure per frame."""

    betas: np.ndarray          # (10,)
    global_orient: np.ndarray  # (T, 3)
    hand_pose: np.ndarray      # (T, 45)
    trans: np.ndarray          # (T, 3) wrist position in the camera frame (metres)
    grasp: np.ndarray          # (T,) closure: 0 open (the reach's pre-shape) .. 1 the task's most closed pose
    side: str = "right"
    fps: float = 15.0
    scenario: str = "pick_place"

    @property
    def num_frames(self) -> int:
        return len(self.trans)

    def window(self, start: int, stop: int) -> "HandMotion":
        """Frames ``start:stop`` (same betas)."""
        sl = slice(start, stop)
        return HandMotion(self.betas, self.global_orient[sl], self.hand_pose[sl], self.trans[sl], self.grasp[sl],
                          self.side, self.fps, self.scenario)


#: Phases in which a hand acts on its object (the closure of :func:`grasp_motion` is measured on them).
_MANIPULATION = ("grasp", "lift", "move", "place", "tilt", "pour", "untilt", "press", "twist", "hold")
#: Seed-sequence tag of :func:`grasp_motion` (its streams differ from the episodes' ones).
_GRASP_STREAM = 0x4D4F54


def grasp_motion(frames: int = 90, seed: int = 0, side: str = "right", fps: float = 15.0,
                 scenario: str | None = "pick_place") -> HandMotion:
    """A plausible grasp/manipulation motion of one hand over ``frames`` frames, from ``seed``.

    The hand that does ``scenario`` (one of :data:`SCENARIOS`; None: drawn from the seed) in a
    synthetic scene: it reaches for the object pre-shaping its fingers, closes on it (synergies,
    contact-driven closure), manipulates it (lift/move/place, pour, press, twist) and lets go.
    Real time at ``fps``: when the task (about 3-8 s from just before the reach to the end of the
    retreat) is shorter than the clip, it is centred and the hand rests before and after; when it
    is longer, the clip is a window that starts during the reach, shows the first contact (grasp,
    press) at about a third of the clip, and continues into the manipulation. The parameters are
    expressed in the frame of a camera that sees the hand (the synthetic source's camera model:
    head camera above the table or third-person). Deterministic in its arguments.
    """
    from ...core.errors import UserValueError

    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise UserValueError(f"frames={frames!r} must be an integer >= 2")
    if side not in ("left", "right"):
        raise UserValueError(f"side must be 'left' or 'right', got {side!r}")
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
        raise UserValueError(f"fps={fps!r} must be a finite number > 0")
    if scenario is not None and scenario not in SCENARIOS:
        raise UserValueError(f"scenario must be one of {SCENARIOS} or None, got {scenario!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _GRASP_STREAM]))
    scenario = scenario or str(rng.choice(SCENARIOS))
    w, plans, betas, _, _ = build_world(rng, scenario, active=side)
    plan = plans[side]
    busy = [ph for ph in plan.phases if ph.name not in ("rest", "gesture")]
    t0, t1 = max(busy[0].t0 - 0.2, 0.0), busy[-1].t1
    S = (int(frames) - 1) / fps
    if S >= t1 - t0:  # the whole task fits: centre it (the hand rests before and after)
        start = t0 - 0.5 * (S - (t1 - t0))
    else:  # a window around the first contact, starting during the reach
        contact = next((ph.t0 for ph in busy if ph.name in ("grasp", "press", "hold")), t0)
        start = float(np.clip(contact - 0.35 * S, t0, t1 - S))
    times = start + np.arange(int(frames)) / fps
    plan.finish(times[-1] + 0.01)
    pos, rot, go, hp = hand_world(side, plan, times, rng)
    # closure: projection of the finger pose onto the line from the open hand (the reach's
    # pre-shape, a variant of SYNERGIES["open"]) to the most closed key
    held = [k.pose for k in plan.keys if k.phase in _MANIPULATION]  # the task's keys while it acts on the object
    right = np.stack(held or [k.pose for k in plan.keys if k.phase != "gesture"])
    opened = next((k.pose for k in plan.keys if k.phase == "reach"), SYNERGIES["open"])
    d = (right - opened).reshape(len(right), -1)
    closed = d[np.argmax(np.linalg.norm(d, axis=1))]
    cur = (plan.sample(times)[2] - opened).reshape(len(times), -1)
    grasp = np.clip(cur @ closed / max(float(closed @ closed), 1e-12), 0.0, 1.0)
    # a camera that sees the hand
    kp = hand_model(side).keypoints(torch.as_tensor(betas)[None], torch.as_tensor(go), torch.as_tensor(hp),
                                    torch.as_tensor(pos)).numpy()
    workspace = np.mean([P[:3, 3] for P in w.init], 0) * np.array([1.0, 0.0, 1.0])
    rig = sample_camera(rng, workspace)
    _, E, _ = fit_camera(rig, kp, len(times), fps, (256, 256))
    go_c, trans_c = world_to_camera(E, rot, pos)
    return HandMotion(betas=betas, global_orient=go_c, hand_pose=hp, trans=trans_c, grasp=grasp, side=side,
                      fps=float(fps), scenario=scenario)


def world_to_camera(cam_to_world: np.ndarray, rot: np.ndarray, pos: np.ndarray):
    """Wrist rotations (T, 3, 3) and positions (T, 3) in the world -> (global_orient (T, 3),
    trans (T, 3)) in the camera of ``cam_to_world`` (T, 4, 4)."""
    Rw2c = np.swapaxes(cam_to_world[:, :3, :3], 1, 2)
    trans_c = np.einsum("tij,tj->ti", Rw2c, pos - cam_to_world[:, :3, 3])
    return matrix_to_rotvec(Rw2c @ rot), trans_c
