"""3D hand-keypoint sequences -> MANO episodes (paper section 5.2.1: "when only 3D hand joint
positions are available, we derive the corresponding MANO parameters via gradient-based
optimization", after left/right mismatch repair and gap interpolation).

Layout (see docs/sources.md): a folder of sequences, one per file, metres, 21 keypoints per hand
in the Being-H0 / MediaPipe / OpenPose order (``beingh0.core.constants.KEYPOINT_NAMES``); NaN
marks a missing keypoint.

``<name>.npy``
    (T, 21, 3) one hand (side from the options, the sidecar, or "left"/"right" in the file name;
    default right) or (T, 2, 21, 3) left then right.
``<name>.npz``
    ``right`` and/or ``left`` (T, 21, 3); optional ``<side>_confidence`` (T,) or (T, 21) in
    [0, 1]; ``fps`` (); ``intrinsics`` (4,) fx fy cx cy, (T, 4) or (3, 3); ``image_size`` (2,)
    width height; ``cam_to_world`` (4, 4) or (T, 4, 4) (OpenCV camera axes) -- when given, the
    keypoints are in that world frame and are moved into the camera frame.
``<name>.json`` (optional sidecar, also for .npy)
    ``fps``, ``side``, ``frame`` ("camera" | "world" | "wrist"), ``video`` (path relative to the
    file), ``video_frame_offset``, ``intrinsics``, ``image_size``, ``text`` ({instruction, summary,
    per_hand, segments}), ``license``.

Options (``load_item(root, item, options)``) override the sidecar and add: ``fit`` (FitConfig
fields), ``model_dir`` (folder with MANO_RIGHT/LEFT .pkl/.npz/.safetensors; default: the embedded
non-MANO hand), ``conf_threshold`` (0.1), ``min_keypoints`` (11), ``stride`` (1), ``max_frames``,
``swap_repair`` (True), ``wrist_position`` (for frame "wrist": where to put the wrist in the
camera frame; default: leave the data where it is and flag it in ``meta``), ``fov_deg`` (60,
nominal horizontal field of view when no intrinsics are known).

Pickles are never loaded (``np.load(allow_pickle=False)``); ``.pkl`` files are refused.

This module also holds the helpers the other hand sources share: ``SourceDataError``,
``hand_model``, ``fit_config``, ``fit_hand_track`` and ``video_info``.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import UserFileError, UserValueError

from ..episode import CameraTrack, Episode, Frames, HandTrack, TextAnnotations, TextSegment
from . import Source

SIDES = ("left", "right")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck")


class SourceDataError(ValueError):
    """Malformed raw source data; the message names the file and the field."""


def fail(where, fld: str, msg: str):
    raise SourceDataError(f"{where}: field '{fld}': {msg}")


# ------------------------------------------------------------------------------------------------
# shared helpers: model, fit configuration, keypoints -> HandTrack, video probing


@lru_cache(maxsize=8)
def _model(side: str, model_dir: str | None):
    from ...mano.model import ManoModel

    if model_dir is None:
        return ManoModel.embedded(side)
    d = Path(model_dir)
    for name in (f"MANO_{side.upper()}.pkl", f"MANO_{side.upper()}.npz", f"MANO_{side.upper()}.safetensors",
                 f"mano_{side}.npz", f"mano_{side}.safetensors"):
        if (d / name).is_file():
            return ManoModel.from_file(d / name, side=side)
    raise UserFileError(f"model_dir {d}: no MANO_{side.upper()}.pkl/.npz/.safetensors found for the {side} hand")


def hand_model(side: str, options: dict | None = None):
    """The hand model for ``side``: ``options['model_dir']`` (real MANO files) or the embedded hand."""
    if side not in SIDES:
        raise UserValueError(f"side must be 'left' or 'right', got {side!r}")
    md = (options or {}).get("model_dir")
    return _model(side, None if md is None else str(Path(md).resolve()))


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
    from ..video import _av

    av = _av()
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


# ------------------------------------------------------------------------------------------------
# the keypoint source


def _load_array_file(path: Path) -> dict[str, np.ndarray]:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise SourceDataError(f"{path}: pickled files are refused (unpickling runs code); convert it to .npy/.npz with plain float arrays")
    if not path.is_file():
        raise UserFileError(f"{path}: no such keypoint file")
    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise SourceDataError(f"{path}: holds pickled objects ({e}); save plain float arrays with numpy.save / numpy.savez") from None
    except (OSError, EOFError) as e:
        raise SourceDataError(f"{path}: not a readable .npy/.npz file ({e})") from None
    if isinstance(z, np.ndarray):
        return {"__array__": z}
    out = {}
    try:
        with z:
            for k in z.files:
                out[k] = z[k]
    except ValueError as e:
        raise SourceDataError(f"{path}: field '{k}': holds pickled objects ({e}); save plain arrays with numpy.savez") from None
    return out


def _keypoint_array(a, where, fld) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        fail(where, fld, f"dtype {a.dtype}; expected float keypoints in metres")
    if a.ndim != 3 or a.shape[1:] != (21, 3):
        fail(where, fld, f"shape {a.shape}, expected (T, 21, 3) (21 keypoints, Being-H0/MediaPipe order, metres)")
    if np.isinf(a).any():
        fail(where, fld, "contains inf (use NaN for missing keypoints)")
    finite = a[np.isfinite(a)]
    if finite.size and np.abs(finite).max() > 100:
        fail(where, fld, f"values up to {np.abs(finite).max():.3g}: keypoints must be in metres (millimetre data? divide by 1000)")
    return a.astype(np.float64)


def _side_from_name(name: str) -> str | None:
    n = name.lower()
    return "left" if "left" in n else "right" if "right" in n else None


def _list_items(root, options) -> list[str]:
    if root is None:
        raise UserValueError("the keypoints source needs a data folder (root)")
    root = Path(root)
    if not root.is_dir():
        raise UserFileError(f"{root}: no such folder")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in (".npy", ".npz") and p.is_file())


def load_sequence(path: Path, options: dict) -> dict:
    """Read one keypoint file (+ sidecar) into plain arrays and settings (no fitting)."""
    data = _load_array_file(path)
    side_car = path.with_suffix(".json")
    meta: dict = {}
    if side_car.is_file():
        try:
            meta = json.loads(side_car.read_text())
        except json.JSONDecodeError as e:
            raise SourceDataError(f"{side_car}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise SourceDataError(f"{side_car}: top level must be an object")
    cfg = {**meta, **{k: v for k, v in options.items() if v is not None}}
    hands: dict[str, np.ndarray] = {}
    confs: dict[str, np.ndarray] = {}
    if "__array__" in data:
        a = np.asarray(data["__array__"])
        if a.ndim == 4 and a.shape[1] == 2:
            hands["left"] = _keypoint_array(a[:, 0], path, "array[:, 0] (left)")
            hands["right"] = _keypoint_array(a[:, 1], path, "array[:, 1] (right)")
        else:
            side = cfg.get("side") or _side_from_name(path.stem) or "right"
            if side not in SIDES:
                fail(path, "side", f"{side!r} must be 'left' or 'right'")
            hands[side] = _keypoint_array(a, path, "array")
    else:
        for side in SIDES:
            if side in data:
                hands[side] = _keypoint_array(data[side], path, side)
                if f"{side}_confidence" in data:
                    confs[side] = np.asarray(data[f"{side}_confidence"], np.float64)
        if not hands:
            fail(path, "left/right", f"no 'left' or 'right' keypoint array; the file holds {sorted(data)}")
        for k in ("fps", "intrinsics", "image_size", "cam_to_world"):
            if k in data and k not in options:
                cfg[k] = data[k]
    lens = {s: len(a) for s, a in hands.items()}
    if len(set(lens.values())) != 1:
        fail(path, "left/right", f"the hands have different frame counts {lens}")
    T = next(iter(lens.values()))
    if T == 0:
        fail(path, "keypoints", "no frames")
    return {"hands": hands, "conf": confs, "cfg": cfg, "T": T}


def _load_item(root, item, options) -> list[Episode]:
    options = dict(options or {})
    path = Path(item) if root is None else Path(root) / item
    seq = load_sequence(path, options)
    cfg, T = seq["cfg"], seq["T"]
    fps = float(cfg.get("fps", 30.0))
    if not (math.isfinite(fps) and fps > 0):
        fail(path, "fps", f"must be a positive number, got {fps!r}")
    frame = cfg.get("frame", "world" if "cam_to_world" in cfg else "camera")
    if frame not in ("camera", "world", "wrist"):
        fail(path, "frame", f"{frame!r} must be 'camera', 'world' or 'wrist'")
    keep = frame_selection(T, options)
    hands = {s: a[keep] for s, a in seq["hands"].items()}
    confs = {s: (c[keep] if c.ndim >= 1 and len(c) == T else c) for s, c in seq["conf"].items()}
    n = len(keep)
    meta: dict[str, Any] = {"source_file": str(item), "keypoint_frame": frame, "frame_indices_from": int(keep[0]),
                            "stride": int(options.get("stride", 1))}
    # left/right swaps of a bimanual stream (labels exchanged between the two tracks)
    if len(hands) == 2 and cfg.get("swap_repair", True):
        from ...mano.clean import detect_swaps

        swapped, hands["left"], hands["right"] = detect_swaps(hands["left"], hands["right"])
        meta["swapped_frames"] = np.flatnonzero(swapped).tolist()
        for side in list(confs):
            other = "right" if side == "left" else "left"
            if other in confs and confs[side].shape == confs[other].shape:
                c_l, c_r = confs["left"].copy(), confs["right"].copy()
                c_l[swapped], c_r[swapped] = confs["right"][swapped], confs["left"][swapped]
                confs["left"], confs["right"] = c_l, c_r
                break
    # video and camera
    video, width, height = None, None, None
    if cfg.get("video"):
        video = (path.parent / cfg["video"]) if not Path(cfg["video"]).is_absolute() else Path(cfg["video"])
        if not video.is_file():
            fail(path, "video", f"{video} not found")
        width, height, n_video, _ = video_info(video)
        meta["video_frames"] = n_video
    if "image_size" in cfg:
        width, height = (int(x) for x in np.asarray(cfg["image_size"]).reshape(2))
    if "intrinsics" in cfg:
        K = parse_intrinsics(cfg["intrinsics"], T, path)[keep]
        meta["camera_calibrated"] = True
        if width is None:
            fail(path, "image_size", "intrinsics given without image_size (width, height) or a video")
    else:
        width, height = width or 1920, height or 1080
        K = np.tile(nominal_intrinsics(width, height, float(cfg.get("fov_deg", 60.0))), (n, 1))
        meta["camera_calibrated"] = False
    E = np.tile(np.eye(4), (n, 1, 1))
    if frame == "world":
        if "cam_to_world" not in cfg:
            fail(path, "cam_to_world", "frame 'world' needs per-frame camera-to-world extrinsics")
        E = parse_rigid(cfg["cam_to_world"], T, path, "cam_to_world")[keep]
        hands = {s: world_to_camera(a, E) for s, a in hands.items()}
    elif frame == "wrist":
        wp = cfg.get("wrist_position")
        if wp is not None:
            wp = np.asarray(wp, np.float64).reshape(3)
            hands = {s: a + wp for s, a in hands.items()}
        meta["trans_meaningful"] = wp is not None
        meta["note"] = ("keypoints are wrist-centred (no camera frame): trans is the wrist in that frame"
                        + ("" if wp is None else f", moved to {wp.tolist()} m") + "; global_orient is relative to the data's wrist frame")
    # fit each hand
    tracks, fit_stats = {}, {}
    for side, kp in hands.items():
        track, st = fit_hand_track(kp, side, options, confs.get(side), where=f"{path} ({side})")
        fit_stats[side] = st
        if track is not None:
            tracks[side] = track
    meta["fit"] = fit_stats
    if not tracks:
        return []
    frames = Frames()
    if video is not None:
        off = int(cfg.get("video_frame_offset", 0))
        idx = keep.astype(np.int64) + off
        if meta.get("video_frames") and idx.max() >= meta["video_frames"]:
            fail(path, "video", f"keypoint frame {int(idx.max())} has no video frame (the video has {meta['video_frames']})")
        rel = video.relative_to(Path(root)) if root is not None and video.is_relative_to(Path(root)) else video
        frames = Frames("external", idx, None, rel.as_posix())
    text = text_from_dict(cfg.get("text"), path)
    cam = CameraTrack(K, int(width), int(height), E)
    ep = Episode(episode_key(str(item)), SOURCE.name, str(cfg.get("license", SOURCE.license)), fps / int(options.get("stride", 1)),
                 n, tracks, cam, frames, text, meta)
    return [ep.validate(str(path))]


SOURCE = Source(
    name="keypoints",
    license="see-source",
    description="3D hand keypoint sequences (21 per hand, MediaPipe/OpenPose order, metres; .npy/.npz) fitted to MANO",
    list_items=_list_items,
    load_item=_load_item,
    redistributable=False,
)
