"""EgoDex (Apple Vision Pro egocentric recordings; Hoque et al. 2025) -> MANO episodes.

Each episode is ``<task>/<n>.hdf5`` plus the video ``<task>/<n>.mp4`` (1920x1080, 30 fps). The
HDF5 layout this adapter reads (checked against public descriptions and loaders of the real files,
see docs/sources.md):

``camera/intrinsic``               (3, 3) pinhole intrinsics of the video, pixels
``transforms/camera``              (N, 4, 4) camera-to-world pose per frame
``transforms/<joint>``             (N, 4, 4) world pose of each of 68 upper-body and hand joints
``confidences/<joint>``            (N,) ARKit tracking confidence in [0, 1] (no entry for camera)
root attributes                    ``llm_description``, ``llm_description2``, ``description``,
                                   ``task``, ``environment``, ``object``, ``llm_verbs``, ...

World frame: ARKit (+Y up, metres). Hand joints per side (prefix ``left`` / ``right``): the wrist
``<side>Hand``; thumb ``ThumbKnuckle``, ``ThumbIntermediateBase``, ``ThumbIntermediateTip``,
``ThumbTip``; for Index/Middle/Ring/Little ``<F>FingerMetacarpal``, ``<F>FingerKnuckle``,
``<F>FingerIntermediateBase``, ``<F>FingerIntermediateTip``, ``<F>FingerTip`` (1 + 4 + 20 = 25).
The 21 Being-H0 keypoints are the wrist, the four thumb joints and, per finger, Knuckle (MCP),
IntermediateBase (PIP), IntermediateTip (DIP) and Tip; the Metacarpal joints (inside the palm,
no MANO counterpart) are not used.

Camera axes: ARKit cameras look down -z with +y up. ``camera_axes`` option: ``"arkit"`` converts
to OpenCV axes (y and z flipped: ``cam_to_world_cv = cam_to_world @ diag(1, -1, -1, 1)``),
``"opencv"`` takes the pose as OpenCV already, ``"auto"`` (default) decides per file from where
the confidently tracked hands are: hands are in front of the camera, i.e. at z < 0 in ARKit axes
and z > 0 in OpenCV axes. (Public EgoDex loaders project ``inv(camera) @ joint`` with the
intrinsics directly and drop points at z <= 0, which suggests the released files may already use
z-forward camera axes; "auto" is right in either case and records its decision in ``meta``.)

Pipeline: joints -> camera frame (OpenCV) -> 21 keypoints -> MANO per hand with the fitter
(``keypoints.fit_hand_track``: keypoints below ``conf_threshold`` (0.1; ARKit's untracked floor
sits at ~0.003) are missing, short gaps interpolated, frames without enough keypoints
``valid=False``). Frames are "external": the episode references the original mp4 with frame
indices (the licence, CC-BY-NC-ND, forbids redistributing the samples).

Options: those of ``beingh0.data.sources.keypoints`` (``fit``, ``model_dir``, ``conf_threshold``,
``min_keypoints``, ``stride``, ``max_frames``) plus ``camera_axes`` and ``require_video`` (True;
False: frames kind "none" when the mp4 is missing, image size from ``image_size`` or 1920x1080).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import UserFileError, UserValueError

from ..episode import CameraTrack, Episode, Frames, TextAnnotations
from . import Source
from .common import SourceDataError, episode_key, fail, fit_hand_track, frame_selection, parse_intrinsics, video_info

FPS = 30.0
#: EgoDex joint (without the side prefix) of each of the 21 Being-H0 keypoints.
KEYPOINT_JOINTS = (
    "Hand",
    "ThumbKnuckle", "ThumbIntermediateBase", "ThumbIntermediateTip", "ThumbTip",
    "IndexFingerKnuckle", "IndexFingerIntermediateBase", "IndexFingerIntermediateTip", "IndexFingerTip",
    "MiddleFingerKnuckle", "MiddleFingerIntermediateBase", "MiddleFingerIntermediateTip", "MiddleFingerTip",
    "RingFingerKnuckle", "RingFingerIntermediateBase", "RingFingerIntermediateTip", "RingFingerTip",
    "LittleFingerKnuckle", "LittleFingerIntermediateBase", "LittleFingerIntermediateTip", "LittleFingerTip",
)
#: The per-finger metacarpal joints EgoDex also has (not used for MANO).
METACARPAL_JOINTS = tuple(f"{f}FingerMetacarpal" for f in ("Index", "Middle", "Ring", "Little"))
#: ARKit camera axes (x right, y up, z backward) -> OpenCV (x right, y down, z forward).
ARKIT_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def joint_names(side: str) -> tuple[str, ...]:
    """The 21 EgoDex joint names of ``side`` in Being-H0 keypoint order."""
    return tuple(side + j for j in KEYPOINT_JOINTS)


def _h5():
    from ..extras import require

    return require("h5py", "data", "the EgoDex source (HDF5)")


def _list_items(root, options) -> list[str]:
    if root is None:
        raise UserValueError("the egodex source needs the EgoDex folder (root), e.g. .../egodex/test")
    root = Path(root)
    if not root.is_dir():
        raise UserFileError(f"{root}: no such folder")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.hdf5") if p.is_file())


def _attr_text(v) -> str:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return ", ".join(_attr_text(x) for x in v.reshape(-1))
    if isinstance(v, (np.bool_, bool)):
        return str(bool(v))
    if isinstance(v, np.generic):
        v = v.item()
    s = str(v).strip()
    return "" if s in ("None", "nan") else s


def _dataset(f, name: str, where, shape: tuple, what: str) -> np.ndarray:
    """Read dataset ``name`` and check its shape (``-1`` = any length); errors name file and field."""
    if name not in f:
        fail(where, name, f"missing ({what})")
    d = f[name]
    if not hasattr(d, "shape"):
        fail(where, name, f"is a group, expected a dataset ({what})")
    if len(d.shape) != len(shape) or any(s != -1 and s != a for s, a in zip(shape, d.shape)):
        want = "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ")"
        fail(where, name, f"shape {d.shape}, expected {want} ({what})")
    a = np.asarray(d[()], dtype=np.float64)
    return a


def read_egodex(path: Path, options: dict | None = None) -> dict[str, Any]:
    """Read one EgoDex HDF5 file: intrinsics, OpenCV camera poses, per-hand 21 keypoints in the
    camera frame (T, 21, 3) and confidences (T, 21), text attributes. No fitting."""
    opts = options or {}
    h5py = _h5()
    if not path.is_file():
        raise UserFileError(f"{path}: no such EgoDex file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SourceDataError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        K = _dataset(f, "camera/intrinsic", path, (3, 3), "3x3 pinhole intrinsics")
        cam = _dataset(f, "transforms/camera", path, (-1, 4, 4), "camera-to-world per frame")
        N = cam.shape[0]
        if N == 0:
            fail(path, "transforms/camera", "no frames")
        bad = ~np.isfinite(cam).reshape(N, -1).all(1)
        if bad.any():
            fail(path, "transforms/camera", f"NaN/inf camera poses at frames {np.flatnonzero(bad)[:5].tolist()}")
        R = cam[:, :3, :3]
        if np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max() > 1e-3 or (np.linalg.det(R) < 0).any():
            fail(path, "transforms/camera", "rotation part is not a proper rotation (orthonormal, det +1)")
        hands: dict[str, np.ndarray] = {}
        confs: dict[str, np.ndarray] = {}
        missing_conf = []
        for side in ("left", "right"):
            names = joint_names(side)
            present = [f"transforms/{n}" in f for n in names]
            if not any(present):
                continue
            if not all(present):
                miss = [n for n, p in zip(names, present) if not p]
                fail(path, f"transforms/{miss[0]}", f"missing ({len(miss)} of the {side} hand's 21 joints are absent: {miss[:4]}...)")
            pos = np.empty((N, 21, 3))
            conf = np.ones((N, 21))
            for k, n in enumerate(names):
                tf = _dataset(f, f"transforms/{n}", path, (N, 4, 4), f"world pose of {n}, one per camera frame")
                pos[:, k] = tf[:, :3, 3]
                if f"confidences/{n}" in f:
                    c = _dataset(f, f"confidences/{n}", path, (N,), f"tracking confidence of {n}")
                    if (c[np.isfinite(c)] < -1e-6).any() or (c[np.isfinite(c)] > 1 + 1e-6).any():
                        fail(path, f"confidences/{n}", "values must lie in [0, 1]")
                    conf[:, k] = np.clip(np.nan_to_num(c, nan=0.0), 0, 1)
                else:
                    missing_conf.append(n)
            if np.isinf(pos).any():
                fail(path, f"transforms/{side}*", "contains inf (NaN marks untracked joints)")
            hands[side], confs[side] = pos, conf
        if not hands:
            fail(path, "transforms/leftHand, transforms/rightHand", "no hand joints in the file")
        attrs = {k: _attr_text(v) for k, v in f.attrs.items()}

    # world -> ARKit/OpenCV camera frame
    Rt = np.swapaxes(cam[:, :3, :3], 1, 2)
    cam_pts = {s: np.einsum("tij,tkj->tki", Rt, p - cam[:, None, :3, 3]) for s, p in hands.items()}
    axes = opts.get("camera_axes", "auto")
    if axes not in ("auto", "arkit", "opencv"):
        raise UserValueError(f"options['camera_axes']={axes!r} must be 'auto', 'arkit' or 'opencv'")
    decided = axes
    if axes == "auto":
        thr = float(opts.get("conf_threshold", 0.1))
        z = np.concatenate([cam_pts[s][..., 2][(confs[s] >= thr) & np.isfinite(cam_pts[s][..., 2])] for s in cam_pts])
        decided = "opencv" if z.size and np.median(z) > 0 else "arkit"
    if decided == "arkit":
        flip = np.array([1.0, -1.0, -1.0])
        cam_pts = {s: p * flip for s, p in cam_pts.items()}
        cam = cam @ ARKIT_TO_OPENCV
    return {"K": K, "cam_to_world": cam, "keypoints": cam_pts, "confidence": confs, "attrs": attrs, "N": N,
            "camera_axes": decided, "missing_confidences": missing_conf}


def _text(attrs: dict[str, str]) -> TextAnnotations:
    instr = attrs.get("llm_description") or attrs.get("description") or attrs.get("task", "").replace("_", " ")
    summary = attrs.get("description", "") if attrs.get("description", "") != instr else ""
    return TextAnnotations(instruction=instr, summary=summary)


def _load_item(root, item, options) -> list[Episode]:
    opts = dict(options or {})
    path = Path(item) if root is None else Path(root) / item
    d = read_egodex(path, opts)
    N = d["N"]
    video = path.with_suffix(".mp4")
    meta: dict[str, Any] = {"source_file": str(item), "camera_axes_in_file": d["camera_axes"], "egodex_attrs": d["attrs"]}
    if video.is_file():
        width, height, n_video, vfps = video_info(video)
        meta["video_frames"], meta["video_fps"] = n_video, vfps
        if n_video and n_video != N:
            meta["frames_truncated_to"] = min(N, n_video)
        T = min(N, n_video) if n_video else N
    elif opts.get("require_video", True):
        raise UserFileError(f"{video}: the EgoDex video of {path.name} is missing (pass require_video=False for motion only)")
    else:
        width, height = (int(x) for x in opts.get("image_size", (1920, 1080)))
        T = N
    keep = frame_selection(T, opts)
    stride = int(opts.get("stride", 1))
    tracks, stats = {}, {}
    for side, kp in d["keypoints"].items():
        track, st = fit_hand_track(kp[keep], side, opts, d["confidence"][side][keep], where=f"{path} ({side})")
        stats[side] = st
        if track is not None:
            tracks[side] = track
    meta["fit"] = stats
    if d["missing_confidences"]:
        meta["missing_confidences"] = d["missing_confidences"]
    if not tracks:
        return []
    K = parse_intrinsics(d["K"], 1, path, "camera/intrinsic")
    cam = CameraTrack(np.tile(K, (len(keep), 1)), int(width), int(height), d["cam_to_world"][keep])
    frames = Frames("external", keep.astype(np.int64), None, Path(item).with_suffix(".mp4").as_posix()) if video.is_file() else Frames()
    ep = Episode(episode_key(str(item)), SOURCE.name, SOURCE.license, FPS / stride, len(keep), tracks, cam, frames,
                 _text(d["attrs"]), meta)
    return [ep.validate(str(path))]


SOURCE = Source(
    name="egodex",
    license="CC-BY-NC-ND-4.0",
    description="EgoDex: Apple Vision Pro egocentric video with ARKit hand/camera poses (HDF5 + mp4), joints fitted to MANO",
    list_items=_list_items,
    load_item=_load_item,
    redistributable=False,
)
