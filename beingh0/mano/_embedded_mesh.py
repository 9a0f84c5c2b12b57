"""Procedural hand mesh used by :mod:`beingh0.mano.embedded` (NOT the MANO mesh).

This module only builds geometry: a fixed topology (778 vertices, 1538
triangles, one 16-edge hole at the wrist) and a function that places the
vertices for a given set of anatomical proportions.  Rigging (skinning
weights, joint regressor, blend shapes, pose PCA) lives in ``embedded.py``.

Local frame used here (right hand, rest pose, metres)
----------------------------------------------------
The wrist joint J0 is at the local origin; ``embedded.py`` translates
everything by ``WRIST_POSITION`` at the end.  Fingers point along -x, the
back of the hand faces +y, the thumb / index side is +z.  It is convenient to
talk about the *distal distance* ``a = -x`` (how far a point is from the
wrist towards the fingertips).

Construction
------------
1. Palm: the surface of a 5 x 3 x 15 quad lattice box (a x y x z), placed on
   a rounded (super-elliptic) cross-section whose size follows the palm:
   heel at a = 6 mm, knuckle web line at a = MCP + 3..17 mm.
2. Holes: patches of the box are removed -- a 5x3 patch of the proximal face
   (16 boundary edges: the wrist opening), four 3x3 patches of the distal
   face (one per finger, 12-vertex boundary loops) and a 3x3 patch folded
   around the radial-palmar edge (the thumb base, i.e. thenar region).
3. Tubes: each finger / thumb is a sequence of 12-vertex elliptical rings
   around its bone axis (rings sit on the joints and a few mm either side so
   the joints bend cleanly), closed by a fan around a tip vertex.  One extra
   vertex ~1.5 mm from each tip reproduces the second fingertip index used by
   smplx.  The wrist gets two 16-vertex rings (a short forearm stub); the
   last one is the open boundary.
4. The palm vertices are Taubin-smoothed (tube rings stay fixed) to round the
   box, quads are split along their shorter diagonal and the faces are
   oriented consistently outwards.

Counts: palm lattice 272 - 28 removed = 244, wrist stub 2 x 16 = 32,
four fingers x (8 rings x 12 + 2) = 392, thumb 9 x 12 + 2 = 110: 778 vertices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

NX, NY, NZ = 5, 3, 15  # palm lattice resolution (distal, dorsal, radial)
RING = 12  # vertices per finger ring
WRIST_RING = 16  # vertices per wrist ring (= boundary edges of the opening)

FINGERS = ("index", "middle", "pinky", "ring")  # MANO chain order (joints 1.., 4.., 7.., 10..)
DIGITS = FINGERS + ("thumb",)
# first column k0 of each finger's 3x3 patch on the distal palm face
_FINGER_K0 = {"pinky": 0, "ring": 4, "middle": 8, "index": 12}
_N_RINGS = {"index": 8, "middle": 8, "pinky": 8, "ring": 8, "thumb": 9}


# --------------------------------------------------------------------------
# anatomical parameters
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class HandParams:
    """Anatomical proportions of the generated hand (metres / radians).

    Default values describe an adult hand: wrist joint to middle fingertip
    0.090 + 0.045 + 0.028 + 0.024 = 0.187 m, knuckle width ~0.082 m.
    Phalanx lengths are joint-to-joint (last one: DIP/IP joint to the skin
    at the tip).
    """

    scale: float = 1.0  # global size about the wrist joint
    palm_length: float = 1.0  # multiplies the distal distance of palm/MCPs
    palm_width: float = 1.0  # multiplies the z extent of palm and knuckles
    thickness: float = 1.0  # multiplies palm thickness and finger radii
    finger_radius: float = 1.0  # extra factor on finger radii only
    taper: float = 0.0  # >0: fingertips relatively thicker
    spread: float = 1.0  # multiplies the resting finger splay angles
    thenar: float = 1.0  # thumb base bulk / thumb CMC radial offset
    # length factors per digit
    length: tuple = (("index", 1.0), ("middle", 1.0), ("pinky", 1.0), ("ring", 1.0), ("thumb", 1.0))

    # --- nominal anatomy (not driven by betas directly) ---
    # (MCP->PIP, PIP->DIP, DIP->tip); thumb: (CMC->MCP, MCP->IP, IP->tip)
    phalanges: tuple = (
        ("index", (0.040, 0.024, 0.022)),
        ("middle", (0.045, 0.028, 0.024)),
        ("pinky", (0.032, 0.019, 0.020)),
        ("ring", (0.042, 0.026, 0.023)),
        ("thumb", (0.044, 0.031, 0.028)),
    )
    # distal distance of each MCP joint from the wrist joint
    mcp_a: tuple = (("index", 0.086), ("middle", 0.090), ("pinky", 0.077), ("ring", 0.086))
    # z of each finger axis at its MCP, and half-width of the finger base
    mcp_z: tuple = (("index", 0.0290), ("middle", 0.0075), ("pinky", -0.0345), ("ring", -0.0140))
    half_width: tuple = (("index", 0.0098), ("middle", 0.0099), ("pinky", 0.0083), ("ring", 0.0093),
                         ("thumb", 0.0115))
    # resting splay (rotation about +y, positive = towards the thumb side)
    splay: tuple = (("index", 0.05), ("middle", 0.0), ("pinky", -0.12), ("ring", -0.05))
    # thumb CMC (distal distance a, y, z) and direction (a, y, z) at rest
    thumb_cmc: tuple = (0.026, -0.012, 0.017)
    thumb_dir: tuple = (0.72, -0.16, 0.68)

    def get(self, name: str, key: str):
        return dict(getattr(self, name))[key]

    def with_length(self, digit: str, factor: float) -> "HandParams":
        d = dict(self.length)
        d[digit] = d[digit] * factor
        return replace(self, length=tuple(d.items()))


@dataclass
class Skeleton:
    """Joint positions (local frame, J0 at the origin) and per-digit frames."""

    joints: np.ndarray  # (16, 3)
    tips: dict = field(default_factory=dict)  # digit -> (3,) skin tip on the axis
    axis: dict = field(default_factory=dict)  # digit -> unit bone direction (straight digits)
    dorsal: dict = field(default_factory=dict)  # digit -> unit "nail side" direction
    lateral: dict = field(default_factory=dict)  # digit -> flexion axis (= dorsal x axis)
    lengths: dict = field(default_factory=dict)  # digit -> (3,) phalanx lengths
    base_joint: dict = field(default_factory=dict)  # digit -> index of its first joint


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def skeleton(p: HandParams) -> Skeleton:
    """Joint locations for the given proportions (MANO joint order)."""
    s = p.scale
    joints = np.zeros((16, 3))
    sk = Skeleton(joints=joints)
    lengths = dict(p.length)
    for n, digit in enumerate(DIGITS):
        base = 1 + 3 * n
        ph = np.array(p.get("phalanges", digit)) * lengths[digit] * s
        if digit == "thumb":
            a, y, z = p.thumb_cmc
            start = np.array([-a * p.palm_length, y * p.thickness, z * p.palm_width * p.thenar]) * s
            da, dy, dz = p.thumb_dir
            d = _unit([-da, dy, dz])
            dorsal = _unit(np.array([0.0, 0.6, 0.8]) - d * np.dot(d, [0.0, 0.6, 0.8]))
        else:
            start = np.array([-p.get("mcp_a", digit) * p.palm_length, 0.0,
                              p.get("mcp_z", digit) * p.palm_width]) * s
            phi = p.get("splay", digit) * p.spread
            d = np.array([-np.cos(phi), 0.0, np.sin(phi)])
            dorsal = np.array([0.0, 1.0, 0.0])
        joints[base] = start
        joints[base + 1] = start + ph[0] * d
        joints[base + 2] = start + (ph[0] + ph[1]) * d
        sk.tips[digit] = start + ph.sum() * d
        sk.axis[digit] = d
        sk.dorsal[digit] = dorsal
        sk.lateral[digit] = np.cross(dorsal, d)
        sk.lengths[digit] = ph
        sk.base_joint[digit] = base
    return sk


# --------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------
@dataclass
class Topology:
    n_lattice: int
    lattice_keys: list  # vertex id -> (i, j, k) for palm vertices
    loops: dict  # "wrist" / digit -> ordered vertex ids of the patch boundary
    rings: dict  # "wrist" / digit -> (n_rings, n) vertex ids (excluding loop 0)
    tip: dict  # digit -> tip vertex id
    tip2: dict  # digit -> second tip vertex id (smplx convention)
    polys: list  # quads and triangles (before triangulation)
    pad: dict = field(default_factory=dict)  # digit -> ring position split by tip2
    faces: np.ndarray | None = None  # (F, 3) triangles, consistently oriented
    edges: np.ndarray | None = None  # (E, 2) polygon edges (for smoothing)
    n_vertices: int = 0


def _quad_key(q):
    return frozenset(q)


def _box_quads():
    quads = []
    for i in (0, NX):
        for j in range(NY):
            for k in range(NZ):
                quads.append(((i, j, k), (i, j + 1, k), (i, j + 1, k + 1), (i, j, k + 1)))
    for j in (0, NY):
        for i in range(NX):
            for k in range(NZ):
                quads.append(((i, j, k), (i + 1, j, k), (i + 1, j, k + 1), (i, j, k + 1)))
    for k in (0, NZ):
        for i in range(NX):
            for j in range(NY):
                quads.append(((i, j, k), (i + 1, j, k), (i + 1, j + 1, k), (i, j + 1, k)))
    return quads


def _patches():
    """Sets of lattice quads removed from the palm box (see module docstring)."""
    P = {}
    P["wrist"] = {_quad_key(((0, j, k), (0, j + 1, k), (0, j + 1, k + 1), (0, j, k + 1)))
                  for j in range(NY) for k in range(5, 10)}
    for f, k0 in _FINGER_K0.items():
        P[f] = {_quad_key(((NX, j, k), (NX, j + 1, k), (NX, j + 1, k + 1), (NX, j, k + 1)))
                for j in range(NY) for k in range(k0, k0 + 3)}
    thumb = {_quad_key(((i, 0, NZ - 1), (i + 1, 0, NZ - 1), (i + 1, 0, NZ), (i, 0, NZ))) for i in range(1, 4)}
    thumb |= {_quad_key(((i, j, NZ), (i + 1, j, NZ), (i + 1, j + 1, NZ), (i, j + 1, NZ)))
              for i in range(1, 4) for j in range(2)}
    P["thumb"] = thumb
    return P


def _boundary_loop(quads):
    """Ordered boundary loop of a disk-shaped set of quads (lists of keys)."""
    count = {}
    for q in quads:
        for a, b in zip(q, q[1:] + q[:1]):
            e = frozenset((a, b))
            count[e] = count.get(e, 0) + 1
    bedges = [tuple(sorted(e)) for e, c in count.items() if c == 1]
    nbr = {}
    for a, b in bedges:
        nbr.setdefault(a, []).append(b)
        nbr.setdefault(b, []).append(a)
    start = min(nbr)
    loop = [start, min(nbr[start])]
    while True:
        nxt = [v for v in nbr[loop[-1]] if v != loop[-2]][0]
        if nxt == start:
            break
        loop.append(nxt)
    inner = {v for q in quads for v in q} - set(loop)
    return loop, inner


def build_topology() -> Topology:
    """Connectivity (independent of proportions) plus ordering conventions."""
    # 1. palm lattice surface
    keys = [(i, j, k) for i in range(NX + 1) for j in range(NY + 1) for k in range(NZ + 1)
            if i in (0, NX) or j in (0, NY) or k in (0, NZ)]
    quads = _box_quads()
    # 2. remove patches
    patches = _patches()
    removed = set().union(*patches.values())
    loops_k, inner = {}, set()
    for name, pset in patches.items():
        pq = [q for q in quads if _quad_key(q) in pset]
        assert len(pq) == len(pset)
        loops_k[name], inn = _boundary_loop(pq)
        inner |= inn
    keys = [kk for kk in keys if kk not in inner]
    vid = {kk: n for n, kk in enumerate(keys)}
    polys = [[vid[v] for v in q] for q in quads if _quad_key(q) not in removed]
    loops = {name: [vid[v] for v in lp] for name, lp in loops_k.items()}
    n = len(keys)
    # orient every loop so that its ring angle increases along the loop
    tmp = Topology(n_lattice=n, lattice_keys=keys, loops=loops, rings={}, tip={}, tip2={}, polys=[])
    p0 = HandParams()
    sk0 = skeleton(p0)
    pos = _palm_lattice(tmp, p0, sk0)
    for name, lp in loops.items():
        P = pos[lp]
        if name == "wrist":
            lat, dor = np.array([0, 0, 1.0]), np.array([0, 1.0, 0])
        else:
            lat, dor = sk0.lateral[name], sk0.dorsal[name]
        th = np.unwrap(_ring_angles(P, P.mean(0), lat, dor, 1.0, 1.0))
        if th[-1] < th[0]:
            loops[name] = [lp[0]] + lp[1:][::-1]
    # 3. tubes
    rings, tip, tip2 = {}, {}, {}
    order = [("wrist", 2)] + [(d, _N_RINGS[d]) for d in DIGITS]
    for name, nr in order:
        m = len(loops[name])
        ids = np.arange(n, n + nr * m).reshape(nr, m)
        n += nr * m
        rings[name] = ids
        prev = loops[name]
        for r in range(nr):
            cur = list(ids[r])
            for q in range(m):
                polys.append([prev[q], prev[(q + 1) % m], cur[(q + 1) % m], cur[q]])
            prev = cur
        if name != "wrist":
            tip[name], tip2[name] = n, n + 1
            n += 2
    return Topology(n_lattice=len(keys), lattice_keys=keys, loops=loops, rings=rings,
                    tip=tip, tip2=tip2, polys=polys, n_vertices=n)


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
def _palm_rows(p: HandParams):
    """Per-row distal distance, dorsal / palmar half-thickness (nominal, unscaled)."""
    a_rows = np.array([0.006, 0.021, 0.036, 0.051, 0.066]) * p.palm_length
    top = np.array([0.0140, 0.0142, 0.0138, 0.0128, 0.0115, 0.0086]) * p.thickness
    bot = np.array([0.0150, 0.0150, 0.0145, 0.0138, 0.0128, 0.0092]) * p.thickness
    return a_rows, top, bot


def _finger_of_column(k):
    for f, k0 in _FINGER_K0.items():
        if k0 <= k <= k0 + 3:
            return f, (k - k0) / 3.0
    raise ValueError(k)


def _palm_lattice(topo: Topology, p: HandParams, sk: Skeleton) -> np.ndarray:
    """Positions of the palm lattice vertices (before smoothing), unscaled."""
    s = p.scale
    a_rows, top, bot = _palm_rows(p)
    # z of the lattice columns at the heel (i=0) and at the knuckles (i=NX)
    w = p.palm_width
    z_heel = np.concatenate([np.linspace(-0.044, -0.026, 6)[:-1], np.linspace(-0.026, 0.026, 6)[:-1],
                             np.linspace(0.026, 0.036 + 0.004 * p.thenar, 6)]) * w
    z_knuckle = np.zeros(NZ + 1)
    a_web = np.zeros((NZ + 1, NY + 1))
    for k in range(NZ + 1):
        f, t = _finger_of_column(k)
        hw = p.get("half_width", f) * p.thickness * p.finger_radius
        z_knuckle[k] = p.get("mcp_z", f) * w + hw * (2 * t - 1)
        mcp = p.get("mcp_a", f) * p.palm_length
        a_web[k] = mcp + np.linspace(0.017, 0.003, NY + 1) * p.thickness
    out = np.zeros((topo.n_lattice, 3))
    for n, (i, j, k) in enumerate(topo.lattice_keys):
        ti = i / NX
        z = z_heel[k] + (z_knuckle[k] - z_heel[k]) * ti ** 0.6
        z_lo = z_heel[0] + (z_knuckle[0] - z_heel[0]) * ti ** 0.6
        z_hi = z_heel[NZ] + (z_knuckle[NZ] - z_heel[NZ]) * ti ** 0.6
        if i == NX:
            a = a_web[k, j]
        else:
            f, _ = _finger_of_column(k)
            a = a_rows[i] + (0.5 * (p.get("mcp_a", f) - 0.090) * p.palm_length if i == NX - 1 else 0.0)
        u = (2 * z - z_lo - z_hi) / (z_hi - z_lo)  # -1 ulnar .. +1 radial
        y_top = top[i] * (1.0 - 0.25 * u * u)
        y_bot = -bot[i] * (1.0 - 0.1 * u * u)
        if i < NX - 1:  # thenar (radial) and hypothenar (ulnar) pads of the palm
            y_bot -= p.thickness * (0.006 * p.thenar * max(u - 0.3, 0.0) / 0.7
                                    + 0.004 * max(-u - 0.4, 0.0) / 0.6)
        y = y_bot + (y_top - y_bot) * j / NY
        on_rim = j in (0, NY) or k in (0, NZ)
        if on_rim:  # super-elliptic rounding of the cross-section
            ym, yh = 0.5 * (y_top + y_bot), 0.5 * (y_top - y_bot)
            zm, zh = 0.5 * (z_lo + z_hi), 0.5 * (z_hi - z_lo)
            uu, vv = (z - zm) / zh, (y - ym) / yh
            sc = (abs(uu) ** 4 + abs(vv) ** 4) ** -0.25
            z, y = zm + sc * uu * zh, ym + sc * vv * yh
        out[n] = (-a, y, z)
    return out * s


def _ring_angles(loop_pos, center, lat, dor, rl, rp):
    """Angles of ring-0 vertices in a digit's cross-section frame."""
    rel = loop_pos - center
    return np.arctan2(rel @ dor / rp, rel @ lat / rl)


def _fit_phase(theta0, m):
    """Phase of evenly spaced angles best matching theta0 (assumed increasing)."""
    base = 2 * np.pi * np.arange(m) / m
    return np.angle(np.exp(1j * (theta0 - base)).mean())


def _digit_profile(digit, p: HandParams, sk: Skeleton):
    """Ring stations along the digit axis and the ring radii there.

    Returns (s, half_width, half_thickness) arrays, s measured from the first
    joint of the digit (MCP, or CMC for the thumb).  Rings are placed on the
    joints and a few millimetres either side so that they bend cleanly.
    """
    L1, L2, L3 = sk.lengths[digit]
    tot = L1 + L2 + L3
    sc = p.scale
    hw0 = p.get("half_width", digit) * p.thickness * p.finger_radius * sc
    if digit == "thumb":
        s = np.array([L1 - 0.010 * sc, L1, L1 + 0.008 * sc, L1 + 0.5 * L2, L1 + L2 - 0.006 * sc, L1 + L2,
                      L1 + L2 + 0.45 * L3, tot - 0.0095 * sc, tot - 0.0035 * sc])
        rel_w = np.array([1.04, 1.05, 1.0, 0.93, 0.92, 0.93, 0.90, 0.86, 0.60])
        thick = 0.88
    else:
        web = 0.016 * sc
        s = np.array([0.5 * (web + L1 - 0.006 * sc), L1 - 0.006 * sc, L1, L1 + 0.006 * sc,
                      L1 + L2 - 0.005 * sc, L1 + L2, L1 + L2 + 0.45 * L3, tot - 0.0035 * sc])
        rel_w = np.array([0.97, 0.93, 0.95, 0.90, 0.84, 0.85, 0.82, 0.58])
        thick = 0.86
    taper = 1.0 + p.taper * (s / tot - 0.5)
    hw = hw0 * rel_w * taper
    ht = hw * thick
    return s, hw, ht


def place_vertices(topo: Topology, p: HandParams, smooth_iters: int = 10) -> tuple[np.ndarray, Skeleton]:
    """Vertex positions (local frame, J0 at origin) for the given proportions."""
    sk = skeleton(p)
    V = np.zeros((topo.n_vertices, 3))
    V[: topo.n_lattice] = _palm_lattice(topo, p, sk)
    # wrist stub: two elliptical rings proximal of the heel
    loop = topo.loops["wrist"]
    s = p.scale
    for r, (a, hw, ht) in enumerate([(-0.006, 0.0275, 0.0185), (-0.024, 0.0265, 0.0180)]):
        hw, ht = hw * p.palm_width * s, ht * p.thickness * s
        c = np.array([-a * s * p.palm_length, -0.0005 * s, 0.0])
        th = _ring_angles(V[loop], c, np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), hw, ht)
        ph = _fit_phase(th, WRIST_RING)
        ang = ph + 2 * np.pi * np.arange(WRIST_RING) / WRIST_RING
        V[topo.rings["wrist"][r]] = c + np.stack([np.zeros_like(ang), ht * np.sin(ang), hw * np.cos(ang)], 1)
    # digits
    for digit in DIGITS:
        base = sk.joints[sk.base_joint[digit]]
        d, dor, lat = sk.axis[digit], sk.dorsal[digit], sk.lateral[digit]
        st, hw, ht = _digit_profile(digit, p, sk)
        loop = topo.loops[digit]
        c0 = V[loop].mean(0)
        th = _ring_angles(V[loop], c0, lat, dor, 1.0, 1.0)
        ph = _fit_phase(th, RING)
        ang = ph + 2 * np.pi * np.arange(RING) / RING
        cos, sin = np.cos(ang), np.sin(ang)
        for r in range(len(st)):
            # palmar pad slightly fuller than the nail side
            rp = ht[r] * np.where(sin < 0, 1.06, 0.94)
            V[topo.rings[digit][r]] = (base + st[r] * d + np.outer(hw[r] * cos, lat)
                                       + np.outer(rp * sin, dor))
        tip = sk.tips[digit] - 0.0008 * s * dor  # skin tip, slightly palmar of the axis
        V[topo.tip[digit]] = tip
        last = topo.rings[digit][-1]
        if digit not in topo.pad:  # most palmar vertex of the last ring (fixed at nominal shape)
            topo.pad[digit] = int(np.argmin(sin))
        m_pad = topo.pad[digit]
        v_pad = V[last[m_pad]]
        V[topo.tip2[digit]] = tip + (v_pad - tip) * (0.0015 * s / np.linalg.norm(v_pad - tip))
    # Taubin smoothing of the palm (rings of the tubes stay fixed)
    if smooth_iters:
        e = topo.edges
        free = np.zeros(topo.n_vertices, bool)
        free[: topo.n_lattice] = True
        deg = np.maximum(np.bincount(e.ravel(), minlength=topo.n_vertices), 1).astype(np.float64)[:, None]
        for it in range(2 * smooth_iters):
            acc = np.zeros_like(V)
            np.add.at(acc, e[:, 0], V[e[:, 1]])
            np.add.at(acc, e[:, 1], V[e[:, 0]])
            lap = acc / deg - V
            V[free] += (0.5 if it % 2 == 0 else -0.53) * lap[free]
    return V, sk


def _add_caps(topo: Topology) -> None:
    """Fan caps (last ring -> tip vertex); the tip2 vertex splits the spoke
    towards the most palmar vertex of the last ring (``topo.pad``)."""
    for digit in DIGITS:
        last = [int(x) for x in topo.rings[digit][-1]]
        c, e, mp = topo.tip[digit], topo.tip2[digit], topo.pad[digit]
        for q in range(RING):
            a, b = last[q], last[(q + 1) % RING]
            if q == (mp - 1) % RING:  # triangle (.., l[mp], c) -> two triangles through e
                topo.polys += [[a, b, e], [a, e, c]]
            elif q == mp:
                topo.polys += [[a, b, e], [e, b, c]]
            else:
                topo.polys.append([a, b, c])


def _triangulate(topo: Topology, V_nominal: np.ndarray) -> np.ndarray:
    """Split quads along their shorter diagonal (at the nominal shape)."""
    tris = []
    for poly in topo.polys:
        if len(poly) == 3:
            tris.append(poly)
            continue
        a, b, c, d = poly
        if np.linalg.norm(V_nominal[a] - V_nominal[c]) <= np.linalg.norm(V_nominal[b] - V_nominal[d]):
            tris += [[a, b, c], [a, c, d]]
        else:
            tris += [[a, b, d], [b, c, d]]
    return orient_faces(np.array(tris, dtype=np.int64), V_nominal)


def make_topology() -> Topology:
    """Full topology: tubes, caps, triangles (oriented outwards)."""
    topo = build_topology()
    topo.edges = polygon_edges(topo)  # tube + palm edges (caps do not touch the palm)
    V0, _ = place_vertices(topo, HandParams())  # also fixes topo.pad
    _add_caps(topo)
    topo.faces = _triangulate(topo, V0)
    return topo


def orient_faces(F: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Make orientation consistent (BFS over shared edges) and outward."""
    F = F.copy()
    edge_faces = {}
    for fi, f in enumerate(F):
        for q in range(3):
            a, b = f[q], f[(q + 1) % 3]
            edge_faces.setdefault((min(a, b), max(a, b)), []).append(fi)
    done = np.zeros(len(F), bool)
    done[0] = True
    stack = [0]
    while stack:
        fi = stack.pop()
        f = F[fi]
        for q in range(3):
            a, b = f[q], f[(q + 1) % 3]
            for g in edge_faces[(min(a, b), max(a, b))]:
                if done[g]:
                    continue
                ga = list(F[g])
                # neighbour must traverse the shared edge as b -> a
                ia = ga.index(a)
                if ga[(ia + 1) % 3] == b:
                    F[g] = F[g][::-1]
                done[g] = True
                stack.append(g)
    assert done.all(), "mesh is not connected"
    if signed_volume(F, V) < 0:
        F = F[:, ::-1].copy()
    return F


def boundary_edges(F: np.ndarray) -> list:
    cnt = {}
    for f in F:
        for q in range(3):
            a, b = int(f[q]), int(f[(q + 1) % 3])
            cnt[(a, b)] = cnt.get((a, b), 0) + 1
    return [(a, b) for (a, b) in cnt if (b, a) not in cnt]


def signed_volume(F: np.ndarray, V: np.ndarray) -> float:
    """Volume enclosed by the mesh after closing its holes with fans."""
    tris = [V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]]
    vol = np.einsum("ij,ij->i", tris[0], np.cross(tris[1], tris[2])).sum()
    be = boundary_edges(F)
    if be:
        c = V[np.unique(np.array(be))].mean(0)
        for a, b in be:  # boundary edge a->b is traversed by a face; the cap uses b->a
            vol += np.dot(V[b], np.cross(V[a], c))
    return vol / 6.0


def polygon_edges(topo: Topology) -> np.ndarray:
    es = set()
    for poly in topo.polys:
        for a, b in zip(poly, poly[1:] + poly[:1]):
            es.add((min(a, b), max(a, b)))
    return np.array(sorted(es), dtype=np.int64)
