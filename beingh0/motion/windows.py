"""Time handling of motion: resampling to 15 FPS, 1-second windows and canonical (reference) frames
(ENGINEERING.md section 4, "Windows").

Parameter dicts hold per-frame tensors: global_orient (T, 3), hand_pose (T, 45) axis-angle,
trans (T, 3), optionally betas ((S,) per sequence or (T, S) per frame) and joints (T, 21, 3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.rotations import axis_angle_to_matrix, matrix_to_axis_angle, slerp_axis_angle

__all__ = ["FPS", "WINDOW_FRAMES", "WINDOW_PAD", "REFERENCE_BACK_FRAMES", "resample", "make_windows",
           "CanonicalFrame", "canonical_frame", "canonicalize", "decanonicalize", "sample_reference_index"]

FPS = 15                     #: motion sampling rate (ENGINEERING.md section 3)
WINDOW_FRAMES = 15           #: one second per window
WINDOW_PAD = 16              #: windows are zero-padded to the tokenizer's 4x downsampling multiple
REFERENCE_BACK_FRAMES = 150  #: reference frames are drawn from the 10 s (15 FPS x 10) before a window

_ROT_KEYS = ("global_orient", "hand_pose")
_LIN_KEYS = ("trans", "betas", "joints")


def _time_major(params: dict, T: int | None = None) -> int:
    unknown = set(params) - set(_ROT_KEYS) - set(_LIN_KEYS)
    if unknown:
        raise ValueError(f"unknown parameter keys {sorted(unknown)}; supported: {list(_ROT_KEYS + _LIN_KEYS)}")
    for key in ("global_orient", "trans"):
        if key not in params:
            raise ValueError(f"params needs {key!r} (T, 3); got keys {sorted(params)}")
    T = params["global_orient"].shape[0] if T is None else T
    for key, x in params.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"params[{key!r}] must be a torch.Tensor, got {type(x).__name__}")
        if key == "betas" and x.dim() == 1:
            continue
        if x.dim() < 2 or x.shape[0] != T:
            raise ValueError(f"params[{key!r}] must be time-major (T={T}, ...), got shape {tuple(x.shape)}")
    for key, width in (("global_orient", 3), ("hand_pose", 45), ("trans", 3)):
        if key in params and params[key].shape[1:] != (width,):
            raise ValueError(f"params[{key!r}] must be (T, {width}), got {tuple(params[key].shape)}")
    return T


def resample(params: dict, src_fps: float, dst_fps: float = FPS) -> dict:
    """Resample a sequence from ``src_fps`` to ``dst_fps`` on the grid t_k = k / dst_fps.

    The new grid starts at the first source frame and covers the source duration (T - 1) / src_fps:
    T' = floor((T - 1) dst_fps / src_fps) + 1 frames. Rotations (global_orient and each of the 15
    hand_pose joints) are slerped along the shortest arc between the two neighbouring source frames;
    trans, per-frame betas and joints are linearly interpolated; per-sequence betas (S,) are copied.
    Axis-angle outputs have angle in [0, pi].
    """
    if not (src_fps > 0 and dst_fps > 0):
        raise ValueError(f"src_fps and dst_fps must be > 0, got {src_fps} and {dst_fps}")
    T = _time_major(params)
    if T == 0:
        raise ValueError("cannot resample an empty sequence (T = 0)")
    ratio = src_fps / dst_fps
    n_out = int(math.floor((T - 1) / ratio + 1e-9)) + 1
    ref = params["global_orient"]
    pos = torch.arange(n_out, dtype=torch.float64) * ratio            # source-frame units
    # Snap positions within 1e-9 of an integer, so integer FPS ratios hit source frames exactly.
    pos = torch.where((pos - pos.round()).abs() < 1e-9, pos.round(), pos)
    lo = pos.floor().long().clamp(0, max(T - 2, 0))
    hi = (lo + 1).clamp(max=T - 1)
    frac = (pos - lo.double()).to(device=ref.device)
    lo, hi = lo.to(ref.device), hi.to(ref.device)
    out = {}
    for key, x in params.items():
        if key == "betas" and x.dim() == 1:
            out[key] = x.clone()
            continue
        f = frac.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        if key in _ROT_KEYS:
            r = x.reshape(T, -1, 3)
            out[key] = slerp_axis_angle(r[lo], r[hi], f).reshape(n_out, *x.shape[1:])
        else:
            out[key] = x[lo] + f * (x[hi] - x[lo])
    return out


def make_windows(x: torch.Tensor, frames: int = WINDOW_FRAMES, pad_to: int = WINDOW_PAD):
    """Cut features (T, D) into consecutive ``frames``-long windows, zero-padded to ``pad_to`` rows.

    Returns (windows (N, pad_to, D), mask (N, pad_to) bool) with N = ceil(T / frames); window i
    holds frames [i * frames, min((i + 1) * frames, T)), mask is True on real frames. Rows past
    ``frames`` (and past T in the last window) are zeros with mask False.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a (T, D) tensor, got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
    if frames < 1 or pad_to < frames:
        raise ValueError(f"need 1 <= frames <= pad_to, got frames={frames}, pad_to={pad_to}")
    T, D = x.shape
    if T == 0:
        raise ValueError("cannot window an empty sequence (T = 0)")
    N = -(-T // frames)
    padded = x.new_zeros(N * frames, D)
    padded[:T] = x
    valid = torch.zeros(N * frames, dtype=torch.bool, device=x.device)
    valid[:T] = True
    windows = x.new_zeros(N, pad_to, D)
    mask = torch.zeros(N, pad_to, dtype=torch.bool, device=x.device)
    windows[:, :frames] = padded.reshape(N, frames, D)
    mask[:, :frames] = valid.reshape(N, frames)
    return windows, mask


@dataclass
class CanonicalFrame:
    """A reference frame: wrist rotation ``rotation`` (3, 3) and wrist position ``origin`` (3,)."""

    rotation: torch.Tensor
    origin: torch.Tensor


def canonical_frame(params: dict, ref_index: int = 0) -> CanonicalFrame:
    """The wrist frame of frame ``ref_index`` (negative indices count from the end)."""
    T = _time_major(params)
    if not -T <= ref_index < T:
        raise ValueError(f"ref_index {ref_index} is outside the sequence of T={T} frames")
    return CanonicalFrame(axis_angle_to_matrix(params["global_orient"][ref_index]), params["trans"][ref_index])


def _transform(params: dict, rot: torch.Tensor, origin_before: torch.Tensor, origin_after: torch.Tensor) -> dict:
    """global_orient <- rot @ R_t; trans <- rot @ (t_t - origin_before) + origin_after; joints rotated."""
    out = dict(params)
    R = axis_angle_to_matrix(params["global_orient"])
    out["global_orient"] = matrix_to_axis_angle(rot @ R)
    out["trans"] = ((params["trans"] - origin_before) @ rot.T) + origin_after
    if "joints" in params:   # absolute keypoints: move with the wrist
        out["joints"] = ((params["joints"] - origin_before) @ rot.T) + origin_after
    return out


def canonicalize(params: dict, ref_index: int = 0, *, frame: CanonicalFrame | None = None):
    """Express a window in the wrist frame of a reference frame.

    global_orient_t <- R_ref^T R_t and trans_t <- R_ref^T (t_t - t_ref); hand_pose and betas are
    unchanged. This rigid map is exact for Being-H0's trans convention (trans = wrist joint
    position, ``ManoModel(trans_mode="wrist")``): the hand rotates about its wrist.

    Args:
        params: time-major parameter dict (see module docstring).
        ref_index: index of the reference frame in ``params`` (0 = first frame, Being-H0's choice
            at inference). Ignored when ``frame`` is given.
        frame: an explicit reference (e.g. from ``canonical_frame`` on a longer sequence, when the
            training reference lies before the window: see ``sample_reference_index``).
    Returns:
        (canonical params, CanonicalFrame), the frame being what ``decanonicalize`` needs.
    """
    if frame is None:
        frame = canonical_frame(params, ref_index)
    else:
        _time_major(params)
    R, t = frame.rotation, frame.origin
    return _transform(params, R.T, t, torch.zeros_like(t)), frame


def decanonicalize(params: dict, frame: CanonicalFrame) -> dict:
    """Inverse of ``canonicalize``: global_orient_t <- R_ref R'_t, trans_t <- R_ref t'_t + t_ref."""
    _time_major(params)
    R, t = frame.rotation, frame.origin
    return _transform(params, R, torch.zeros_like(t), t)


def sample_reference_index(rng, window_start: int, max_back_frames: int = REFERENCE_BACK_FRAMES) -> int:
    """Draw the training reference frame for a window starting at ``window_start``.

    Uniform over [max(0, window_start - max_back_frames), window_start] (inclusive): any frame of
    the 10 seconds before the window start (15 FPS x 10 = 150 frames), never before frame 0.
    ``rng`` is a ``numpy.random.Generator`` or a ``torch.Generator``.
    """
    if isinstance(window_start, bool) or not isinstance(window_start, (int, np.integer)) or window_start < 0:
        raise ValueError(f"window_start must be an int >= 0, got {window_start!r}")
    if isinstance(max_back_frames, bool) or not isinstance(max_back_frames, (int, np.integer)) or max_back_frames < 0:
        raise ValueError(f"max_back_frames must be an int >= 0, got {max_back_frames!r}")
    low = max(0, int(window_start) - int(max_back_frames))
    high = int(window_start)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(low, high + 1))
    if isinstance(rng, torch.Generator):
        return int(torch.randint(low, high + 1, (1,), generator=rng).item())
    raise TypeError(f"rng must be numpy.random.Generator (np.random.default_rng(seed)) or torch.Generator, "
                    f"got {type(rng).__name__}")
