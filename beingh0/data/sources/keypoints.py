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

The helpers the hand sources share (``SourceDataError``, ``hand_model``, ``fit_hand_track``, ...)
live in ``beingh0.data.sources.common``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import UserFileError, UserValueError

from ..episode import CameraTrack, Episode, Frames
from . import Source
from .common import (PICKLE_SUFFIXES, SIDES, SourceDataError, episode_key, fail, fit_hand_track, frame_selection, nominal_intrinsics,
                     parse_intrinsics, parse_rigid, text_from_dict, video_info, world_to_camera)

# ------------------------------------------------------------------------------------------------
# the keypoint source


def _load_array_file(path: Path) -> dict[str, np.ndarray]:
    if path.suffix.lower() in PICKLE_SUFFIXES:
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
