"""View-invariant motion distribution balancing (paper section 4.2.2; absent from the official code).

Two moves, both about the target camera's optical axis, so the camera itself never moves:

**In-plane rotation** by ``angle`` (radians) about the optical axis: every camera-frame point p
becomes R_z p, so ``trans' = R_z trans`` and ``global_orient' = R_z * global_orient`` (MANO's wrist
is its root joint: the wrist-centred mesh rotates with the global orientation). In normalised
coordinates this is a 2D rotation, so the image map ``K @ R2 @ inv(K)`` (a rotation about the
principal point when fx = fy) is *exact* for every point.
Sign: positive angles turn +x towards +y, i.e. clockwise on screen (y points down).

**Depth scaling** by ``scale`` s: the hand moves along the optical axis, ``trans' = (x, y, s z)``,
and rigidly so: every joint and vertex gets the same offset (0, 0, (s - 1) z), the hand is moved,
not resized. The image is scaled by 1/s about the principal point c. Why (x, y, s z) and not
``s * trans``: a point moved along its own viewing ray (s * p) projects to the *same* pixel, so
under ``s * trans`` the wrist would stay put while a 1/s zoom about c moves its pixel from p to
c + (p - c) / s. Scaling only the depth divides the normalised coordinates x/z, y/z by s, which
is exactly that zoom: the wrist lands on its content with zero error. The image scale is exact
for the whole scene under the non-rigid map (x, y, z) -> (x, y, s z); keeping the hand rigid
leaves a perspective (parallax) residual for joints off the wrist's depth,

    |error| = |u' - c| * |s - 1| * |dz| / (s (z + dz))     (exactly; dz: joint depth minus wrist depth,
                                                            u': the joint's true pixel after the move),

a few pixels for a 10 cm-deep hand at 0.5 m with s = 1.25 (the "non-negligible physical size of
the hand" the paper mentions). ``BalanceConfig.max_parallax_px`` bounds it per draw; the tests
measure it. Rotation and depth scaling commute (R_z leaves z alone).

Rules: the wrist depth after the move stays in ``depth_range``; keypoints that were visible in the
model input stay inside it with ``margin_px``; the parallax residual stays under
``max_parallax_px``. A failed draw is redrawn (``max_tries``); after that the ranges shrink towards
the identity (``shrink``, ``shrink_rounds``); the identity is the last resort and always accepted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ..core.config import validate_config
from ..core.errors import UserValueError
from ..core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .camera import OFFICIAL_TARGET, TargetCamera
from .geometry import apply_affine, model_from_frame_matrix

__all__ = ["BalanceConfig", "BalanceParams", "HandState", "balance_affine", "transform_points", "transform_mano",
           "draw_balance", "check_rules", "RuleChecker", "wrist_features"]


@dataclass(frozen=True)
class BalanceConfig:
    """Ranges and rules of view-invariant balancing. Metres, radians, model-input pixels."""

    scale_range: tuple[float, float] = field(default=(0.8, 1.25), metadata={"gt": 0})
    """Depth scale s, drawn log-uniformly (so s and 1/s are equally likely). The paper gives no numbers;
    beyond ~1.3 the rigid-hand parallax residual passes a few pixels at 448 px."""
    angle_range: tuple[float, float] = field(default=(-math.pi / 6, math.pi / 6), metadata={"ge": -math.pi, "le": math.pi})
    """In-plane rotation in radians, drawn uniformly (paper: uniformly sampled angle)."""
    depth_range: tuple[float, float] = field(default=(0.15, 1.5), metadata={"gt": 0})
    """Plausible wrist depth z after the move, metres (arm's reach for egocentric views)."""
    margin_px: float = field(default=4.0, metadata={"ge": 0})
    """Keypoints visible before the move must lie at least this far inside the model input after it."""
    hand_radius: float = field(default=0.10, metadata={"ge": 0})
    """Metres; without keypoints, a sphere of this radius about the wrist stands in for the hand."""
    max_parallax_px: float = field(default=3.0, metadata={"gt": 0, "finite": False})
    """Upper bound on the rigid-hand parallax residual of depth scaling, model-input pixels (inf: off)."""
    max_tries: int = field(default=16, metadata={"ge": 1})
    """Draws per round before the ranges shrink."""
    shrink: float = field(default=0.5, metadata={"gt": 0, "lt": 1})
    """Factor applied to the ranges (towards the identity) after a failed round."""
    shrink_rounds: int = field(default=3, metadata={"ge": 0})
    """Rounds of shrinking before falling back to the identity."""

    def __post_init__(self):
        validate_config(self)
        # what field metadata cannot say: where each range sits relative to the identity
        problems = []
        lo, hi = self.scale_range
        if not lo <= 1 <= hi:
            problems.append(f"scale_range={self.scale_range} must satisfy lo <= 1 <= hi")
        lo, hi = self.angle_range
        if not lo <= 0 <= hi:
            problems.append(f"angle_range={self.angle_range} must satisfy lo <= 0 <= hi (radians)")
        lo, hi = self.depth_range
        if not lo < hi:
            problems.append(f"depth_range={self.depth_range} must satisfy z_min < z_max (metres)")
        if problems:
            raise UserValueError("invalid BalanceConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict) -> "BalanceConfig":
        """Build from a dict, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserValueError(f"unknown BalanceConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class BalanceParams:
    """One balancing move: depth ``scale`` s and in-plane ``angle`` (radians)."""

    scale: float = 1.0
    angle: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.angle == 0.0


@dataclass
class HandState:
    """One hand over T frames, camera frame, metres: wrist ``trans`` (T, 3), optional ``keypoints`` (T, N, 3)."""

    trans: np.ndarray
    keypoints: np.ndarray | None = None


def rotation_z(angle: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``angle`` (radians) about the camera's optical axis z (OpenCV frame:
    x right, y down, so a positive angle turns the image clockwise on screen): the in-plane rotation of
    view-invariant balancing, applied to 3D points, MANO's global orientation and (its x-y block)
    image pixels about the principal point.

    Equal to ``beingh0.core.rotations.axis_angle_to_matrix([0, 0, angle])`` (tests check it to 1e-15),
    written out in numpy because the sampler and the loader's transform call it per candidate move and
    per sample: 2 us here against ~200 us for a torch call.
    """
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def balance_affine(params: BalanceParams, K: np.ndarray) -> np.ndarray:
    """3x3 image affine on pixels of camera ``K``: ``K @ (R2(angle) / scale) @ inv(K)``."""
    K = np.asarray(K, dtype=np.float64)
    N = rotation_z(params.angle)
    N[:2, :2] /= params.scale
    return K @ N @ np.linalg.inv(K)


def transform_points(points: np.ndarray, wrist: np.ndarray, params: BalanceParams) -> np.ndarray:
    """Points of one hand (T, N, 3) (or (N, 3) with wrist (3,)) -> rotated, then moved by (0, 0, (s-1) z_wrist')."""
    p = np.asarray(points, dtype=np.float64)
    w = np.asarray(wrist, dtype=np.float64)
    if p.shape[-1] != 3 or w.shape[-1] != 3 or p.ndim != w.ndim + 1 or p.shape[:-2] != w.shape[:-1]:
        raise ValueError(f"points (T, N, 3) need a wrist (T, 3); got points {p.shape} and wrist {w.shape}")
    out = p @ rotation_z(params.angle).T
    out[..., 2] += (params.scale - 1.0) * w[..., None, 2]
    return out


def transform_mano(global_orient, trans, params: BalanceParams):
    """MANO global_orient (T, 3) axis-angle and trans (T, 3) wrist position -> balanced (same types).

    ``trans' = (R_z trans)_xy, s * z``; ``global_orient' = R_z * R(global_orient)``. hand_pose and
    betas do not change. numpy in -> numpy out, torch in -> torch out (dtype and device kept).
    """
    is_t = isinstance(global_orient, torch.Tensor)
    go = torch.as_tensor(np.asarray(global_orient.detach().cpu() if is_t else global_orient), dtype=torch.float64)
    tr = np.asarray(trans.detach().cpu() if isinstance(trans, torch.Tensor) else trans, dtype=np.float64)
    R = torch.as_tensor(rotation_z(params.angle))
    go2 = matrix_to_axis_angle(R @ axis_angle_to_matrix(go)).numpy()
    tr2 = tr @ rotation_z(params.angle).T
    tr2[..., 2] *= params.scale
    if is_t:
        return (torch.as_tensor(go2, dtype=global_orient.dtype, device=global_orient.device),
                torch.as_tensor(tr2, dtype=trans.dtype if isinstance(trans, torch.Tensor) else global_orient.dtype,
                                device=global_orient.device))
    return go2.astype(np.asarray(global_orient).dtype, copy=False), tr2.astype(np.asarray(trans).dtype, copy=False)


# -- rules --------------------------------------------------------------------------------------
def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    z = points[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = points[..., :2] / z
    return n @ K[:2, :2].T + K[:2, 2]


def _hand_points(h: HandState, cfg: BalanceConfig, K: np.ndarray) -> np.ndarray:
    """Keypoints, or a ring of points around the wrist standing in for the hand (T, N, 3)."""
    if h.keypoints is not None:
        return np.asarray(h.keypoints, dtype=np.float64)
    t = np.asarray(h.trans, dtype=np.float64)
    r = cfg.hand_radius
    offs = np.array([[0, 0, 0], [r, 0, 0], [-r, 0, 0], [0, r, 0], [0, -r, 0]], dtype=np.float64)
    return t[:, None, :] + offs


class RuleChecker:
    """The rules for one sample's hands, precomputed once so that many candidate moves check fast."""

    def __init__(self, hands: list[HandState], cfg: BalanceConfig, target: TargetCamera = OFFICIAL_TARGET):
        self.cfg = cfg
        K = target.frame.K
        M = model_from_frame_matrix(target)
        self.KM = M @ K                                       # normalised coords -> model pixels
        h_m, w_m = self.h_m, self.w_m = target.size
        self.hands = []
        for h in hands:
            t = np.asarray(h.trans, dtype=np.float64)
            pts = _hand_points(h, cfg, K)
            before = apply_affine(M, _project(pts, K))
            vis = (pts[..., 2] > 0) & np.all(np.isfinite(before), -1)
            vis &= (before[..., 0] >= -0.5) & (before[..., 0] <= w_m - 0.5) & (before[..., 1] >= -0.5) & (before[..., 1] <= h_m - 0.5)
            zw = np.broadcast_to(t[:, None, 2], pts.shape[:-1])[vis]
            P = pts[vis]
            self.hands.append((t[:, 2], P, zw, P[:, :2] / P[:, 2:], h.keypoints is None))

    def __call__(self, params: BalanceParams) -> str | None:
        """None when ``params`` keeps every hand plausible and in frame, else the name of the broken rule."""
        cfg, KM, s = self.cfg, self.KM, params.scale
        c, sn = math.cos(params.angle), math.sin(params.angle)
        R2 = np.array([[c, -sn], [sn, c]])
        L = KM[:2, :2]
        m = cfg.margin_px
        for z, P, zw, n0, ring in self.hands:
            z2 = s * z
            if np.any(~np.isfinite(z2)) or np.any(z2 < cfg.depth_range[0]) or np.any(z2 > cfg.depth_range[1]):
                return "depth"
            if not len(P):
                continue
            zm = P[:, 2] + (s - 1.0) * zw
            if np.any(zm <= 0):
                return "behind camera"
            n_true = (P[:, :2] @ R2.T) / zm[:, None]
            uv = n_true @ L.T + KM[:2, 2]
            if (uv[:, 0].min() < m - 0.5 or uv[:, 0].max() > self.w_m - 0.5 - m or uv[:, 1].min() < m - 0.5
                    or uv[:, 1].max() > self.h_m - 0.5 - m):
                return "in frame"
            if not ring:
                par = np.linalg.norm((n_true - (n0 @ R2.T) / s) @ L.T, axis=-1).max()
            else:  # the ring has no depth profile: bound |u' - c| |s - 1| |dz| / (s (z + dz)) with |dz| <= r
                r, zmin = cfg.hand_radius, float(np.min(z2))
                extent = max(L[0, 0], L[1, 1]) * r / max(zmin - r, 1e-3)
                rad = np.linalg.norm(uv - KM[:2, 2], axis=-1).max() + extent
                par = rad * abs(s - 1.0) * r / max(zmin - s * r, 1e-3)
            if par > cfg.max_parallax_px:
                return "parallax"
        return None


def check_rules(params: BalanceParams, hands: list[HandState], cfg: BalanceConfig,
                target: TargetCamera = OFFICIAL_TARGET) -> str | None:
    """None when ``params`` keeps every hand plausible and in frame, else the name of the broken rule.

    (To check many moves for the same hands, build one ``RuleChecker`` and call it.)
    """
    return RuleChecker(hands, cfg, target)(params)


def _draw(rng: np.random.Generator, cfg: BalanceConfig, shrink: float) -> BalanceParams:
    lo, hi = np.log(cfg.scale_range[0]) * shrink, np.log(cfg.scale_range[1]) * shrink
    s = float(np.exp(rng.uniform(lo, hi))) if hi > lo else 1.0
    a0, a1 = cfg.angle_range[0] * shrink, cfg.angle_range[1] * shrink
    a = float(rng.uniform(a0, a1)) if a1 > a0 else 0.0
    return BalanceParams(s, a)


@dataclass(frozen=True)
class BalanceDraw:
    """What ``draw_balance`` chose: ``params``, how many draws it tried, rounds of shrinking, and whether
    it fell back to the identity."""

    params: BalanceParams
    tries: int
    shrinks: int
    fallback: bool


def draw_balance(rng: np.random.Generator, hands: list[HandState], cfg: BalanceConfig = BalanceConfig(),
                 target: TargetCamera = OFFICIAL_TARGET, *, candidates: int = 1, weight_fn=None) -> BalanceDraw:
    """Draw a balancing move that passes the rules for every hand.

    With ``weight_fn`` (a callable ``params -> weight >= 0``, e.g. ``BalanceSampler.weight``),
    ``candidates`` valid draws are gathered and one is picked with probability proportional to its
    weight (importance resampling); otherwise the first valid draw wins.
    """
    tries = 0
    shrink = 1.0
    check = RuleChecker(hands, cfg, target)
    for rnd in range(cfg.shrink_rounds + 1):
        valid = []
        for _ in range(cfg.max_tries):
            tries += 1
            p = _draw(rng, cfg, shrink)
            if check(p) is None:
                valid.append(p)
                if len(valid) >= candidates:
                    break
        if valid:
            if weight_fn is None or len(valid) == 1:
                return BalanceDraw(valid[0], tries, rnd, False)
            w = np.array([max(float(weight_fn(p)), 0.0) for p in valid])
            if not np.isfinite(w).all() or w.sum() <= 0:
                w = np.ones(len(valid))
            return BalanceDraw(valid[int(rng.choice(len(valid), p=w / w.sum()))], tries, rnd, False)
        shrink *= cfg.shrink
    return BalanceDraw(BalanceParams(), tries, cfg.shrink_rounds, True)


def wrist_features(trans: np.ndarray, params: BalanceParams | None = None,
                   target: TargetCamera = OFFICIAL_TARGET) -> np.ndarray:
    """Wrist positions (..., 3) -> (..., 3) features: normalised model-input position u, v in [0, 1] and depth z (m).

    With ``params``, the features after that balancing move (what the sampler balances).
    """
    t = np.asarray(trans, dtype=np.float64)
    if params is not None:
        t = t @ rotation_z(params.angle).T
        t = t * np.array([1.0, 1.0, params.scale])
    K = target.frame.K
    M = model_from_frame_matrix(target)
    uv = apply_affine(M, _project(t, K))
    h, w = target.size
    return np.stack([(uv[..., 0] + 0.5) / w, (uv[..., 1] + 0.5) / h, t[..., 2]], -1)
