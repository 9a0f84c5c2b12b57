"""Pinhole cameras with optional lens distortion, and the target camera of weak-perspective alignment.

Conventions (ENGINEERING.md section 3):

- OpenCV camera frame: x right, y down, z forward; metres.
- Pixel centres sit at integer coordinates: the top-left pixel covers [-0.5, 0.5]^2 and an image
  of width W spans x in [-0.5, W - 0.5]. Intrinsics are those of the image as it actually is.
- Distortion follows OpenCV's models: ``"radtan"`` (Brown-Conrady: k1, k2, p1, p2[, k3]) and
  ``"fisheye"`` (Kannala-Brandt equidistant: k1, k2, k3, k4). Distortion acts on normalised
  coordinates (x/z, y/z); "undistorted pixels" are ``K @ (x/z, y/z, 1)``.

The official Being-H0 target camera: fx = fy = 736.6339, cx = 960, cy = 540 on 1920x1080, a
105.0 deg horizontal and 72.5 deg vertical field of view; the model then sees a 448x448 image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.errors import UserValueError

DIST_MODELS = {"radtan": (4, 5), "fisheye": (4,)}
"""Distortion model -> allowed coefficient counts (OpenCV order)."""

__all__ = ["Intrinsics", "TargetCamera", "OFFICIAL_TARGET", "DIST_MODELS", "distort_normalized",
           "undistort_normalized", "undistort_pixels", "project_points", "parse_floats"]


def parse_floats(text: str, name: str, counts: tuple[int, ...]) -> tuple[float, ...]:
    """'1,2,3' -> (1.0, 2.0, 3.0), with an error naming ``name`` and the expected counts."""
    try:
        vals = tuple(float(v) for v in str(text).replace(" ", "").split(",") if v != "")
    except ValueError:
        raise UserValueError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if len(vals) not in counts:
        raise UserValueError(f"{name} needs {' or '.join(map(str, counts))} comma-separated numbers, got {len(vals)} in {text!r}")
    return vals


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, image size, optional distortion.

    ``width``/``height`` are the image size in pixels (the size the intrinsics belong to). ``dist``
    holds OpenCV-ordered coefficients for ``dist_model`` (None or all zeros: no distortion).
    Validates itself: finite positive focal lengths, finite principal point, positive size.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    dist: tuple[float, ...] | None = None
    dist_model: str = "radtan"

    def __post_init__(self):
        for k in ("fx", "fy", "cx", "cy"):
            v = getattr(self, k)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"Intrinsics.{k} must be a number, got {v!r}") from None
            if not math.isfinite(v):
                raise UserValueError(f"Intrinsics.{k} must be finite, got {v}; check the calibration file")
            object.__setattr__(self, k, v)
        for k in ("fx", "fy"):
            if getattr(self, k) <= 0:
                raise UserValueError(f"Intrinsics.{k} must be > 0 pixels, got {getattr(self, k)}; focal lengths are "
                                 "positive (pass fx,fy,cx,cy in pixels of the image as it is)")
        for k in ("width", "height"):
            v = getattr(self, k)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise UserValueError(f"Intrinsics.{k} must be a positive integer number of pixels, got {v!r}")
            object.__setattr__(self, k, int(v))
        if self.dist_model not in DIST_MODELS:
            raise UserValueError(f"dist_model must be one of {list(DIST_MODELS)}, got {self.dist_model!r}")
        if self.dist is not None:
            d = tuple(float(x) for x in np.asarray(self.dist, dtype=np.float64).reshape(-1))
            if len(d) not in DIST_MODELS[self.dist_model]:
                raise UserValueError(f"{self.dist_model} distortion needs {' or '.join(map(str, DIST_MODELS[self.dist_model]))} "
                                 f"coefficients (OpenCV order), got {len(d)}: {d}")
            if not all(math.isfinite(x) for x in d):
                raise UserValueError(f"distortion coefficients must be finite, got {d}")
            object.__setattr__(self, "dist", None if not any(d) else d)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_matrix(cls, K, width: int, height: int, dist=None, dist_model: str = "radtan") -> "Intrinsics":
        """From a 3x3 matrix (skew must be zero) or a 4-vector fx, fy, cx, cy."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape == (4,):
            return cls(*K.tolist(), width, height, dist, dist_model)
        if K.shape != (3, 3):
            raise UserValueError(f"intrinsics must be a 3x3 matrix or (fx, fy, cx, cy), got shape {K.shape}")
        if not np.all(np.isfinite(K)):
            raise UserValueError(f"intrinsic matrix has NaN/Inf entries: {K.tolist()}")
        if abs(K[0, 1]) > 1e-9 * abs(K[0, 0]) or np.any(np.abs(K[2] - [0, 0, 1]) > 1e-12) or K[1, 0] != 0:
            raise UserValueError(f"intrinsic matrix must be [[fx,0,cx],[0,fy,cy],[0,0,1]] (no skew), got {K.tolist()}")
        return cls(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height, dist, dist_model)

    @classmethod
    def from_string(cls, text: str, width: int, height: int, dist: str | None = None, dist_model: str = "radtan") -> "Intrinsics":
        """'fx,fy,cx,cy' (and 'k1,k2,p1,p2[,k3]' or fisheye 'k1,k2,k3,k4') -> Intrinsics."""
        vals = parse_floats(text, "intrinsics (fx,fy,cx,cy)", (4,))
        d = parse_floats(dist, f"{dist_model} distortion", DIST_MODELS.get(dist_model, (4, 5))) if dist else None
        return cls(*vals, width, height, d, dist_model)

    # -- views -----------------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    @property
    def distorted(self) -> bool:
        return self.dist is not None

    def fov_deg(self) -> tuple[float, float]:
        """Horizontal and vertical field of view in degrees of the pinhole model (edge to edge)."""
        hx = math.atan((self.cx + 0.5) / self.fx) + math.atan((self.width - 0.5 - self.cx) / self.fx)
        hy = math.atan((self.cy + 0.5) / self.fy) + math.atan((self.height - 0.5 - self.cy) / self.fy)
        return math.degrees(hx), math.degrees(hy)

    def undistorted(self) -> "Intrinsics":
        """The same pinhole without distortion."""
        return replace(self, dist=None)

    def transformed(self, A: np.ndarray, width: int, height: int) -> "Intrinsics":
        """The intrinsics after an image affine ``A`` (3x3, no rotation/shear) onto a width x height image."""
        A = np.asarray(A, dtype=np.float64)
        if abs(A[0, 1]) > 1e-12 or abs(A[1, 0]) > 1e-12:
            raise ValueError("an image affine with rotation or shear has no pinhole intrinsics; rotate the 3D instead")
        if self.distorted:
            raise ValueError("transform the undistorted camera (intrinsics.undistorted()) - distortion does not survive a warp")
        return Intrinsics.from_matrix(A @ self.K, width, height)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.fx, self.fy, self.cx, self.cy


@dataclass(frozen=True)
class TargetCamera:
    """Where alignment maps every source: a virtual pinhole ``frame`` and the model's input size.

    ``frame``: the target camera on its own image (official: 736.6339 px focal length, 1920x1080).
    ``size``: (height, width) of the model input (official: 448x448).
    ``resize``: how the frame becomes the model input when aspect ratios differ:
      - ``"stretch"`` (default, what the official release does and its 448-px training videos
        look like): scale x and y independently; the model-input camera has fx != fy.
      - ``"letterbox"``: one scale that fits the whole frame, centred, padded with ``fill``.
      - ``"crop"``: one scale that fills the model input, centred, the frame's sides cropped.
    """

    frame: Intrinsics = field(default_factory=lambda: Intrinsics(736.6339, 736.6339, 960.0, 540.0, 1920, 1080))
    size: tuple[int, int] = (448, 448)
    resize: str = "stretch"

    def __post_init__(self):
        if isinstance(self.size, (int, np.integer)):
            object.__setattr__(self, "size", (int(self.size), int(self.size)))
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise UserValueError(f"TargetCamera.size must be (height, width) positive integers, got {self.size!r}")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.resize not in ("stretch", "letterbox", "crop"):
            raise UserValueError(f"TargetCamera.resize must be 'stretch', 'letterbox' or 'crop', got {self.resize!r}")
        if self.frame.distorted:
            raise UserValueError("the target camera must be an undistorted pinhole (drop its distortion coefficients)")


OFFICIAL_TARGET = TargetCamera()
"""Being-H0's virtual camera (fx = fy = 736.6339, cx = 960, cy = 540, 1920x1080), model input 448x448 stretched."""


# -- distortion on normalised coordinates ---------------------------------------------------------
def distort_normalized(xy: np.ndarray, dist, model: str = "radtan") -> np.ndarray:
    """Undistorted normalised coordinates (..., 2) -> distorted ones, OpenCV's models, float64."""
    xy = np.asarray(xy, dtype=np.float64)
    if dist is None:
        return xy.copy()
    d = np.asarray(dist, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    if model == "radtan":
        k1, k2, p1, p2 = d[:4]
        k3 = d[4] if d.size > 4 else 0.0
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], -1)
    if model == "fisheye":
        r = np.hypot(x, y)
        th = np.arctan(r)
        t2 = th * th
        thd = th * (1 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3]))))
        scale = np.where(r > 1e-12, thd / np.maximum(r, 1e-300), 1.0)
        return xy * scale[..., None]
    raise ValueError(f"unknown distortion model {model!r}; use one of {list(DIST_MODELS)}")


def undistort_normalized(xy_d: np.ndarray, dist, model: str = "radtan", iters: int = 30) -> np.ndarray:
    """Inverse of ``distort_normalized`` by Newton's method (float64; residual < 1e-12 on sane lenses)."""
    xy_d = np.asarray(xy_d, dtype=np.float64)
    if dist is None:
        return xy_d.copy()
    d = np.asarray(dist, dtype=np.float64)
    if model == "fisheye":
        thd = np.hypot(xy_d[..., 0], xy_d[..., 1])
        th = np.minimum(thd, math.pi / 2 - 1e-6)
        for _ in range(iters):
            t2 = th * th
            f = th * (1 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3])))) - thd
            df = 1 + t2 * (3 * d[0] + t2 * (5 * d[1] + t2 * (7 * d[2] + t2 * 9 * d[3])))
            th = np.clip(th - f / df, 0.0, math.pi / 2 - 1e-6)
        scale = np.where(thd > 1e-12, np.tan(th) / np.maximum(thd, 1e-300), 1.0)
        return xy_d * scale[..., None]
    xy = xy_d.copy()
    h = 1e-7
    for _ in range(iters):
        r = distort_normalized(xy, d, model) - xy_d
        if np.all(np.abs(r) < 1e-14):
            break
        jx = (distort_normalized(xy + [h, 0], d, model) - distort_normalized(xy - [h, 0], d, model)) / (2 * h)
        jy = (distort_normalized(xy + [0, h], d, model) - distort_normalized(xy - [0, h], d, model)) / (2 * h)
        det = jx[..., 0] * jy[..., 1] - jy[..., 0] * jx[..., 1]
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        dx = (jy[..., 1] * r[..., 0] - jy[..., 0] * r[..., 1]) / det
        dy = (-jx[..., 1] * r[..., 0] + jx[..., 0] * r[..., 1]) / det
        xy = xy - np.stack([dx, dy], -1)
    return xy


def undistort_pixels(uv: np.ndarray, cam: Intrinsics) -> np.ndarray:
    """Distorted pixel coordinates (..., 2) of ``cam`` -> undistorted pixels ``K @ normalised`` (same K)."""
    uv = np.asarray(uv, dtype=np.float64)
    if not cam.distorted:
        return uv.copy()
    n = np.stack([(uv[..., 0] - cam.cx) / cam.fx, (uv[..., 1] - cam.cy) / cam.fy], -1)
    n = undistort_normalized(n, cam.dist, cam.dist_model)
    return np.stack([n[..., 0] * cam.fx + cam.cx, n[..., 1] * cam.fy + cam.cy], -1)


def project_points(points: np.ndarray, cam: Intrinsics | np.ndarray, *, distort: bool = True) -> np.ndarray:
    """Camera-frame points (..., 3) in metres -> pixels (..., 2). ``cam``: Intrinsics or a 3x3 K.

    With ``distort`` and a distorted camera, the lens model is applied (pixels of the real image).
    Points at z <= 0 project to NaN.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {p.shape}")
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where((z > 0)[..., None], p[..., :2] / z[..., None], np.nan)
    if isinstance(cam, Intrinsics):
        if distort and cam.distorted:
            n = distort_normalized(n, cam.dist, cam.dist_model)
        K = cam.K
    else:
        K = np.asarray(cam, dtype=np.float64)
    return np.stack([n[..., 0] * K[0, 0] + K[0, 1] * n[..., 1] + K[0, 2], n[..., 1] * K[1, 1] + K[1, 2]], -1)
