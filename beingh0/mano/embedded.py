"""Embedded default hand model: procedurally generated, MANO-compatible layout.

THIS IS NOT THE MANO MODEL.  The MANO hand model (Romero et al. 2017) is
licensed and cannot be redistributed, so beingh0 ships a deterministic,
generated stand-in with exactly MANO's array layout and parameter semantics.
Code written against MANO (forward kinematics, fitting, rendering, ``smplx``)
runs unchanged on it, but its shapes, blend shapes and pose space are
hand-made approximations, not learned from scans.

Layout (identical to ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``)
------------------------------------------------------------
``v_template (778,3)``, ``shapedirs (778,3,10)``, ``posedirs (778,3,135)``,
``J_regressor (16,778)``, ``weights (778,16)``, ``kintree_table (2,16)``,
``f (1538,3)``, ``hands_components (45,45)``, ``hands_mean (45,)``.

Joints (MANO order): 0 wrist; 1-3 index MCP/PIP/DIP; 4-6 middle; 7-9 pinky;
10-12 ring; 13-15 thumb CMC/MCP/IP.  ``hand_pose`` holds the axis-angle
rotations of joints 1..15 (3 numbers each), ``global_orient`` the wrist.

Rest frame (right hand, all-zero pose = ``v_template``)
-------------------------------------------------------
* Units are metres.  The wrist joint J0 is at ``WRIST_POSITION`` =
  (0.09, 0.005, 0.005), close to where MANO puts it.
* Fingers point along -x, the back of the hand faces +y (palm: -y), the thumb
  / index side is +z and the pinky side -z.
* Every joint has identity orientation at rest, so a pose rotation ``r`` of
  joint k rotates all descendants about J_k by R(r) expressed in the world
  frame at rest (standard SMPL/MANO LBS).
* Finger flexion (curling towards the palm) is a POSITIVE rotation about +z
  for the four fingers of the right hand: R_z(t) maps -x to (-cos t, -sin t, 0),
  i.e. towards -y.  Abduction towards the thumb is a positive rotation about
  +y.  The thumb's flexion axis is ``THUMB_FLEX_AXIS`` (tip moves towards
  the palm and the fingers).
* Left hand: the right model mirrored by x -> -x.  A left pose (rx, ry, rz)
  corresponds to the right pose (rx, -ry, -rz).

Anatomy (defaults, betas = 0)
-----------------------------
Wrist joint to MCP: index 86, middle 90, ring 86, pinky 77 mm.  Phalanges
(MCP-PIP, PIP-DIP, DIP-tip): index 40/24/22, middle 45/28/24, ring 42/26/23,
pinky 32/19/20 mm; thumb CMC-MCP-IP-tip 44/31/28 mm.  Wrist to middle
fingertip 187 mm, knuckle width ~82 mm, finger widths 17-20 mm, finger
thickness ~14-17 mm.  Thumb CMC at 26 mm distal, 17 mm radial and 12 mm
palmar of the wrist joint, thumb pointing ~43 deg radially from the fingers
and slightly palmar (a relaxed, abducted flat-hand thumb like MANO's).

Shape space (``betas``, ~N(0,1); see ``BETA_NAMES``): 0 overall size (+-6 %
per unit), 1 finger length vs palm length, 2 palm width, 3 thickness,
4 thumb length, 5 index vs ring length, 6 pinky length, 7 finger splay,
8 finger slenderness / taper, 9 thenar bulk.

Fingertip vertices: thumb 745, index 317, middle 444, ring 556, pinky 673
(most distal vertex of each digit); the smplx tip indices 744, 320, 443,
554, 671 lie ~1.5 mm from those.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import replace

import numpy as np

from . import constants as _C
from ._embedded_mesh import DIGITS, HandParams, Topology, make_topology, place_vertices

EMBEDDED_MODEL_VERSION = "1"
EMBEDDED_NOTE = (
    "beingh0 embedded hand model v1: procedurally generated, MANO-compatible layout; "
    "NOT the MANO model (no MANO data was used). Shapes, blend shapes and the pose PCA "
    "are hand-designed approximations for testing and for running without the licensed files."
)

NUM_VERTICES, NUM_FACES, NUM_JOINTS, NUM_BETAS = _C.NUM_VERTS, _C.NUM_FACES, _C.NUM_JOINTS, _C.NUM_BETAS
PARENTS = np.array(_C.PARENTS, dtype=np.int64)
WRIST_POSITION = np.array([0.09, 0.005, 0.005])
# fingertip vertex indices: most distal vertex (Being-H0's), and the index used by smplx
_TIP_NAMES = ("thumb", "index", "middle", "ring", "pinky")
TIP_VERTICES = dict(zip(_TIP_NAMES, _C.TIP_IDS_BEINGH0))
SMPLX_TIP_VERTICES = dict(zip(_TIP_NAMES, _C.TIP_IDS_SMPLX))
DIGIT_JOINTS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9),
                "ring": (10, 11, 12), "thumb": (13, 14, 15)}
BETA_NAMES = ("size", "finger_length", "palm_width", "thickness", "thumb_length",
              "index_vs_ring", "pinky_length", "splay", "slenderness", "thenar")

_SEED = 20240611  # fixed seed of the pose-PCA sampler


# --------------------------------------------------------------------------
# 1. geometry helpers
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _topology() -> Topology:
    return make_topology()


def _beta_params(i: int, b: float) -> HandParams:
    """Proportions for beta_i = b (all other betas zero)."""
    p = HandParams()
    if i == 0:
        return replace(p, scale=1.0 + 0.06 * b)
    if i == 1:
        for dgt in DIGITS:
            p = p.with_length(dgt, 1.0 + 0.05 * b)
        return replace(p, palm_length=1.0 - 0.03 * b)
    if i == 2:
        return replace(p, palm_width=1.0 + 0.05 * b)
    if i == 3:
        return replace(p, thickness=1.0 + 0.07 * b)
    if i == 4:
        return p.with_length("thumb", 1.0 + 0.07 * b)
    if i == 5:
        return p.with_length("index", 1.0 + 0.04 * b).with_length("ring", 1.0 - 0.04 * b)
    if i == 6:
        return p.with_length("pinky", 1.0 + 0.06 * b)
    if i == 7:
        return replace(p, spread=1.0 + 0.6 * b)
    if i == 8:
        return replace(p, finger_radius=1.0 - 0.05 * b, taper=0.15 * b)
    if i == 9:
        return replace(p, thenar=1.0 + 0.15 * b)
    raise ValueError(i)


def _vertex_normals(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n = np.zeros_like(V)
    for q in range(3):
        np.add.at(n, F[:, q], fn)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _segment_distance(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip((P - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(P - (a + t[:, None] * ab), axis=1)


def _vertex_digit(topo: Topology) -> np.ndarray:
    """Region of each vertex: -1 palm, -2 wrist stub, n = index into DIGITS."""
    lab = np.full(topo.n_vertices, -1, dtype=np.int64)
    lab[topo.rings["wrist"].ravel()] = -2
    for n, dgt in enumerate(DIGITS):
        lab[topo.rings[dgt].ravel()] = n
        lab[[topo.tip[dgt], topo.tip2[dgt]]] = n
    return lab


# --------------------------------------------------------------------------
# 2. rigging: skinning weights, joint regressor, pose correctives
# --------------------------------------------------------------------------
def _skinning_weights(V, sk, lab) -> np.ndarray:
    """LBS weights from distances to bones, blended over a few millimetres.

    Bone k is the segment from J_k to its child (DIP/IP: to the skin tip);
    bone 0 is the palm (wrist to every MCP / CMC, plus a forearm stub).
    w_k ~ exp(-((d_k - d_min) / 2 mm)^2), restricted to bones a region may
    follow: palm -> wrist, MCPs, thumb CMC; a digit -> wrist + its own chain.
    Near a joint (d_prox ~ d_dist) this gives a smooth ~50/50 blend that
    fades out ~6-10 mm from the joint (more on the palm, where the skin is
    further from the bones).
    """
    J = sk.joints
    dist = np.full((len(V), NUM_JOINTS), np.inf)
    segs0 = [(J[0], J[0] + np.array([0.03, 0.0, 0.0]))]
    for dgt in DIGITS:
        j1, j2, j3 = DIGIT_JOINTS[dgt]
        segs0.append((J[0], J[j1]))
        for a, b in ((j1, j2), (j2, j3)):
            dist[:, a] = _segment_distance(V, J[a], J[b])
        dist[:, j3] = _segment_distance(V, J[j3], sk.tips[dgt] - 0.003 * sk.axis[dgt])
    dist[:, 0] = np.min([_segment_distance(V, a, b) for a, b in segs0], axis=0)
    allowed = np.zeros((len(V), NUM_JOINTS), bool)
    allowed[:, 0] = True
    allowed[lab == -1, :] = False
    allowed[np.ix_(lab == -1, [0, 1, 4, 7, 10, 13])] = True
    for n, dgt in enumerate(DIGITS):
        allowed[np.ix_(lab == n, list(DIGIT_JOINTS[dgt]))] = True
    dist[~allowed] = np.inf
    dmin = dist.min(1, keepdims=True)
    w = np.exp(-(((dist - dmin) / 0.002) ** 2))
    w[w < 1e-4] = 0.0
    return w / w.sum(1, keepdims=True)


def _regress_point(Vc: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights (sum 1) over Vc whose average is exactly target.

    Starts from inverse-distance weights and applies the minimum-norm
    correction satisfying the 4 linear constraints; vertices that would get a
    negative weight are dropped and the solve repeated.
    """
    w0 = 1.0 / (np.linalg.norm(Vc - target, axis=1) + 1e-3)
    active = np.ones(len(Vc), bool)
    for _ in range(len(Vc)):
        A = np.vstack([Vc[active].T, np.ones(active.sum())])
        w_a = w0[active] / w0[active].sum()
        w_a = w_a + np.linalg.pinv(A, rcond=1e-10) @ (np.append(target, 1.0) - A @ w_a)
        if w_a.min() >= 0 and np.allclose(A @ w_a, np.append(target, 1.0), atol=1e-9):
            w = np.zeros(len(Vc))
            w[active] = w_a
            return w
        if w_a.min() >= 0:
            break  # target not reachable with these vertices
        active[np.flatnonzero(active)[np.argmin(w_a)]] = False  # drop the most negative one
    return None


def _joint_regressor(V, sk, lab, topo) -> np.ndarray:
    """Each joint = weighted average of the vertices surrounding it.

    PIP/DIP and thumb MCP/IP use the mesh ring placed on the joint; wrist,
    MCPs and thumb CMC (inside the palm) use their 24 (or, if needed to
    surround the joint, up to 96) nearest palm/stub vertices.  Weights reproduce the skeleton exactly at betas = 0.
    """
    R = np.zeros((NUM_JOINTS, len(V)))
    for k in range(NUM_JOINTS):
        dgt = next((d for d, js in DIGIT_JOINTS.items() if k in js), None)
        if dgt is not None and k != DIGIT_JOINTS[dgt][0]:
            idx = topo.rings[dgt][_joint_station(dgt, k)]
        else:
            cand = np.flatnonzero(lab < 0)
            near = cand[np.argsort(np.linalg.norm(V[cand] - sk.joints[k], axis=1))]
            for n in (24, 32, 48, 64, 96):  # smallest neighbourhood that surrounds the joint
                w = _regress_point(V[near[:n]], sk.joints[k])
                if w is not None:
                    R[k, near[:n]] = w
                    break
            else:
                raise RuntimeError(f"joint {k} is not surrounded by mesh vertices")
            continue
        R[k, idx] = _regress_point(V[idx], sk.joints[k])
    return R


def _joint_station(dgt: str, k: int) -> int:
    """Index of the ring placed exactly on joint k (see ``_digit_profile``)."""
    second = DIGIT_JOINTS[dgt][1]
    if dgt == "thumb":
        return {14: 1, 15: 5}[k]
    return {second: 2, second + 1: 5}[k]


def _pose_feature_index(k: int, i: int, j: int) -> int:
    """Column of posedirs for element (i, j) of (R_k - I), k = 1..15."""
    return 9 * (k - 1) + 3 * i + j


def _pose_correctives(V, sk, W) -> np.ndarray:
    """Pose blend shapes (778, 3, 135): skin bulges near each bent joint.

    For joint k with bone direction d, nail-side direction P and flexion axis
    L = P x d, and a compact bump b(v) = (1 - t^2)^3 (1 - r^2)^2 with t the
    distance along the bone from J_k over 10 mm (14 mm at MCP/CMC) and r the
    distance from the bone axis over 20 mm, limited to vertices skinned to k
    or its parent:
      * palmar bulge  4 mm x sin(flexion)   on the palm side  (n.P < 0),
      * knuckle       3 mm x (1 - cos(angle)) on the back    (n.P > 0),
      * side bulge    1.5 mm x sin(abduction) on the side the digit bends to.
    (peak values; the skin ring at a joint gets ~70 % of them, i.e. 2-3 mm
    at 90 degrees).  Displacements are along the rest normal, linear in the
    entries of R_k - I (sin terms from the skew part, 1 - cos from the
    trace), and exactly zero beyond ~25 mm from the joint.
    """
    F = _topology().faces
    N = _vertex_normals(V, F)
    P = np.zeros((len(V), 3, 135))
    for k in range(1, NUM_JOINTS):
        dgt = next(d for d, js in DIGIT_JOINTS.items() if k in js)
        d, dor, lat = sk.axis[dgt], sk.dorsal[dgt], sk.lateral[dgt]
        rel = V - sk.joints[k]
        t = (rel @ d) / (0.014 if k == DIGIT_JOINTS[dgt][0] else 0.010)  # along the bone
        r = np.linalg.norm(rel - np.outer(rel @ d, d), axis=1) / 0.020  # away from the axis
        bump = (np.clip(1.0 - t * t, 0.0, None) ** 3 * np.clip(1.0 - r * r, 0.0, None) ** 2
                * np.clip(W[:, k] + W[:, PARENTS[k]], 0.0, 1.0))
        nd = N @ dor
        flex = (0.004 * bump * np.clip(-nd, 0, None))[:, None] * N
        knuckle = (0.003 * bump * np.clip(nd, 0, None))[:, None] * N
        side = (0.0015 * bump * (N @ lat))[:, None] * N
        # sin-like coefficient of rotation about axis u: sum_ij C_ij (R - I)_ij
        for disp, u in ((flex, lat), (side, dor)):
            for (i, j), c in (((2, 1), u[0]), ((1, 2), -u[0]), ((0, 2), u[1]),
                              ((2, 0), -u[1]), ((1, 0), u[2]), ((0, 1), -u[2])):
                P[:, :, _pose_feature_index(k, i, j)] += 0.5 * c * disp
        for i in range(3):  # 1 - cos(angle) = -trace(R - I) / 2
            P[:, :, _pose_feature_index(k, i, i)] -= 0.5 * knuckle
    return P


# --------------------------------------------------------------------------
# 3. pose space: relaxed mean pose and PCA of synergy samples
# --------------------------------------------------------------------------
def _relaxed_pose(sk) -> np.ndarray:
    """A relaxed, slightly curled hand (axis-angle, joints 1..15)."""
    pose = np.zeros((15, 3))
    mcp = {"index": 0.10, "middle": 0.15, "ring": 0.20, "pinky": 0.25}
    for dgt, m in mcp.items():
        j1, j2, j3 = DIGIT_JOINTS[dgt]
        u = sk.lateral[dgt]
        pose[j1 - 1], pose[j2 - 1], pose[j3 - 1] = m * u, (m + 0.12) * u, 0.12 * u
    ut, pt = sk.lateral["thumb"], sk.dorsal["thumb"]
    pose[12] = 0.20 * ut - 0.10 * pt
    pose[13], pose[14] = 0.10 * ut, 0.15 * ut
    return pose.ravel()


def _pose_samples(sk, n: int = 3000) -> np.ndarray:
    """Plausible hand poses from simple finger synergies (fixed seed).

    grasp g in [-0.15, 1.35] rad drives all fingers; each finger gets its own
    curl c = g + N(0, 0.25); MCP = 0.9 c, PIP = 1.1 c, DIP = 2/3 PIP; splay
    s ~ N(0, 0.12) fans the fingers (index +s ... pinky -1.1 s); the thumb
    opposes with o = g + N(0, 0.3).  Independent 0.04 rad noise on every
    coordinate keeps the covariance full rank.
    """
    rng = np.random.default_rng(_SEED)
    g = rng.uniform(-0.15, 1.35, n)
    spread = rng.normal(0, 0.12, n) * (1.0 - 0.5 * np.clip(g, 0, 1))
    X = np.zeros((n, 15, 3))
    fan = {"index": 1.0, "middle": 0.1, "ring": -0.6, "pinky": -1.1}
    for dgt, fs in fan.items():
        j1, j2, j3 = DIGIT_JOINTS[dgt]
        u, P = sk.lateral[dgt], sk.dorsal[dgt]
        c = g + rng.normal(0, 0.25, n)
        mcp = np.clip(0.9 * c + rng.normal(0, 0.1, n), -0.4, 1.6)
        pip = np.clip(1.1 * c + rng.normal(0, 0.1, n), -0.05, 1.9)
        dip = np.clip(2.0 / 3.0 * pip + rng.normal(0, 0.05, n), -0.05, 1.3)
        X[:, j1 - 1] = mcp[:, None] * u + (fs * spread)[:, None] * P
        X[:, j2 - 1] = pip[:, None] * u
        X[:, j3 - 1] = dip[:, None] * u
    ut, pt, dt = sk.lateral["thumb"], sk.dorsal["thumb"], sk.axis["thumb"]
    o = np.clip(g + rng.normal(0, 0.3, n), -0.3, 1.5)
    abd = rng.normal(0, 0.2, n)
    X[:, 12] = (0.5 * o)[:, None] * ut + abd[:, None] * pt + (0.3 * o)[:, None] * dt
    X[:, 13] = (0.4 * o + rng.normal(0, 0.15, n))[:, None] * ut
    X[:, 14] = (0.6 * o + rng.normal(0, 0.2, n))[:, None] * ut
    X = X.reshape(n, 45) + _relaxed_pose(sk) + rng.normal(0, 0.04, (n, 45))
    return X


def _pose_pca(sk) -> tuple[np.ndarray, np.ndarray]:
    X = _pose_samples(sk)
    Xc = X - X.mean(0)
    var, vecs = np.linalg.eigh(Xc.T @ Xc / len(X))
    Vt = vecs[:, ::-1].T  # rows = components, most variance first
    Vt = Vt * np.sign(Vt[np.arange(45), np.abs(Vt).argmax(1)])[:, None]  # deterministic signs
    return Vt, _relaxed_pose(sk)


# --------------------------------------------------------------------------
# 4. assembling the model
# --------------------------------------------------------------------------
def _vertex_permutation(topo: Topology) -> np.ndarray:
    """perm[new] = old: puts the fingertip vertices at MANO's indices."""
    fixed = {}
    for dgt in DIGITS:
        fixed[TIP_VERTICES[dgt]] = topo.tip[dgt]
        fixed[SMPLX_TIP_VERTICES[dgt]] = topo.tip2[dgt]
    rest = iter(v for v in range(topo.n_vertices) if v not in set(fixed.values()))
    return np.array([fixed[n] if n in fixed else next(rest) for n in range(topo.n_vertices)])


@functools.lru_cache(maxsize=1)
def _right_model() -> dict:
    topo = _topology()
    p0 = HandParams()
    # 1. template and skeleton (local frame, wrist joint at the origin)
    V, sk = place_vertices(topo, p0)
    lab = _vertex_digit(topo)
    # 2. skinning weights and joint regressor
    W = _skinning_weights(V, sk, lab)
    R = _joint_regressor(V, sk, lab, topo)
    # 3. shape blend shapes: central differences of the generator (h = 1 beta)
    S = np.stack([0.5 * (place_vertices(topo, _beta_params(i, 1.0))[0]
                         - place_vertices(topo, _beta_params(i, -1.0))[0]) for i in range(NUM_BETAS)], -1)
    # 4. pose blend shapes and pose space
    Pd = _pose_correctives(V, sk, W)
    comps, mean = _pose_pca(sk)
    # 5. permute vertices (fingertip indices) and move the wrist to WRIST_POSITION
    perm = _vertex_permutation(topo)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    kin = np.stack([PARENTS, np.arange(NUM_JOINTS, dtype=np.int64)])
    return {
        "v_template": V[perm] + WRIST_POSITION,
        "shapedirs": S[perm],
        "posedirs": Pd[perm],
        "J_regressor": R[:, perm],
        "weights": W[perm],
        "kintree_table": kin,
        "f": inv[topo.faces].astype(np.int64),
        "hands_components": comps,
        "hands_mean": mean,
    }


_MIRROR = np.array([-1.0, 1.0, 1.0])
_POSE_MIRROR = np.tile([1.0, -1.0, -1.0], 15)  # left (rx, ry, rz) <-> right (rx, -ry, -rz)


def mirror_model(model: dict) -> dict:
    """Mirror a model by x -> -x (right <-> left), MANO's left/right relation.

    Pose features (R_k - I)_ij change sign by M_ii M_jj under R -> M R M with
    M = diag(-1, 1, 1), so posedirs columns are mirrored and multiplied by it.
    """
    m = {k: np.array(v, copy=True) for k, v in model.items()}
    m["v_template"] = m["v_template"] * _MIRROR
    m["shapedirs"] = m["shapedirs"] * _MIRROR[None, :, None]
    sgn = np.outer(_MIRROR, _MIRROR).ravel()  # M_ii M_jj, row-major
    m["posedirs"] = m["posedirs"] * _MIRROR[None, :, None] * np.tile(sgn, 15)[None, None, :]
    m["f"] = m["f"][:, [0, 2, 1]]
    m["hands_components"] = m["hands_components"] * _POSE_MIRROR[None, :]
    m["hands_mean"] = m["hands_mean"] * _POSE_MIRROR
    return m


@functools.lru_cache(maxsize=2)
def _cached_model(side: str) -> dict:
    model = _right_model()
    return mirror_model(model) if side == "left" else model


def generate_hand_model(side: str = "right") -> dict[str, np.ndarray]:
    """The embedded (NOT MANO) hand model as a dict of MANO-layout arrays.

    Deterministic; the result is cached and a fresh copy is returned each
    call.  ``side`` is "right" or "left" (the left model is the right one
    mirrored by x -> -x).
    """
    side = side.lower()
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return {k: v.copy() for k, v in _cached_model(side).items()}


def write_mano_pickle(model: dict, path) -> None:
    """Write ``model`` as a MANO-style pickle (plain numpy, protocol 2).

    Loadable by ``smplx`` (name the file ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``
    when passing a file path: smplx infers the model type and side from the
    file name).  Adds ``J`` (rest joints), ``bs_style``/``bs_type`` like the
    original files, and the provenance keys ``beingh0_note`` and
    ``beingh0_version``.
    """
    keys = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
            "hands_components", "hands_mean")
    data = {k: np.ascontiguousarray(model[k]) for k in keys}
    data["f"] = data["f"].astype(np.int64)
    data["kintree_table"] = data["kintree_table"].astype(np.int64)
    data["J"] = data["J_regressor"] @ data["v_template"]
    data["bs_style"] = "lbs"
    data["bs_type"] = "lrotmin"
    data["beingh0_note"] = EMBEDDED_NOTE
    data["beingh0_version"] = EMBEDDED_MODEL_VERSION
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
