"""MANO-parameter sequences (ARCTIC / OakInk2 / HOI4D-like exports) -> episodes in Being-H0's
conventions (paper section 5.2.1: "for datasets with motion capture or SLAM-tracked labels, we
directly extract their annotations in the form of MANO parameters").

Every data set stores MANO a little differently; this source reads one documented layout (write a
small exporter per data set) and converts the conventions explicitly. One sequence per file:

``<name>.npz`` (never pickled: ``allow_pickle=False``), flat keys
    ``fps`` (); per hand ``<side>_global_orient`` (T, 3), ``<side>_hand_pose`` (T, 45) axis-angle
    or (T, k) PCA coefficients, ``<side>_betas`` (10,) or (T, 10), ``<side>_trans`` (T, 3),
    optional ``<side>_valid`` (T,) bool; optional ``intrinsics`` (4,) fx fy cx cy / (T, 4) /
    (3, 3), ``image_size`` (2,) width height, ``cam_to_world`` (4, 4) or (T, 4, 4).
    A sidecar ``<name>.json`` may add ``conventions``, ``text``, ``video``, ``video_frame_offset``,
    ``license``.
``<name>.json``
    the same as one object: ``{"fps", "right": {"global_orient", "hand_pose", "betas", "trans",
    "valid"}, "left": {...}, "intrinsics", "image_size", "cam_to_world", "conventions", "text",
    "video", ...}``.

``conventions`` (file, overridden by ``options['conventions']``):

``trans``          "wrist" (Being-H0: trans is the wrist joint) or "smplx" (smplx ``transl``, added to
                   the un-centred mesh): wrist = transl + J_0(betas), the rest wrist joint of the model
                   (rotation about the wrist leaves it in place, so this holds for every pose).
``flat_hand_mean`` True (zero pose = flat hand, Being-H0) or False (smplx/manopth default: the
                   stored pose is relative to ``hands_mean``): Being-H0 pose = stored + hands_mean.
``pca``            null or the number of PCA coefficients (a hand_pose width other than 45 implies
                   PCA): pose = coeffs @ hands_components[:k] (then hands_mean as above).
``coords``         "camera" (default) or "world": with ``cam_to_world`` the hand moves rigidly into
                   the camera frame (R_cw^T R_go, R_cw^T (wrist - c)).
``camera_axes``    "opencv" (default) or "opengl" (x right, y up, z backward; converted by
                   flipping the camera's y and z axes).

The conversions use the hand model the data was made with: pass ``options['model_dir']`` with the
real MANO files for real data (the embedded default hand is not MANO: its hands_mean, PCA basis and
rest wrist differ). Other options: ``stride``, ``max_frames``, ``fov_deg``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.errors import UserFileError, UserValueError
from ...core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..episode import CameraTrack, Episode, Frames, HandTrack
from . import Source
from .common import (SIDES, SourceDataError, PICKLE_SUFFIXES, episode_key, fail, frame_selection, hand_model,
                        nominal_intrinsics, parse_intrinsics, parse_rigid, text_from_dict, video_info)

DEFAULT_CONVENTIONS = {"trans": "wrist", "flat_hand_mean": True, "pca": None, "coords": "camera", "camera_axes": "opencv"}
_FIELDS = ("global_orient", "hand_pose", "betas", "trans")


def check_conventions(conv: dict, where="conventions") -> dict:
    c = {**DEFAULT_CONVENTIONS, **(conv or {})}
    unknown = sorted(set(c) - set(DEFAULT_CONVENTIONS))
    if unknown:
        raise UserValueError(f"{where}: unknown keys {unknown}; valid: {sorted(DEFAULT_CONVENTIONS)}")
    if c["trans"] not in ("wrist", "smplx"):
        raise UserValueError(f"{where}: trans={c['trans']!r} must be 'wrist' or 'smplx'")
    if not isinstance(c["flat_hand_mean"], (bool, np.bool_)):
        raise UserValueError(f"{where}: flat_hand_mean={c['flat_hand_mean']!r} must be true or false")
    if c["pca"] is not None and not (isinstance(c["pca"], (int, np.integer)) and 1 <= c["pca"] <= 45):
        raise UserValueError(f"{where}: pca={c['pca']!r} must be null or an integer in [1, 45]")
    if c["coords"] not in ("camera", "world"):
        raise UserValueError(f"{where}: coords={c['coords']!r} must be 'camera' or 'world'")
    if c["camera_axes"] not in ("opencv", "opengl"):
        raise UserValueError(f"{where}: camera_axes={c['camera_axes']!r} must be 'opencv' or 'opengl'")
    return c


def _rot(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3), float64 (``beingh0.core.rotations``)."""
    return axis_angle_to_matrix(torch.as_tensor(np.asarray(aa, np.float64))).numpy()


def _aa(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi], float64."""
    return matrix_to_axis_angle(torch.as_tensor(np.asarray(R, np.float64))).numpy()


def rest_wrist(model, betas: np.ndarray) -> np.ndarray:
    """J_0(betas): the model's wrist joint in the rest pose (3,), float64."""
    b = np.asarray(betas, np.float64)
    v = model.v_template.double().numpy() + np.einsum("vcs,s->vc", model.shapedirs.double().numpy()[..., : b.shape[0]], b)
    return model.J_regressor.double().numpy()[0] @ v


def to_beingh0(params: dict, conventions: dict, model, cam_to_world: np.ndarray | None = None) -> dict:
    """Convert one hand's parameters (numpy, T frames) to Being-H0's conventions.

    ``params``: global_orient (T, 3), hand_pose (T, 45 or k), betas (10,), trans (T, 3).
    ``cam_to_world`` (T, 4, 4) OpenCV axes: required when ``conventions['coords'] == 'world'``.
    Returns float64 global_orient, hand_pose (T, 45), betas, trans (wrist, camera frame).
    """
    c = check_conventions(conventions)
    go = np.asarray(params["global_orient"], np.float64)
    hp = np.asarray(params["hand_pose"], np.float64)
    betas = np.asarray(params["betas"], np.float64)
    tr = np.asarray(params["trans"], np.float64)
    k = c["pca"] if c["pca"] is not None else (hp.shape[1] if hp.shape[1] != 45 else None)
    if k is not None:
        if hp.shape[1] != k:
            raise UserValueError(f"hand_pose has {hp.shape[1]} columns but conventions say pca={k}")
        hp = hp @ model.hands_components.double().numpy()[:k]
    if not c["flat_hand_mean"]:
        hp = hp + model.hands_mean.double().numpy()
    if c["trans"] == "smplx":
        tr = tr + rest_wrist(model, betas)
    if c["coords"] == "world":
        if cam_to_world is None:
            raise UserValueError("coords 'world' needs cam_to_world")
        Rwc = np.swapaxes(cam_to_world[:, :3, :3], 1, 2)
        go = _aa(Rwc @ _rot(go))
        tr = np.einsum("tij,tj->ti", Rwc, tr - cam_to_world[:, :3, 3])
    return {"global_orient": go, "hand_pose": hp, "betas": betas, "trans": tr}


def from_beingh0(params: dict, conventions: dict, model) -> dict:
    """The inverse of :func:`to_beingh0` for camera-frame data (exporters, tests). PCA is a least-squares
    projection onto the first k components (exact only for poses inside that span, e.g. k = 45)."""
    c = check_conventions(conventions)
    if c["coords"] != "camera":
        raise UserValueError("from_beingh0 writes camera-frame parameters (coords='camera')")
    hp = np.asarray(params["hand_pose"], np.float64)
    betas = np.asarray(params["betas"], np.float64)
    tr = np.asarray(params["trans"], np.float64)
    if not c["flat_hand_mean"]:
        hp = hp - model.hands_mean.double().numpy()
    if c["pca"] is not None:
        hp = hp @ np.linalg.pinv(model.hands_components.double().numpy()[: c["pca"]])
    if c["trans"] == "smplx":
        tr = tr - rest_wrist(model, betas)
    return {"global_orient": np.asarray(params["global_orient"], np.float64), "hand_pose": hp, "betas": betas, "trans": tr}


# ------------------------------------------------------------------------------------------------
# reading files


def _read(path: Path) -> dict[str, Any]:
    """The file as {'fps', 'hands': {side: {field: array}}, ...} plus sidecar settings."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise SourceDataError(f"{path}: pickled files are refused (unpickling runs code); export plain arrays to .npz or .json")
    if not path.is_file():
        raise UserFileError(f"{path}: no such MANO-parameter file")
    out: dict[str, Any] = {"hands": {}}
    if path.suffix.lower() == ".json":
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SourceDataError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise SourceDataError(f"{path}: top level must be an object")
        for side in SIDES:
            if side in d:
                if not isinstance(d[side], dict):
                    fail(path, side, "must be an object with global_orient, hand_pose, betas, trans")
                out["hands"][side] = dict(d[side])
        out.update({k: v for k, v in d.items() if k not in SIDES})
    else:
        try:
            z = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise SourceDataError(f"{path}: holds pickled objects ({e}); save plain arrays with numpy.savez") from None
        except (OSError, EOFError) as e:
            raise SourceDataError(f"{path}: not a readable .npz file ({e})") from None
        if isinstance(z, np.ndarray):
            raise SourceDataError(f"{path}: a single array; expected an .npz with <side>_global_orient, <side>_hand_pose, ...")
        try:
            with z:
                for key in z.files:
                    side, _, fld = key.partition("_")
                    if side in SIDES and fld in _FIELDS + ("valid",):
                        out["hands"].setdefault(side, {})[fld] = z[key]
                    else:
                        out[key] = z[key]
        except ValueError as e:
            raise SourceDataError(f"{path}: field '{key}': holds pickled objects ({e}); save plain arrays with numpy.savez") from None
        car = path.with_suffix(".json")
        if car.is_file():
            try:
                extra = json.loads(car.read_text())
            except json.JSONDecodeError as e:
                raise SourceDataError(f"{car}: not valid JSON ({e})") from None
            if not isinstance(extra, dict):
                raise SourceDataError(f"{car}: top level must be an object")
            out.update(extra)
    if not out["hands"]:
        raise SourceDataError(f"{path}: field 'right/left': no hand parameters (expected right_* / left_* arrays or 'right'/'left' objects)")
    return out


def _hand_arrays(d: dict, side: str, path, T: int | None) -> tuple[dict, np.ndarray]:
    p = {}
    for fld in _FIELDS:
        if fld not in d:
            fail(path, f"{side}.{fld}", "missing")
        try:
            a = np.asarray(d[fld], dtype=np.float64)
        except (TypeError, ValueError):
            fail(path, f"{side}.{fld}", "must be numbers")
        p[fld] = a
    counts = {f: (p[f].shape[0] if p[f].ndim else 0) for f in ("global_orient", "hand_pose", "trans")}
    if len(set(counts.values())) != 1:
        fail(path, f"{side}.global_orient/hand_pose/trans", f"frame counts differ: {counts}")
    T = p["global_orient"].shape[0] if T is None else T
    if p["global_orient"].shape != (T, 3):
        fail(path, f"{side}.global_orient", f"shape {p['global_orient'].shape}, expected ({T}, 3) axis-angle")
    hp = p["hand_pose"]
    if hp.ndim != 2 or hp.shape[0] != T or not 1 <= hp.shape[1] <= 45:
        fail(path, f"{side}.hand_pose", f"shape {hp.shape}, expected ({T}, 45) axis-angle or ({T}, k<=45) PCA coefficients")
    if p["trans"].shape != (T, 3):
        fail(path, f"{side}.trans", f"shape {p['trans'].shape}, expected ({T}, 3) metres")
    b = p["betas"]
    spread = 0.0
    if b.ndim == 2 and b.shape[0] == T and T:
        spread = float(np.abs(b - b.mean(0)).max()) if np.isfinite(b).all() else float("nan")
        b = b.mean(0)  # the schema keeps one shape per episode: the mean (spread recorded in meta)
    if b.ndim != 1 or not 1 <= b.shape[0] <= 10:
        fail(path, f"{side}.betas", f"shape {p['betas'].shape}, expected (10,) or ({T}, 10)")
    if not np.isfinite(b).all():
        fail(path, f"{side}.betas", "contains NaN or inf")
    p["betas"] = np.pad(b, (0, 10 - b.shape[0]))
    p["betas_spread"] = spread
    valid = np.ones(T, bool)
    if "valid" in d:
        valid = np.asarray(d["valid"])
        if valid.shape != (T,) or valid.dtype != np.bool_:
            fail(path, f"{side}.valid", f"expected ({T},) bool, got {valid.dtype} {valid.shape}")
    for fld in ("global_orient", "hand_pose", "trans"):
        bad = ~np.isfinite(p[fld]).all(1)
        if (bad & valid).any():
            fail(path, f"{side}.{fld}", f"NaN or inf at frames {np.flatnonzero(bad & valid)[:5].tolist()} (mark them in {side}_valid)")
        p[fld] = np.where(bad[:, None], 0.0, p[fld])
    return p, valid


def _list_items(root, options) -> list[str]:
    if root is None:
        raise UserValueError("the mano_params source needs a data folder (root)")
    root = Path(root)
    if not root.is_dir():
        raise UserFileError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".npz", ".json"))
    npz = {p.with_suffix("") for p in files if p.suffix.lower() == ".npz"}
    return [p.relative_to(root).as_posix() for p in files if not (p.suffix.lower() == ".json" and p.with_suffix("") in npz)]


def _load_item(root, item, options) -> list[Episode]:
    opts = dict(options or {})
    path = Path(item) if root is None else Path(root) / item
    d = _read(path)
    try:
        conv = check_conventions({**(d.get("conventions") or {}), **(opts.get("conventions") or {})}, f"{path}: conventions")
    except ValueError as e:
        raise SourceDataError(str(e)) from None
    fps = float(np.asarray(d.get("fps", opts.get("fps", 30.0))))
    if not (math.isfinite(fps) and fps > 0):
        fail(path, "fps", f"must be a positive number, got {fps!r}")
    T = None
    raw = {}
    for side, hd in d["hands"].items():
        raw[side] = _hand_arrays(hd, side, path, T)
        T = raw[side][0]["global_orient"].shape[0]
    if T == 0:
        fail(path, "global_orient", "no frames")
    E = None
    if "cam_to_world" in d:
        E = parse_rigid(d["cam_to_world"], T, path, "cam_to_world")
        if conv["camera_axes"] == "opengl":
            E = E @ np.diag([1.0, -1.0, -1.0, 1.0])
    if conv["coords"] == "world" and E is None:
        fail(path, "cam_to_world", "conventions.coords is 'world' but the file has no cam_to_world")
    keep = frame_selection(T, opts)
    tracks = {}
    for side, (p, valid) in raw.items():
        model = hand_model(side, opts)
        q = to_beingh0(p, conv, model, E)
        tracks[side] = HandTrack.from_params(q["global_orient"][keep], q["hand_pose"][keep], q["betas"], q["trans"][keep],
                                             valid[keep], valid[keep].astype(np.float32))
    n = len(keep)
    meta: dict[str, Any] = {"source_file": str(item), "conventions_in_file": {k: (int(v) if isinstance(v, np.integer) else v) for k, v in conv.items()},
                            "model": hand_model(next(iter(tracks)), opts).source}
    video = None
    width = height = None
    if d.get("video"):
        video = path.parent / str(d["video"])
        if not video.is_file():
            fail(path, "video", f"{video} not found")
        width, height, meta["video_frames"], _ = video_info(video)
    if "image_size" in d:
        width, height = (int(x) for x in np.asarray(d["image_size"]).reshape(2))
    if "intrinsics" in d:
        if width is None:
            fail(path, "image_size", "intrinsics given without image_size (width, height) or a video")
        K = parse_intrinsics(d["intrinsics"], T, path)[keep]
        meta["camera_calibrated"] = True
    else:
        width, height = width or 1920, height or 1080
        K = np.tile(nominal_intrinsics(width, height, float(opts.get("fov_deg", 60.0))), (n, 1))
        meta["camera_calibrated"] = False
    meta["betas_spread"] = {s: p["betas_spread"] for s, (p, _) in raw.items() if p["betas_spread"]}
    cam = CameraTrack(K, int(width), int(height), E[keep] if E is not None else np.tile(np.eye(4), (n, 1, 1)))
    frames = Frames()
    if video is not None:
        idx = keep.astype(np.int64) + int(d.get("video_frame_offset", 0))
        rel = video.relative_to(Path(root)) if root is not None and video.is_relative_to(Path(root)) else video
        frames = Frames("external", idx, None, rel.as_posix())
    stride = int(opts.get("stride", 1))
    ep = Episode(episode_key(str(item)), SOURCE.name, str(d.get("license", opts.get("license", SOURCE.license))), fps / stride, n,
                 tracks, cam, frames, text_from_dict(d.get("text"), path), meta)
    return [ep.validate(str(path))]


SOURCE = Source(
    name="mano_params",
    license="see-source",
    description="MANO parameter sequences (ARCTIC / OakInk2 / HOI4D-like exports; .npz/.json) converted to Being-H0 conventions",
    list_items=_list_items,
    load_item=_load_item,
    redistributable=False,
)
