"""LeRobot robot datasets (v2.0 / v2.1 / v3.0) as episodes: ``beingh0 data build lerobot ROOT --out DIR``.

A robot demonstration has no human hand: its episodes carry no MANO hand track (so no motion
windows) but the robot's per-frame numeric features (``observation.state``, ``action``,
timestamps and bookkeeping columns) as ``Episode.robot`` arrays, the task text as the chunk-level
instruction, and the camera frames as an **external** video (path relative to ROOT, frame indices
into it, also for v3.0 files shared by many episodes), so the shards stay small and ``data show
DIR --root ROOT`` finds the pixels.

LeRobot gives no camera intrinsics: the episode's camera is a nominal pinhole (fx = fy = image
width, principal point at the centre), recorded as such in ``meta["lerobot"]["intrinsics"]``.

Options: ``episodes`` (list of episode indices; default: every episode whose files are present),
``camera`` (video feature; default: the first), ``license`` (default: ``info.json``'s
``license``, else ``"see-source"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import UserFileError, UserValueError
from ..episode import CameraTrack, Episode, Frames, TextAnnotations
from . import Source

NAME = "lerobot"


def _dataset(root):
    from ..lerobot import LeRobotDataset

    if root is None:
        raise UserValueError("the lerobot source needs the LeRobot dataset folder: beingh0 data build lerobot ROOT --out DIR")
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise UserFileError(f"{root}: no meta/info.json; give the folder of a LeRobot dataset (v2.x or v3.0)")
    return LeRobotDataset(root)


def _camera_key(ds, options) -> str | None:
    cam = options.get("camera")
    if cam is None:
        return ds.video_keys[0] if ds.video_keys else None
    if cam not in ds.video_keys:
        raise UserValueError(f"{ds.root}: option camera={cam!r} is not a video feature; video features: {ds.video_keys}")
    return cam


def _list_items(root, options) -> list[str]:
    ds = _dataset(root)
    _camera_key(ds, options)
    present = ds.available_episodes()
    want = options.get("episodes")
    if want is not None:
        if not isinstance(want, list) or not all(isinstance(i, int) for i in want):
            raise UserValueError(f"option episodes={want!r} must be a list of episode indices, e.g. episodes=[0,1]")
        missing = sorted(set(want) - set(present))
        if missing:
            raise UserFileError(f"{ds.root}: episodes {missing[:10]} are not present (listed episodes with files: "
                                f"{present[:10]}{'...' if len(present) > 10 else ''})")
        present = [i for i in present if i in set(want)]
    return [str(i) for i in present]


def episode_from_lerobot(ds, i: int, camera: str | None = None, license: str | None = None) -> Episode:
    """Episode ``i`` of a :class:`~beingh0.data.lerobot.LeRobotDataset` as a validated :class:`Episode`
    (robot arrays, task text, frames of video feature ``camera`` (default: the first) as an external
    video relative to ``ds.root``)."""
    if camera is None and ds.video_keys:
        camera = ds.video_keys[0]
    elif camera is not None and camera not in ds.video_keys:
        raise UserValueError(f"{ds.root}: camera {camera!r} is not a video feature; video features: {ds.video_keys}")
    le = ds.episode(i)
    T = le.length
    if T < 1:
        raise UserValueError(f"{ds.root}: episode {i} has no frames")
    robot: dict[str, np.ndarray] = {}
    for name, a in le.data.items():
        if a.dtype == object:
            continue
        if a.dtype.kind == "b" or a.dtype.kind in "iu":
            a = a.astype(np.int64)
        elif a.dtype.kind == "f" and a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float32)
        robot[name] = np.ascontiguousarray(a)
    width, height = 640, 480
    frames = Frames()
    if camera is not None:
        spec = ds.features[camera]
        info = spec.get("info") or {}
        shape = spec["shape"]
        names = [str(n) for n in (spec.get("names") or [])]
        if "height" in names and "width" in names:
            height, width = int(shape[names.index("height")]), int(shape[names.index("width")])
        else:  # LeRobot writes (height, width, channels)
            height, width = int(shape[0]), int(shape[1])
        width, height = int(info.get("video.width", width)), int(info.get("video.height", height))
        path = ds.video_file(i, camera).relative_to(ds.root).as_posix()
        frames = Frames("external", le.video_frame_indices(camera).astype(np.int64), None, path)
    cam = CameraTrack.constant(width, width, width / 2, height / 2, width, height, T)
    tasks = [t for t in le.tasks if t]
    names = {}
    for k in robot:
        if k in ds.features:
            try:
                names[k] = ds.feature_names(k)
            except Exception:  # names are a convenience; a mismatch is reported by feature_names itself
                names[k] = None
    meta: dict[str, Any] = {"lerobot": {
        "version": ds.version, "episode_index": int(i), "camera": camera, "robot_type": ds.info.get("robot_type"),
        "feature_names": names, "tasks": tasks,
        "intrinsics": "nominal (LeRobot gives none): fx = fy = width, principal point at the image centre"}}
    lic = license or ds.info.get("license") or "see-source"
    ep = Episode(f"ep{int(i):06d}", NAME, str(lic), float(ds.fps), int(T), {}, cam, frames,
                 TextAnnotations(instruction="; ".join(tasks)), meta, robot)
    return ep.validate(f"{ds.root} episode {i}")


def _load_item(root, item, options) -> list[Episode]:
    ds = _dataset(root)
    return [episode_from_lerobot(ds, int(item), _camera_key(ds, options), options.get("license"))]


SOURCE = Source(
    name=NAME,
    license="see-source",
    description="LeRobot robot demonstrations (v2.x / v3.0): robot state/action arrays, task text, external camera video",
    list_items=_list_items,
    load_item=_load_item,
    redistributable=False,
)
