"""Helpers every hand source shares: errors, the hand model, fitting keypoints to MANO, cameras,
text and frame selection (used by the keypoint, MANO-parameter, EgoDex and LeRobot sources)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import UserValueError

from ..episode import HandTrack, TextAnnotations, TextSegment

SIDES = ("left", "right")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck")


class SourceDataError(UserValueError):
    """Malformed raw source data; the message names the file and the field."""


def fail(where, fld: str, msg: str):
    raise SourceDataError(f"{where}: field '{fld}': {msg}")


# ------------------------------------------------------------------------------------------------
# shared helpers: model, fit configuration, keypoints -> HandTrack, video probing


def hand_model(side: str, options: dict | None = None):
    """The hand model for ``side``: ``options['model_dir']`` (real MANO files) or the embedded hand."""
    if side not in SIDES:
        raise UserValueError(f"side must be 'left' or 'right', got {side!r}")
    md = (options or {}).get("model_dir")
    from ...mano.model import hand_model as _hand_model

    return _hand_model(side, md)


def fit_config(options: dict | None):
    """``FitConfig`` from ``options['fit']`` (a dict of FitConfig fields)."""
    from dataclasses import fields

    from ...mano.fit import FitConfig

    d = dict((options or {}).get("fit") or {})
    known = {f.name for f in fields(FitConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserValueError(f"options['fit'] has unknown FitConfig fields {unknown}; valid: {sorted(known)}")
    return FitConfig(**d)


def fit_hand_track(keypoints: np.ndarray, side: str, options: dict | None = None, confidence: np.ndarray | None = None,
                   where: str = "<keypoints>") -> tuple[HandTrack | None, dict]:
    """Fit MANO to one hand's keypoints (T, 21, 3) in the camera frame (NaN = missing).

    ``confidence`` (T, 21) in [0, 1]: keypoints below ``options['conf_threshold']`` (0.1) count as
    missing. Short gaps are interpolated by the fitter (``FitConfig.max_gap``); a frame is valid
    when at least ``options['min_keypoints']`` (11) of its 21 keypoints were observed or filled.
    The per-frame confidence is the mean keypoint confidence (0 for missing keypoints).

    Returns (HandTrack or None when no frame has enough keypoints, fit statistics in mm).
    """
    from ...mano.fit import fit_keypoints

    opts = options or {}
    kp = np.asarray(keypoints, np.float64)
    T = kp.shape[0]
    if kp.shape != (T, 21, 3):
        fail(where, f"{side} keypoints", f"shape {kp.shape}, expected (T, 21, 3)")
    conf = np.ones((T, 21)) if confidence is None else np.asarray(confidence, np.float64)
    if conf.shape == (T,):
        conf = np.repeat(conf[:, None], 21, 1)
    if conf.shape != (T, 21):
        fail(where, f"{side} confidence", f"shape {conf.shape}, expected ({T},) or ({T}, 21)")
    conf = np.nan_to_num(conf, nan=0.0)
    if (conf < 0).any() or (conf > 1).any():
        fail(where, f"{side} confidence", "values must lie in [0, 1]")
    thr = float(opts.get("conf_threshold", 0.1))
    observed = np.isfinite(kp).all(-1) & (conf >= thr)
    min_kp = int(opts.get("min_keypoints", 11))
    stats = {"frames": T, "observed_fraction": float(observed.mean()) if T else 0.0}
    if observed.sum(1).max(initial=0) < min_kp:
        stats["skipped"] = f"no frame has {min_kp} keypoints above confidence {thr}"
        return None, stats
    cfg = fit_config(opts)
    res = fit_keypoints(hand_model(side, opts), kp, valid=observed, config=cfg)
    filled = np.isfinite(res.per_joint_error_mm) | res.interpolated
    valid = filled.sum(1) >= min_kp
    track = HandTrack.from_params(res.global_orient, res.hand_pose, res.betas, res.trans, valid,
                                  np.clip((conf * observed).mean(1), 0, 1))
    s = res.summary()
    stats.update(mean_error_mm=round(s["mean_mm"], 3), median_error_mm=round(s["median_mm"], 3), p90_error_mm=round(s["p90_mm"], 3),
                 valid_frames=int(valid.sum()), chirality_flips=s["chirality_flips"], discontinuities=s["discontinuities"],
                 fit_time_s=round(s["time_s"], 3))
    return track, stats


def video_info(path: Path) -> tuple[int, int, int, float]:
    """(width, height, frame count, fps) of a video file without decoding it."""
    from ..extras import require

    av = require("av", "data", "video I/O (mp4, AV1)")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise SourceDataError(f"{path}: no video stream")
            s = c.streams.video[0]
            n = int(s.frames or 0)
            if n == 0 and s.duration is not None and s.average_rate:
                n = int(round(float(s.duration * s.time_base) * float(s.average_rate)))
            return int(s.width), int(s.height), n, float(s.average_rate or 0)
    except av.error.FFmpegError as e:
        raise SourceDataError(f"{path}: not a readable video ({e})") from None


def nominal_intrinsics(width: int, height: int, fov_deg: float = 60.0) -> tuple[float, float, float, float]:
    """A pinhole camera with the given horizontal field of view (for sources without calibration)."""
    f = width / (2 * math.tan(math.radians(fov_deg) / 2))
    return f, f, width / 2, height / 2


def parse_intrinsics(K, T: int, where, fld: str = "intrinsics") -> np.ndarray:
    """(4,), (T, 4), (3, 3) or (T, 3, 3) -> (T, 4) fx fy cx cy, finite, focal lengths > 0."""
    K = np.asarray(K, np.float64)
    if K.shape == (3, 3):
        K = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    elif K.shape == (T, 3, 3):
        K = np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], 1)
    if K.shape == (4,):
        K = np.tile(K, (T, 1))
    if K.shape != (T, 4):
        fail(where, fld, f"shape {K.shape}, expected (4,) fx fy cx cy, ({T}, 4), (3, 3) or ({T}, 3, 3)")
    if not np.isfinite(K).all() or (K[:, :2] <= 0).any():
        fail(where, fld, "must be finite with focal lengths > 0 (pixels)")
    return K


def parse_rigid(E, T: int, where, fld: str) -> np.ndarray:
    """(4, 4) or (T, 4, 4) rigid transforms -> (T, 4, 4) float64, validated."""
    E = np.asarray(E, np.float64)
    if E.shape == (4, 4):
        E = np.tile(E, (T, 1, 1))
    if E.shape != (T, 4, 4):
        fail(where, fld, f"shape {E.shape}, expected (4, 4) or ({T}, 4, 4)")
    if not np.isfinite(E).all():
        bad = np.flatnonzero(~np.isfinite(E).reshape(T, -1).all(1))
        fail(where, fld, f"NaN or inf at frames {bad[:5].tolist()}")
    R = E[:, :3, :3]
    if np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max() > 1e-3 or (np.linalg.det(R) < 0).any():
        fail(where, fld, "rotation part is not a proper rotation (orthonormal, det +1)")
    if not np.allclose(E[:, 3], [0, 0, 0, 1], atol=1e-6):
        fail(where, fld, "last row must be 0 0 0 1")
    return E


def world_to_camera(points: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """Points (T, ..., 3) in the world -> camera frame, given per-frame cam_to_world (T, 4, 4)."""
    R, c = cam_to_world[:, :3, :3], cam_to_world[:, :3, 3]
    T = points.shape[0]
    p = points.reshape(T, -1, 3) - c[:, None]
    return np.einsum("tji,tnj->tni", R, p).reshape(points.shape)  # R^T (p - c)


def text_from_dict(d: Any, where) -> TextAnnotations:
    if d is None:
        return TextAnnotations()
    if not isinstance(d, dict):
        fail(where, "text", "must be an object with instruction / summary / per_hand / segments")
    try:
        segs = [TextSegment(float(s["t0"]), float(s["t1"]), str(s["instruction"]), str(s.get("caption", "")), str(s.get("hand", "both")))
                for s in d.get("segments", [])]
        return TextAnnotations(str(d.get("instruction", "")), str(d.get("summary", "")), {str(k): str(v) for k, v in d.get("per_hand", {}).items()}, segs)
    except (KeyError, TypeError, ValueError) as e:
        fail(where, "text.segments", f"each segment needs t0, t1 (seconds) and instruction ({e})")


def episode_key(item: str) -> str:
    """A schema-valid episode id from an item path (letters, digits, '_' and '-')."""
    import re

    stem = item.rsplit(".", 1)[0] if "." in Path(item).name else item
    return re.sub(r"[^A-Za-z0-9_\-]+", "-", stem).strip("-") or "episode"


def frame_selection(T: int, options: dict) -> np.ndarray:
    """Frame indices kept: every ``stride``-th, at most ``max_frames``."""
    stride = options.get("stride", 1)
    if not isinstance(stride, int) or stride < 1:
        raise UserValueError(f"options['stride']={stride!r} must be an integer >= 1")
    idx = np.arange(0, T, stride)
    mf = options.get("max_frames")
    if mf is not None:
        if not isinstance(mf, int) or mf < 1:
            raise UserValueError(f"options['max_frames']={mf!r} must be an integer >= 1")
        idx = idx[:mf]
    return idx
