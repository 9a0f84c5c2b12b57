"""Cleaning 3D keypoint streams before fitting: validity masks, gap interpolation, mirrored
(wrong-chirality) frames and left/right track swaps, in numpy (torch inputs are accepted). Used by ``beingh0.mano.fit``."""
from __future__ import annotations

import numpy as np
import torch

from ..core.constants import NUM_KEYPOINTS
from ..core.errors import UserValueError

#: Palm keypoints used for the rigid initialisation and stage 1: wrist, index/middle/ring/pinky MCP.
PALM = (0, 5, 9, 13, 17)
#: Keypoints off the palm (thumb chain, finger PIP/DIP/tips): they lie on the palm side of a hand.
_OFF_PALM = (1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20)

# ------------------------------------------------------------------------------------------------
# input cleaning


def _as_numpy_keypoints(keypoints, name="keypoints") -> np.ndarray:
    if isinstance(keypoints, torch.Tensor):
        keypoints = keypoints.detach().cpu().double().numpy()
    try:
        kp = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserValueError(f"{name} must be a (T, 21, 3) float array in metres, got {type(keypoints).__name__} "
                             f"({e})") from None
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
        raise UserValueError(f"{name} must have shape (T, 21, 3) (Being-H0 keypoint order, metres), got {kp.shape}; "
                         "add a frame axis with kp[None] for a single frame")
    return kp


def _as_valid(valid, kp: np.ndarray) -> np.ndarray:
    T = kp.shape[0]
    finite = np.isfinite(kp).all(-1)
    if valid is None:
        return finite
    if isinstance(valid, torch.Tensor):
        valid = valid.detach().cpu().numpy()
    v = np.asarray(valid)
    if v.dtype != np.bool_:
        raise TypeError(f"valid must be a bool mask, got dtype {v.dtype}; pass e.g. confidence > 0.5")
    if v.shape == (T,):
        v = np.repeat(v[:, None], NUM_KEYPOINTS, 1)
    elif v.shape != (T, NUM_KEYPOINTS):
        raise UserValueError(f"valid must have shape ({T},) or ({T}, 21) to match keypoints, got {v.shape}")
    return v & finite


#: Plausible wrist-to-middle-MCP length of a human hand in metres (adults: ~0.08-0.11; the
#: embedded hand 0.090, the MediaPipe sequence in shared/data 0.097). Wide on purpose: it is there to
#: catch wrong units (millimetres: ~90, centimetres: ~9), not small or large hands.
HAND_LENGTH_RANGE_M = (0.02, 0.5)


def hand_length(keypoints, valid=None) -> float:
    """Median wrist-to-middle-MCP distance (keypoints 0 and 9) over the frames where both are valid
    and finite, in the keypoints' unit; NaN when no frame has both."""
    kp = _as_numpy_keypoints(keypoints)
    v = _as_valid(valid, kp)
    d = np.linalg.norm(kp[:, 9] - kp[:, 0], axis=-1)
    ok = v[:, 0] & v[:, 9] & np.isfinite(d)
    return float(np.median(d[ok])) if ok.any() else float("nan")


def check_metres(keypoints, valid=None, name: str = "keypoints") -> float:
    """Refuse keypoints whose hand size says they are not in metres (``UserValueError`` naming the
    likely unit: millimetres, centimetres); returns the hand length in metres (NaN: nothing to measure)."""
    L = hand_length(keypoints, valid)
    lo, hi = HAND_LENGTH_RANGE_M
    if not np.isfinite(L) or lo <= L <= hi:
        return L
    if L == 0:
        raise UserValueError(f"{name} have the wrist and the middle-finger MCP (keypoints 0 and 9) at the same point; "
                             "pass 21 keypoints per frame in Being-H0/MediaPipe order, in metres")
    guess = next(((unit, f) for unit, f in (("millimetres", 1000), ("centimetres", 100)) if lo <= L / f <= hi), None)
    what = (f"look like {guess[0]}; divide them by {guess[1]}" if guess else
            "are not in metres; convert them to metres")
    raise UserValueError(f"{name} {what} (median wrist-to-middle-MCP length {L:.4g}; a hand's is {lo}-{hi} m, "
                         "about 0.09 m for an adult). The fit expects metres")


def interpolate_gaps(keypoints, valid, max_gap: int):
    """Fill gaps of at most ``max_gap`` frames by linear interpolation, per keypoint.

    Args:
        keypoints: (T, 21, 3) (or (T, K, D)) numpy/torch; invalid entries may hold anything (NaN).
        valid: (T, 21) bool (or (T,) for whole frames).
        max_gap: longest run of invalid frames that is filled. Longer runs, and runs touching the
            start or end of the sequence (nothing to interpolate towards), stay invalid.

    Returns:
        (keypoints (T, K, D) float64 with filled entries, valid (T, K) bool: the input's valid plus
        the filled entries). Entries left invalid are NaN.
    """
    if isinstance(keypoints, torch.Tensor):
        keypoints = keypoints.detach().cpu().numpy()
    kp = np.array(keypoints, dtype=np.float64, copy=True)
    if kp.ndim != 3:
        raise ValueError(f"keypoints must be (T, K, D), got shape {kp.shape}")
    T, K = kp.shape[:2]
    v = np.asarray(valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else valid, dtype=bool)
    if v.shape == (T,):
        v = np.repeat(v[:, None], K, 1)
    if v.shape != (T, K):
        raise ValueError(f"valid must have shape ({T},) or ({T}, {K}), got {v.shape}")
    if not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise ValueError(f"max_gap must be an integer >= 0, got {max_gap!r}")
    v = v & np.isfinite(kp).all(-1)
    out_v = v.copy()
    frames = np.arange(T)
    for k in range(K):
        good = frames[v[:, k]]
        if good.size < 2:
            continue
        # gaps between consecutive valid frames
        for a, b in zip(good[:-1], good[1:]):
            n = b - a - 1
            if 0 < n <= max_gap:
                w = ((frames[a + 1:b] - a) / (b - a))[:, None]
                kp[a + 1:b, k] = (1 - w) * kp[a, k] + w * kp[b, k]
                out_v[a + 1:b, k] = True
    kp[~out_v] = np.nan
    return kp, out_v


def chirality_scores(keypoints, side: str) -> np.ndarray:
    """Per frame, how clearly the hand has the chirality of ``side``: the mean signed distance of
    the off-palm keypoints (thumb, finger PIP/DIP/tips) from the palm plane (wrist, index MCP,
    pinky MCP), towards the palm side, divided by the wrist-to-middle-MCP length.

    Fingers and thumb only ever flex towards the palm, so a hand of the right chirality scores > 0
    (the MediaPipe right-hand sequence in ``shared/data`` scores 0.03 ... 0.33); a mirrored one
    scores < 0. A flat hand scores about 0 and is ambiguous. For a right hand the palm side is
    +cross(index_mcp - wrist, pinky_mcp - wrist), for a left hand minus that. NaN when a needed
    keypoint is missing.
    """
    kp = _as_numpy_keypoints(keypoints)
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    w = kp[:, 0]
    n = np.cross(kp[:, 5] - w, kp[:, 17] - w) * (1.0 if side == "right" else -1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / np.linalg.norm(n, axis=-1, keepdims=True)
        d = ((kp[:, list(_OFF_PALM)] - w[:, None]) * n[:, None]).sum(-1)
        scale = np.linalg.norm(kp[:, 9] - w, axis=-1)
        ok = np.isfinite(d)
        return np.where(ok, d, 0.0).sum(1) / np.maximum(ok.sum(1), 1) / scale * np.where(ok.any(1), 1.0, np.nan)


def detect_chirality_flips(keypoints, side: str, threshold: float = 0.05) -> np.ndarray:
    """(T,) bool: frames whose keypoints look like the other hand (a left/right swap in a
    single-hand stream shows up as a mirrored palm). See ``chirality_scores``."""
    with np.errstate(invalid="ignore"):
        s = chirality_scores(keypoints, side)
    return np.nan_to_num(s, nan=0.0) < -threshold


def mirror_about_palm(keypoints) -> np.ndarray:
    """Reflect each frame's keypoints (T, 21, 3) about its own palm plane (wrist, index MCP,
    pinky MCP): the palm stays, the fingers go to the other side (repairs a mirrored frame)."""
    kp = _as_numpy_keypoints(keypoints).copy()
    w = kp[:, :1]
    n = np.cross(kp[:, 5] - kp[:, 0], kp[:, 17] - kp[:, 0])
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    d = ((kp - w) * n[:, None]).sum(-1, keepdims=True)
    return kp - 2 * d * n[:, None]


def detect_swaps(left, right):
    """Find frames where the two tracks of a bimanual stream swapped identities.

    Walks the sequence; at each frame compares keeping the labels with swapping them, by the mean
    keypoint distance to the previous (already repaired) frame's tracks, and swaps when that fits
    better. Frames where a hand is missing (all NaN) keep the last seen position of that track.

    Args:
        left, right: (T, 21, 3) keypoints (NaN where missing).

    Returns:
        swapped (T,) bool (the labels of frame t were exchanged), repaired_left, repaired_right.
    """
    L, R = _as_numpy_keypoints(left, "left").copy(), _as_numpy_keypoints(right, "right").copy()
    if L.shape != R.shape:
        raise ValueError(f"left and right must have the same shape, got {L.shape} and {R.shape}")
    T = L.shape[0]
    swapped = np.zeros(T, dtype=bool)

    def dist(a, b):
        m = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
        return float(np.linalg.norm(a[m] - b[m], axis=-1).mean()) if m.any() else np.nan

    last_l, last_r = L[0].copy(), R[0].copy()
    for t in range(1, T):
        keep = np.nansum([dist(L[t], last_l), dist(R[t], last_r)])
        swap = np.nansum([dist(R[t], last_l), dist(L[t], last_r)])
        n_keep = np.isfinite([dist(L[t], last_l), dist(R[t], last_r)]).sum()
        n_swap = np.isfinite([dist(R[t], last_l), dist(L[t], last_r)]).sum()
        if n_keep and n_swap and swap / n_swap < keep / n_keep:
            L[t], R[t] = R[t].copy(), L[t].copy()
            swapped[t] = True
        if np.isfinite(L[t]).any():
            last_l = np.where(np.isfinite(L[t]), L[t], last_l)
        if np.isfinite(R[t]).any():
            last_r = np.where(np.isfinite(R[t]), R[t], last_r)
    return swapped, L, R
