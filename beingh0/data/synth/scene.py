"""Scenes of the synthetic source: objects on a table, cameras, backgrounds, lights.

World frame: metres, +Y up, the table top is the plane ``y = 0``; the person sits on the +Z side
of the table and faces -Z, so their right is +X. Objects are meshes in a local frame whose origin
is the centre of their base (resting on the table) with +Y up; their world pose per frame is a
4x4 matrix set by the motion (objects follow a hand while it holds them).

Cameras are OpenCV cameras (x right, y down, z forward) given as camera-to-world matrices:
egocentric-like head cameras above the table edge looking down at the workspace, and third-person
cameras around the table, horizontal fields of view from 60 to 120 degrees, optional mild motion.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .raster import Light, Table

#: Colour names used in the language and their RGB (0..1). Names are what the captions say.
COLORS = {
    "red": (0.80, 0.12, 0.10), "blue": (0.12, 0.30, 0.80), "green": (0.15, 0.62, 0.22),
    "yellow": (0.95, 0.80, 0.12), "orange": (0.95, 0.48, 0.08), "purple": (0.50, 0.22, 0.68),
    "white": (0.92, 0.92, 0.90), "black": (0.10, 0.10, 0.11), "pink": (0.95, 0.50, 0.65),
    "teal": (0.05, 0.55, 0.55), "grey": (0.55, 0.56, 0.58), "brown": (0.48, 0.30, 0.15),
}

#: Skin tones (RGB 0..1), light to dark; each episode jitters one.
#: Every noun the synthetic scenes call an object by (``SceneObject.noun``; the captions use them).
NOUNS = ("cup", "mug", "bottle", "can", "jar", "lid", "box", "carton", "package", "block", "cube", "ball", "bowl",
         "plate", "button")

SKIN_TONES = np.array([
    (0.96, 0.80, 0.69), (0.92, 0.72, 0.58), (0.85, 0.64, 0.50), (0.76, 0.55, 0.40),
    (0.62, 0.43, 0.30), (0.48, 0.32, 0.22), (0.36, 0.24, 0.17),
])


# ------------------------------------------------------------------------------------------------
# geometry


def lathe(profile: np.ndarray, segments: int = 24, cap_bottom: bool = True, cap_top: bool = True):
    """Surface of revolution about +Y of ``profile`` (n, 2) = (radius, height), bottom to top.
    Faces wind outwards (for a profile walked upwards). Returns (verts, faces)."""
    n = len(profile)
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ca, sa = np.cos(a), np.sin(a)
    r, y = profile[:, 0], profile[:, 1]
    V = np.stack([r[:, None] * ca[None], np.repeat(y[:, None], segments, 1), r[:, None] * sa[None]], -1).reshape(-1, 3)
    F = []
    for i in range(n - 1):
        for j in range(segments):
            p, q = i * segments + j, i * segments + (j + 1) % segments
            F.append((p, q + segments, q))
            F.append((p, p + segments, q + segments))
    V = list(V)
    if cap_bottom and r[0] > 1e-9:
        c = len(V)
        V.append((0.0, y[0], 0.0))
        F += [(c, j, (j + 1) % segments) for j in range(segments)]
    if cap_top and r[-1] > 1e-9:
        c = len(V)
        V.append((0.0, y[-1], 0.0))
        base = (n - 1) * segments
        F += [(c, base + (j + 1) % segments, base + j) for j in range(segments)]
    return np.asarray(V, np.float64), np.asarray(F, np.int64)


def box(hx: float, hy: float, hz: float):
    """Axis-aligned box with its base centre at the origin (flat-shaded: 4 vertices per side)."""
    V, F = [], []
    for axis in range(3):
        for sgn in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sgn
            u = np.zeros(3)
            u[(axis + 1) % 3] = 1.0
            w = np.cross(n, u)
            h = np.array([hx, hy, hz])
            c = n * h
            du, dw = u * h, w * h
            base = len(V)
            V += [c - du - dw, c + du - dw, c + du + dw, c - du + dw]
            F += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    V = np.asarray(V) + np.array([0.0, hy, 0.0])
    return V, np.asarray(F, np.int64)


def forearm_mesh(length: float = 0.24, r_wrist=(0.021, 0.031), r_elbow=(0.032, 0.042), segments: int = 16):
    """A tapered elliptic tube along +x of the right hand's rest frame (the forearm behind the
    wrist; the fingers point along -x), starting just inside the wrist. Closed, outward wound."""
    s = np.linspace(0, 1, 5)
    x = 0.004 + s * length
    ry = r_wrist[0] + (r_elbow[0] - r_wrist[0]) * s
    rz = r_wrist[1] + (r_elbow[1] - r_wrist[1]) * s
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    V = np.stack([np.repeat(x[:, None], segments, 1), ry[:, None] * np.cos(a)[None] - 0.004,
                  rz[:, None] * np.sin(a)[None]], -1).reshape(-1, 3)
    F = []
    n = len(s)
    for i in range(n - 1):
        for j in range(segments):
            p, q = i * segments + j, i * segments + (j + 1) % segments
            F += [(p, q, q + segments), (p, q + segments, p + segments)]
    c0, c1 = len(V), len(V) + 1
    V = np.concatenate([V, [[x[0], -0.004, 0.0], [x[-1], -0.004, 0.0]]])
    F += [(c0, (j + 1) % segments, j) for j in range(segments)]
    F += [(c1, (n - 1) * segments + j, (n - 1) * segments + (j + 1) % segments) for j in range(segments)]
    V, F = np.asarray(V), np.asarray(F, np.int64)
    # orient outwards whatever the parametrisation did
    a0, a1, a2 = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    if np.einsum("ij,ij->i", a0 - V.mean(0), np.cross(a1 - a0, a2 - a0)).sum() < 0:
        F = F[:, ::-1].copy()
    return V, F


@dataclass
class SceneObject:
    kind: str  # cup, bottle, can, box, block, ball, bowl, plate, button, jar, lid
    noun: str  # what the language calls it ("cup", "mug", "bottle", ...)
    color: str  # colour name (key of COLORS)
    rgb: np.ndarray
    verts: np.ndarray  # local frame, base centre at the origin
    faces: np.ndarray
    closed: bool
    radius: float  # horizontal half-size (bounding cylinder radius)
    height: float
    shape: str  # contact model: "cylinder" | "box" | "sphere"
    half: np.ndarray = field(default_factory=lambda: np.zeros(3))  # box half extents (x, y, z)
    pose: np.ndarray | None = None  # (T, 4, 4) world pose per frame (set by the motion)
    graspable: bool = True

    @property
    def name(self) -> str:
        return f"{self.color} {self.noun}"

    def sdf(self, p_local: np.ndarray) -> np.ndarray:
        """Signed distance (metres, negative inside) of local points (..., 3) to the contact shape."""
        if self.shape == "sphere":
            return np.linalg.norm(p_local - np.array([0.0, self.radius, 0.0]), axis=-1) - self.radius
        if self.shape == "box":
            q = np.abs(p_local - np.array([0.0, self.half[1], 0.0])) - self.half
            return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
        dr = np.linalg.norm(p_local[..., [0, 2]], axis=-1) - self.radius
        dy = np.abs(p_local[..., 1] - self.height / 2) - self.height / 2
        q = np.stack([dr, dy], -1)
        return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def make_object(kind: str, rng: np.random.Generator, color: str) -> SceneObject:
    """One object of ``kind`` with random proportions (sizes in metres)."""
    rgb = np.clip(np.array(COLORS[color]) * rng.uniform(0.9, 1.08), 0, 1)
    half = np.zeros(3)
    if kind == "cup":
        r, h = rng.uniform(0.032, 0.045), rng.uniform(0.08, 0.11)
        t = 0.004
        prof = np.array([[r * 0.85, 0.0], [r, h * 0.9], [r * 1.02, h], [r - t, h], [r * 0.85 - t, t], [1e-6, t]])
        V, F = lathe(prof, 24, cap_bottom=True, cap_top=False)
        return SceneObject(kind, rng.choice(["cup", "mug"]), color, rgb, V, F, False, r, h, "cylinder")
    if kind == "bottle":
        r, h = rng.uniform(0.028, 0.038), rng.uniform(0.16, 0.22)
        prof = np.array([[r, 0.0], [r, h * 0.62], [r * 0.75, h * 0.75], [r * 0.4, h * 0.82], [r * 0.38, h], [0.0, h]])
        V, F = lathe(prof[:-1], 20, cap_top=True)
        return SceneObject(kind, "bottle", color, rgb, V, F, True, r, h, "cylinder")
    if kind == "can":
        r, h = rng.uniform(0.030, 0.036), rng.uniform(0.10, 0.13)
        V, F = lathe(np.array([[r * 0.92, 0.0], [r, 0.006], [r, h - 0.006], [r * 0.92, h]]), 20)
        return SceneObject(kind, "can", color, rgb, V, F, True, r, h, "cylinder")
    if kind == "jar":
        r, h = rng.uniform(0.035, 0.045), rng.uniform(0.08, 0.11)
        V, F = lathe(np.array([[r, 0.0], [r, h * 0.9], [r * 0.9, h]]), 20)
        return SceneObject(kind, "jar", color, rgb, V, F, True, r, h, "cylinder", graspable=False)
    if kind == "lid":
        r, h = rng.uniform(0.036, 0.046), 0.018
        V, F = lathe(np.array([[r, 0.0], [r, h], [r * 0.95, h]]), 20)
        return SceneObject(kind, "lid", color, rgb, V, F, True, r, h, "cylinder")
    if kind in ("box", "block"):
        if kind == "box":
            hx, hy, hz = rng.uniform(0.025, 0.05), rng.uniform(0.02, 0.045), rng.uniform(0.025, 0.045)
            noun = rng.choice(["box", "carton", "package"])
        else:
            e = rng.uniform(0.015, 0.025)
            hx, hy, hz = e, e, e
            noun = rng.choice(["block", "cube"])
        V, F = box(hx, hy, hz)
        half = np.array([hx, hy, hz])
        return SceneObject(kind, noun, color, rgb, V, F, True, float(np.hypot(hx, hz)), 2 * hy, "box", half)
    if kind == "ball":
        r = rng.uniform(0.025, 0.04)
        a = np.linspace(0, np.pi, 11)
        prof = np.stack([r * np.sin(a), r - r * np.cos(a)], 1)
        prof[0, 0] = prof[-1, 0] = 0.0
        V, F = lathe(prof, 20, cap_bottom=False, cap_top=False)
        return SceneObject(kind, "ball", color, rgb, V, F, True, r, 2 * r, "sphere")
    if kind == "bowl":
        r, h = rng.uniform(0.065, 0.085), rng.uniform(0.045, 0.06)
        a = np.linspace(0.15, np.pi / 2, 7)
        outer = np.stack([r * np.sin(a) + 0.01, h * (1 - np.cos(a))], 1)
        outer[0] = [r * 0.45, 0.0]
        inner = outer[::-1] * np.array([0.93, 1.0]) + np.array([0.0, 0.004])
        inner[-1] = [1e-6, 0.006]
        V, F = lathe(np.concatenate([outer, inner]), 24, cap_bottom=True, cap_top=False)
        return SceneObject(kind, "bowl", color, rgb, V, F, False, r + 0.01, h, "cylinder", graspable=False)
    if kind == "plate":
        r = rng.uniform(0.08, 0.1)
        V, F = lathe(np.array([[r * 0.7, 0.0], [r, 0.012], [r * 0.75, 0.01]]), 24, cap_top=True)
        return SceneObject(kind, "plate", color, rgb, V, F, True, r, 0.012, "cylinder", graspable=False)
    if kind == "button":
        r = rng.uniform(0.018, 0.026)
        Vb, Fb = box(r * 1.9, 0.012, r * 1.9)
        Vc, Fc = lathe(np.array([[r, 0.0], [r, 0.012], [r * 0.9, 0.016]]), 16)
        V = np.concatenate([Vb, Vc + [0.0, 0.024, 0.0]])
        F = np.concatenate([Fb, Fc + len(Vb)])
        return SceneObject(kind, "button", color, rgb, V, F, True, r * 1.9, 0.04, "box",
                           np.array([r * 1.9, 0.02, r * 1.9]), graspable=False)
    raise ValueError(f"unknown object kind {kind!r}")


def pose_matrix(pos, yaw: float = 0.0) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    M = np.eye(4)
    M[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    M[:3, 3] = pos
    return M


# ------------------------------------------------------------------------------------------------
# cameras


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0), roll: float = 0.0) -> np.ndarray:
    """Camera-to-world 4x4 of an OpenCV camera at ``eye`` looking at ``target`` (world +Y up)."""
    f = np.asarray(target, float) - np.asarray(eye, float)
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-6:
        r = np.cross(f, (0.0, 0.0, -1.0))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        r, d = c * r + s * d, -s * r + c * d
    M = np.eye(4)
    M[:3, 0], M[:3, 1], M[:3, 2], M[:3, 3] = r, d, f, eye
    return M


@dataclass
class CameraRig:
    kind: str  # "ego" | "third"
    hfov_deg: float
    eye: np.ndarray
    target: np.ndarray
    roll: float
    shake: float  # amplitude scale of the mild camera motion (0 = static)
    phases: np.ndarray  # random phases of the motion

    def intrinsics(self, size: tuple[int, int]) -> np.ndarray:
        W, H = size
        fx = (W / 2) / np.tan(np.radians(self.hfov_deg) / 2)
        return np.array([fx, fx, (W - 1) / 2, (H - 1) / 2])

    def cam_to_world(self, T: int, fps: float) -> np.ndarray:
        t = np.arange(T) / fps
        out = np.empty((T, 4, 4))
        p = self.phases
        for i, ti in enumerate(t):
            de = self.shake * np.array([0.010 * np.sin(1.3 * ti + p[0]), 0.006 * np.sin(2.1 * ti + p[1]), 0.008 * np.sin(0.9 * ti + p[2])])
            dt = self.shake * np.array([0.015 * np.sin(0.7 * ti + p[3]), 0.0, 0.012 * np.sin(1.1 * ti + p[4])])
            out[i] = look_at(self.eye + de, self.target + dt, roll=self.roll + self.shake * 0.02 * np.sin(0.8 * ti + p[5]))
        return out

    def pull_back(self, factor: float) -> None:
        """Move the camera away from its target (keeps the direction), e.g. to fit the hands in view."""
        self.eye = self.target + (self.eye - self.target) * factor


def sample_camera(rng: np.random.Generator, workspace: np.ndarray) -> CameraRig:
    """An egocentric-like head camera (60 %) or a third-person camera around the table."""
    if rng.random() < 0.6:
        eye = np.array([rng.uniform(-0.06, 0.06), rng.uniform(0.36, 0.5), rng.uniform(0.36, 0.5)])
        target = workspace + np.array([rng.uniform(-0.05, 0.05), 0.0, rng.uniform(0.04, 0.12)])
        return CameraRig("ego", rng.uniform(62, 105), eye, target, rng.normal(0, 0.05),
                         rng.uniform(0.5, 1.5) if rng.random() < 0.7 else 0.0, rng.uniform(0, 2 * np.pi, 6))
    az = rng.uniform(-1.0, 1.0) * np.radians(80)  # 0: facing the person from across the table
    el = np.radians(rng.uniform(20, 55))
    dist = rng.uniform(0.55, 0.9)
    target = workspace + np.array([rng.uniform(-0.04, 0.04), 0.03, rng.uniform(-0.02, 0.06)])
    eye = target + dist * np.array([np.sin(az) * np.cos(el), np.sin(el), -np.cos(az) * np.cos(el)])
    return CameraRig("third", rng.uniform(60, 95), eye, target, rng.normal(0, 0.03),
                     rng.uniform(0.0, 0.5) if rng.random() < 0.4 else 0.0, rng.uniform(0, 2 * np.pi, 6))


def fit_camera(rig, pts_world, T, fps, size, min_in=0.95):
    """Pull the camera back (and widen its view) until most of ``pts_world`` (T, N, 3) are in the
    image of ``size`` (width, height). Returns (intrinsics fx, fy, cx, cy; cam_to_world (T, 4, 4);
    the fraction of points in view)."""
    W, H = size
    for _ in range(14):
        K = rig.intrinsics(size)
        E = rig.cam_to_world(T, fps)
        Rw2c = np.swapaxes(E[:, :3, :3], 1, 2)
        pc = np.einsum("tij,tnj->tni", Rw2c, pts_world - E[:, None, :3, 3])
        z = pc[..., 2]
        u = K[0] * pc[..., 0] / np.maximum(z, 1e-6) + K[2]
        v = K[1] * pc[..., 1] / np.maximum(z, 1e-6) + K[3]
        inside = (z > 0.08) & (u > 0.03 * W) & (u < 0.97 * W) & (v > 0.03 * H) & (v < 0.97 * H)
        if inside.mean() >= (min_in - 0.05 if rig.kind == "ego" else min_in):
            break
        if rig.hfov_deg < 100 and rig.kind == "ego":
            rig.hfov_deg = min(rig.hfov_deg + 8, 120)
        else:
            rig.pull_back(1.12)
    return rig.intrinsics(size), rig.cam_to_world(T, fps), float(inside.mean())


# ------------------------------------------------------------------------------------------------
# backgrounds, tables, lights


def value_noise(rng: np.random.Generator, n: int = 8) -> np.ndarray:
    return rng.uniform(-1, 1, (n, n)).astype(np.float64)


def sample_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A procedural (H, W, 3) float image: gradient walls, stripes or blotches, with noise."""
    from .raster import bilinear

    W, H = size
    yy, xx = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    c0 = rng.uniform(0.15, 0.85, 3)
    c1 = np.clip(c0 + rng.normal(0, 0.15, 3), 0, 1)
    ang = rng.uniform(0, np.pi)
    g = (np.cos(ang) * xx + np.sin(ang) * yy)
    g = (g - g.min()) / max(np.ptp(g), 1e-9)
    img = c0 * (1 - g[..., None]) + c1 * g[..., None]
    kind = rng.integers(3)
    n1 = bilinear(value_noise(rng, 8), xx * 8 * rng.uniform(0.5, 1.5), yy * 8 * rng.uniform(0.5, 1.5))
    if kind == 0:  # stripes (cabinets, panels)
        per = rng.uniform(0.08, 0.3)
        s = (np.floor((xx if rng.random() < 0.5 else yy) / per) % 2)
        img = img * (1 - 0.12 * s[..., None])
    elif kind == 1:  # blotches (clutter)
        for _ in range(rng.integers(3, 8)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
            m = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
            img[m] = img[m] * 0.5 + 0.5 * rng.uniform(0.1, 0.9, 3)
    img = img * (1 + 0.08 * n1[..., None])
    fine = rng.normal(0, 0.015, (H, W, 1))
    return np.clip(img + fine, 0, 1)


def sample_table(rng: np.random.Generator) -> Table:
    base = rng.choice([
        (0.62, 0.45, 0.30), (0.75, 0.60, 0.42), (0.45, 0.32, 0.22),  # woods
        (0.85, 0.85, 0.82), (0.35, 0.37, 0.40), (0.70, 0.72, 0.68),  # laminates
        (0.55, 0.62, 0.70), (0.78, 0.70, 0.62),
    ])
    return Table(
        x_range=(-rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)),
        z_range=(-rng.uniform(0.45, 0.8), rng.uniform(0.42, 0.55)),
        color=np.clip(np.asarray(base) * rng.uniform(0.9, 1.1, 3), 0, 1),
        pattern=str(rng.choice(["grain", "tiles", "plain"], p=[0.5, 0.2, 0.3])),
        scale=rng.uniform(0.02, 0.06),
        noise=value_noise(rng, 16),
    )


def sample_light(rng: np.random.Generator) -> Light:
    d = np.array([rng.uniform(-0.5, 0.5), 1.0, rng.uniform(-0.4, 0.6)])
    return Light(d / np.linalg.norm(d), ambient=rng.uniform(0.3, 0.45), key=rng.uniform(0.5, 0.7), fill=rng.uniform(0.1, 0.25))
