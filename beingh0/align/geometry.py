"""Weak-perspective alignment as one image affine: source pixels -> target frame -> model input.

Paper section 4.2.1 and ENGINEERING.md section 4. Three maps, all affine, composed into one
``dst_from_src`` so the image is resampled once from the true input (the official release runs
three OpenCV passes and force-resizes the input to 3840x2160 first, which breaks other sizes):

1. ``frame_from_src = K_tgt @ inv(K_src)``: per axis x' = (f_tgt / f_src) * x + (c_tgt - s * c_src).
   It acts on *undistorted* source pixels (``K_src @ normalised``); the warp undistorts.
2. optional balancing affine on the target frame (``beingh0.align.balance``), about its principal
   point.
3. ``model_from_frame`` (``model_from_frame_matrix``): the target frame (e.g. 1920x1080) to the
   model input (e.g. 448x448); its stretch is ``beingh0.ops.warp.resize_matrix`` (re-exported here).

Crop/pad rules. Step 1 places the source's principal point on the target's principal point (the
frame centre for the official camera) at the target's pixel scale; whatever falls outside the
target frame is cropped and whatever the source does not cover is padded (``fill``; the warp's
mask marks it). So a source with a wider field of view is cropped, a narrower one padded, both
about the principal point, not about the image centre. Step 3 follows ``TargetCamera.resize``:
``stretch`` scales each axis on its own (official), ``letterbox`` keeps the aspect ratio and pads
(centred), ``crop`` keeps it and crops (centred). All maps use pixel centres at integer
coordinates: resizing W -> w maps x to (x + 0.5) * w / W - 0.5.

The 3D hand (MANO ``trans``, ``global_orient``, joints) is unchanged by alignment: the returned
``K_model`` projects it straight onto the model input.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .camera import OFFICIAL_TARGET, Intrinsics, TargetCamera, undistort_pixels

__all__ = ["Alignment", "align_matrix", "resize_matrix", "model_from_frame_matrix", "apply_affine",
           "frame_from_src_matrix"]


def apply_affine(A: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Apply a 3x3 affine (last row 0, 0, 1) to points (..., 2)."""
    A = np.asarray(A, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    return uv @ A[:2, :2].T + A[:2, 2]


def model_from_frame_matrix(target: TargetCamera) -> np.ndarray:
    """(3, 3) affine from the target frame's pixels to the model input's, by ``target.resize``:
    ``stretch`` is :func:`beingh0.ops.warp.resize_matrix` (each axis on its own); ``letterbox`` /
    ``crop`` scale both axes by the smaller / larger factor and centre the result (pad / crop).

    Pixel centres at integers: x_dst = s_x * (x_src + 0.5 - W_src / 2) + W_dst / 2 - 0.5.
    """
    if not isinstance(target, TargetCamera):
        raise TypeError(f"target must be a TargetCamera, got {type(target).__name__}")
    (hs, ws), (hd, wd) = target.frame.size, target.size
    return _model_from_frame(ws, hs, wd, hd, target.resize).copy()


def __getattr__(name):
    # ``resize_matrix`` is beingh0.ops.warp's (sizes as (width, height), a torch tensor), re-exported
    # lazily: importing beingh0.ops costs seconds that code using only the geometry need not pay
    if name == "resize_matrix":
        from ..ops.warp import resize_matrix

        return resize_matrix
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=64)
def _model_from_frame(ws: int, hs: int, wd: int, hd: int, mode: str) -> np.ndarray:
    # cached: the balancing sampler asks for it per candidate move, and building a torch tensor costs ~100 us
    from ..ops.warp import resize_matrix

    if mode == "stretch":
        return resize_matrix((ws, hs), (wd, hd)).numpy()
    sx, sy = wd / ws, hd / hs
    s = min(sx, sy) if mode == "letterbox" else max(sx, sy)
    M = resize_matrix((ws, hs), (s * ws, s * hs)).numpy()      # uniform scale, then centre
    M[0, 2] += (wd - s * ws) / 2
    M[1, 2] += (hd - s * hs) / 2
    return M


def frame_from_src_matrix(src: Intrinsics, frame: Intrinsics) -> np.ndarray:
    """``K_tgt @ inv(K_src)``: undistorted source pixels -> target-frame pixels."""
    return frame.K @ np.linalg.inv(src.K)


@dataclass(frozen=True)
class Alignment:
    """One source camera aligned to a target.

    ``dst_from_src``: (3, 3) undistorted source pixels -> model-input pixels (pass to ``warp_align``).
    ``frame_from_src``, ``balance``, ``model_from_frame``: its three factors (``balance`` is the
    identity without balancing). ``K_model``: the model input's pinhole camera (no distortion);
    projecting the (balanced) 3D hand with it lands on the warped content. ``out_hw``: (h, w).
    """

    src: Intrinsics
    target: TargetCamera
    frame_from_src: np.ndarray
    balance: np.ndarray
    model_from_frame: np.ndarray
    dst_from_src: np.ndarray
    K_model: Intrinsics

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.target.size

    def src_to_model(self, uv_src: np.ndarray) -> np.ndarray:
        """Pixels of the real (possibly distorted) source image (..., 2) -> model-input pixels."""
        return apply_affine(self.dst_from_src, undistort_pixels(uv_src, self.src))


def align_matrix(src: Intrinsics, target: TargetCamera | Intrinsics = OFFICIAL_TARGET, *,
                 size: int | tuple[int, int] | None = None, resize: str | None = None,
                 balance: np.ndarray | None = None) -> Alignment:
    """Alignment of camera ``src`` to ``target`` (default: the official Being-H0 camera, 448x448).

    ``target`` may be a bare ``Intrinsics`` (the target frame); ``size`` (int or (h, w)) and
    ``resize`` override the target's model-input size and resize rule. ``balance``: an optional
    3x3 affine on target-frame pixels (from ``beingh0.align.balance.balance_affine``) applied
    between alignment and resize. See the module docstring for the crop/pad rules.
    """
    if not isinstance(src, Intrinsics):
        raise TypeError(f"src must be beingh0.align.Intrinsics, got {type(src).__name__}; build one with "
                        "Intrinsics(fx, fy, cx, cy, width, height)")
    if isinstance(target, Intrinsics):
        target = TargetCamera(frame=target, size=size if size is not None else OFFICIAL_TARGET.size,
                              resize=resize or OFFICIAL_TARGET.resize)
    elif isinstance(target, TargetCamera):
        if size is not None or resize is not None:
            target = TargetCamera(frame=target.frame, size=size if size is not None else target.size,
                                  resize=resize or target.resize)
    else:
        raise TypeError(f"target must be TargetCamera or Intrinsics, got {type(target).__name__}")
    B = np.eye(3) if balance is None else np.asarray(balance, dtype=np.float64)
    if B.shape != (3, 3) or not np.all(np.isfinite(B)) or np.any(B[2] != [0, 0, 1]):
        raise ValueError(f"balance must be a finite 3x3 affine with last row (0, 0, 1), got {B.tolist()}")
    F = frame_from_src_matrix(src, target.frame)
    M = model_from_frame_matrix(target)
    K_model = target.frame.transformed(M, target.size[1], target.size[0])
    return Alignment(src=src, target=target, frame_from_src=F, balance=B, model_from_frame=M,
                     dst_from_src=M @ B @ F, K_model=K_model)
