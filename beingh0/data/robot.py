"""Frame-level robot demonstrations for policy training: :class:`RobotDataset` over LeRobot folders.

A map-style dataset over one or more LeRobot v2.0 / v2.1 / v3.0 dataset folders (read with
:class:`beingh0.data.lerobot.LeRobotDataset`, frames decoded with
:func:`beingh0.data.video.decode_video`). Item ``i`` (frame ``t`` of an episode) is::

    {"observation.state": float32 (S,),
     "observation.images.<cam>": uint8 tensor (H, W, 3) per camera (RGB, as stored or image_size),
     "intrinsics.observation.images.<cam>": float32 (4,) fx, fy, cx, cy of that image, only for
         cameras whose intrinsics every selected episode records (see below),
     "action": float32 (chunk, A) = actions t .. t+chunk-1, past the episode end the last action
         repeated, "action_is_pad": bool (chunk,) True there,
     "task": str, "episode_index": int, "frame_index": int, "timestamp": float,
     "index": int (the sample number in this dataset; the loader counts it)}

``.meta`` (:class:`RobotMeta`) holds fps, state/action names and dims, cameras, image sizes,
per-camera intrinsics (when constant over the dataset), robot type and codebase version;
``state_table()`` / ``action_table()`` give the full (N, S) / (N, A) arrays for normalisation
statistics; ``episode_indices()``, ``episode_frames(k)`` and ``episode_starts()`` the episodes.

Works with :class:`beingh0.data.loader.ResumableLoader` (``seed``, ``fingerprint()``,
``episode_starts()``, indices ``epoch * len + i``), also with ``num_workers > 0``.

Cost. The numeric columns of every selected episode are read once at construction (a few ms per
episode) and kept in memory (8 bytes per state/action value). Camera frames are decoded **per
episode, sequentially, once**, resized during the decode when ``image_size`` is set, and kept in a
per-process LRU cache of whole episodes (``cache_bytes``, default 1 GiB); a frame request after that
is a copy. Decoding the real G1 episode (AV1, 640x480, 393 frames) takes about 0.7 s (about 0.8 s
resized to 224x168) on one CPU core, i.e. 2 ms per frame, against tens of ms for a seek per frame.
Block shuffling (the loader's default) visits ``block_episodes`` episodes at a time: keep
``block_episodes x frames x H x W x 3 x cameras`` within ``cache_bytes`` (or pass a smaller
``block_episodes``), otherwise an episode is decoded more than once per epoch.

Intrinsics. LeRobot records none. :class:`RobotDataset` reads them, when a dataset has them, from
``meta/camera_intrinsics.json`` (written by :func:`beingh0.data.synth.robot.robot_demos`)::

    {"format": "beingh0.camera_intrinsics", "version": 1,
     "cameras": {"observation.images.cam": {"width": W, "height": H, "default": [fx, fy, cx, cy] | null,
                                            "episodes": {"0": [fx, fy, cx, cy], ...}}}}

(pixels of the stored video, OpenCV pixel-centre convention), or from a feature's
``info["camera.intrinsics"] = [fx, fy, cx, cy]`` in ``meta/info.json``. With ``image_size`` they
are rescaled to the delivered image (``f' = f s``, ``c' = (c + 0.5) s - 0.5``).
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.errors import UserFileError, UserValueError
from .lerobot import LeRobotDataset, LeRobotFormatError

__all__ = ["RobotDataset", "RobotMeta", "INTRINSICS_FILE", "read_intrinsics"]

INTRINSICS_FILE = "meta/camera_intrinsics.json"
INTRINSICS_FORMAT = "beingh0.camera_intrinsics"
IMAGE_PREFIX = "observation.images."
INTRINSICS_PREFIX = "intrinsics."


@dataclass
class RobotMeta:
    """What a policy needs to know about a :class:`RobotDataset`."""

    fps: float
    state_names: list[str]
    action_names: list[str]
    state_dim: int
    action_dim: int
    cameras: list[str]  # full keys "observation.images.<cam>"
    image_sizes: dict[str, tuple[int, int]]  # camera -> (width, height) of the delivered images
    intrinsics: dict[str, np.ndarray | None]  # camera -> (4,) fx, fy, cx, cy of the delivered images when constant, else None
    robot_type: str | None
    codebase_version: str
    chunk: int
    roots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able form (saved with a policy)."""
        return {"fps": self.fps, "state_names": list(self.state_names), "action_names": list(self.action_names),
                "state_dim": self.state_dim, "action_dim": self.action_dim, "cameras": list(self.cameras),
                "image_sizes": {k: list(v) for k, v in self.image_sizes.items()},
                "intrinsics": {k: (None if v is None else [float(x) for x in v]) for k, v in self.intrinsics.items()},
                "robot_type": self.robot_type, "codebase_version": self.codebase_version, "chunk": self.chunk,
                "roots": list(self.roots)}


def _fmt_err(path, msg):
    raise LeRobotFormatError(f"{path}: {msg}")


def read_intrinsics(ds: LeRobotDataset) -> dict[str, dict]:
    """Per camera ``{"width", "height", "default": (4,) | None, "episodes": {i: (4,)}}`` from
    ``meta/camera_intrinsics.json`` or ``info.json`` (``features[cam].info["camera.intrinsics"]``);
    cameras without any are absent."""
    out: dict[str, dict] = {}
    for k in ds.video_keys:
        k4 = (ds.features[k].get("info") or {}).get("camera.intrinsics")
        if k4 is not None:
            out[k] = {"default": _k4(k4, ds._info_path, f"features.{k}.info.camera.intrinsics"), "episodes": {}}
    p = ds.root / INTRINSICS_FILE
    if not p.is_file():
        return out
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        _fmt_err(p, f"not valid JSON ({e})")
    if not isinstance(d, dict) or d.get("format") != INTRINSICS_FORMAT or not isinstance(d.get("cameras"), dict):
        _fmt_err(p, f"expected an object with format {INTRINSICS_FORMAT!r} and a 'cameras' object")
    for cam, c in d["cameras"].items():
        if cam not in ds.video_keys:
            _fmt_err(p, f"camera {cam!r} is not a video feature of the dataset ({ds.video_keys})")
        if not isinstance(c, dict):
            _fmt_err(p, f"cameras.{cam} must be an object")
        eps = c.get("episodes") or {}
        if not isinstance(eps, dict):
            _fmt_err(p, f"cameras.{cam}.episodes must be an object episode_index -> [fx, fy, cx, cy]")
        if not all(isinstance(i, str) and i.isdigit() for i in eps):
            _fmt_err(p, f"cameras.{cam}.episodes keys must be episode indices")
        e = {int(i): _k4(v, p, f"cameras.{cam}.episodes.{i}") for i, v in eps.items()}
        dflt = c.get("default")
        out[cam] = {"default": None if dflt is None else _k4(dflt, p, f"cameras.{cam}.default"), "episodes": e,
                    "width": c.get("width"), "height": c.get("height")}
    return out


def _k4(v, where, fld) -> np.ndarray:
    try:
        a = np.asarray(v, np.float64)
    except (TypeError, ValueError):
        a = np.zeros(0)
    if a.shape != (4,) or not np.isfinite(a).all() or (a[:2] <= 0).any():
        _fmt_err(where, f"field '{fld}': expected [fx, fy, cx, cy] with fx, fy > 0 (pixels), got {v!r}")
    return a


def _image_size(ds: LeRobotDataset, cam: str) -> tuple[int, int]:
    spec = ds.features[cam]
    info = spec.get("info") or {}
    shape = spec["shape"]
    names = [str(n) for n in (spec.get("names") or [])]
    if "height" in names and "width" in names:
        h, w = int(shape[names.index("height")]), int(shape[names.index("width")])
    else:  # LeRobot writes (height, width, channels)
        h, w = int(shape[0]), int(shape[1])
    return int(info.get("video.width", w)), int(info.get("video.height", h))


def _scale_k(k4: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    fx, fy, cx, cy = k4
    return np.array([fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5], np.float64)


class RobotDataset(torch.utils.data.Dataset):
    """Frames of LeRobot robot demonstrations with action chunks (see the module docstring).

    Args:
        roots: one dataset folder or a list of them (same state/action dimensions and names, same
            fps, same cameras).
        chunk: actions per item (t .. t+chunk-1).
        episodes: episode indices to use (default: every episode whose files are present); with
            several roots, one list per root (or one list for all).
        cameras: camera keys to deliver (``"observation.images.cam_high"`` or ``"cam_high"``;
            default: every video feature; ``[]`` for none).
        image_size: ``(width, height)`` or an int (square) to resize frames to while decoding
            (default: as stored).
        seed: the loader's default seed (:class:`ResumableLoader` reads ``dataset.seed``).
        cache_bytes: decoded-frame cache per process (whole episodes, LRU).
    """

    def __init__(self, roots, *, chunk: int = 16, episodes=None, cameras: Sequence[str] | None = None,
                 image_size: int | tuple[int, int] | None = None, seed: int = 0, cache_bytes: int = 1 << 30):
        if isinstance(roots, (str, Path)):
            roots = [roots]
        roots = [Path(r) for r in roots]
        if not roots:
            raise UserValueError("RobotDataset needs at least one LeRobot dataset folder")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise UserValueError(f"chunk must be an integer >= 1, got {chunk!r}")
        if image_size is not None:
            if isinstance(image_size, int):
                image_size = (image_size, image_size)
            if len(image_size) != 2 or min(int(image_size[0]), int(image_size[1])) < 1:
                raise UserValueError(f"image_size must be (width, height) or an int > 0, got {image_size!r}")
            image_size = (int(image_size[0]), int(image_size[1]))
        self.chunk, self.image_size, self.seed, self.cache_bytes = chunk, image_size, int(seed), int(cache_bytes)
        for r in roots:
            if not (r / "meta" / "info.json").is_file():
                raise UserFileError(f"{r}: no meta/info.json; give the folder of a LeRobot dataset (v2.x or v3.0)")
        self.datasets = [LeRobotDataset(r) for r in roots]
        if episodes is not None and len(roots) > 1 and episodes and isinstance(episodes[0], (list, tuple)):
            if len(episodes) != len(roots):
                raise UserValueError(f"episodes: {len(episodes)} lists for {len(roots)} dataset folders")
            per_root = [list(e) for e in episodes]
        else:
            per_root = [None if episodes is None else list(episodes)] * len(roots)
        ds0 = self.datasets[0]
        for need in ("observation.state", "action"):
            for ds in self.datasets:
                if need not in ds.features:
                    raise UserValueError(f"{ds.root}: no {need!r} feature in meta/info.json; a policy dataset needs "
                                         "'observation.state' and 'action'")
        # cameras
        if cameras is None:
            cams = list(ds0.video_keys)
        else:
            cams = [c if c.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + c for c in cameras]
        for ds in self.datasets:
            missing = [c for c in cams if c not in ds.video_keys]
            if missing:
                raise UserValueError(f"{ds.root}: camera(s) {missing} are not video features; video features: {ds.video_keys}")
        self.cameras = cams
        # agreement between roots
        def names(ds, k):
            n = ds.feature_names(k)
            return n if n is not None else [f"{k}[{j}]" for j in range(int(np.prod(ds.features[k]["shape"])))]
        s_names, a_names = names(ds0, "observation.state"), names(ds0, "action")
        for ds in self.datasets[1:]:
            if names(ds, "observation.state") != s_names or names(ds, "action") != a_names:
                raise UserValueError(f"{ds.root}: state/action features differ from {ds0.root}'s; one RobotDataset "
                                     "needs the same robot (same feature names and dimensions)")
            if ds.fps != ds0.fps:
                raise UserValueError(f"{ds.root}: fps {ds.fps:g} differs from {ds0.root}'s {ds0.fps:g}")
        sizes = {}
        for c in cams:
            src = {_image_size(ds, c) for ds in self.datasets}
            if image_size is None and len(src) > 1:
                raise UserValueError(f"camera {c}: the datasets store different image sizes {sorted(src)}; pass image_size")
            sizes[c] = image_size or src.pop()
        # episodes: numeric columns of every selected episode, once
        st, ac, ts, fi, task_ids, vidx = [], [], [], [], [], []
        self._eps: list[tuple[int, int]] = []  # (root number, episode index)
        tasks: list[str] = []
        task_of: dict[str, int] = {}
        intr = [read_intrinsics(ds) for ds in self.datasets]
        ep_k: dict[str, list] = {c: [] for c in cams}
        for r, ds in enumerate(self.datasets):
            present = ds.available_episodes()
            want = per_root[r]
            if want is None:
                if not present:
                    raise UserFileError(f"{ds.root}: none of the {ds.num_episodes} listed episodes has its data and video "
                                        "files (incomplete download?)")
                chosen = present
            else:
                bad = [i for i in want if not isinstance(i, (int, np.integer))]
                if bad:
                    raise UserValueError(f"episodes must be integer episode indices, got {bad[:3]}")
                chosen = [int(i) for i in want]
            for i in chosen:
                le = ds.episode(i)  # raises a one-line error for a missing data or video file
                if le.length < 1:
                    continue
                self._eps.append((r, i))
                st.append(np.asarray(le.state, np.float32))
                ac.append(np.asarray(le.action, np.float32))
                ts.append(le.timestamps)
                fi.append(np.asarray(le.data.get("frame_index", np.arange(le.length)), np.int64))
                if "task_index" in le.data and ds.tasks:
                    texts = [ds.tasks.get(int(k), "; ".join(le.tasks)) for k in le.data["task_index"]]
                else:
                    texts = ["; ".join(le.tasks)] * le.length
                ids = []
                for t in texts:
                    if t not in task_of:
                        task_of[t] = len(tasks)
                        tasks.append(t)
                    ids.append(task_of[t])
                task_ids.append(np.asarray(ids, np.int32))
                vidx.append({c: le.video_frame_indices(c) for c in cams})
                for c in cams:
                    d = intr[r].get(c)
                    k = None if d is None else d["episodes"].get(i, d["default"])
                    if k is not None:
                        k = _scale_k(k, _image_size(ds, c), sizes[c])
                    ep_k[c].append(k)
        if not self._eps:
            raise UserValueError(f"no frames in the selected episodes of {[str(r) for r in roots]}")
        self._state, self._action = np.concatenate(st), np.concatenate(ac)
        self._timestamp, self._frame_index = np.concatenate(ts), np.concatenate(fi)
        self._task_id, self._tasks = np.concatenate(task_ids), tasks
        lengths = np.array([len(a) for a in st], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._ep_of = np.repeat(np.arange(len(self._eps)), lengths)
        self._vidx = vidx
        self._ep_intrinsics = ep_k
        self._with_k = [c for c in cams if all(k is not None for k in ep_k[c])]
        const_k = {}
        for c in cams:
            ks = ep_k[c]
            const_k[c] = ks[0].copy() if c in self._with_k and all(np.array_equal(k, ks[0]) for k in ks) else None
        versions = sorted({ds.version for ds in self.datasets})
        self.meta = RobotMeta(fps=ds0.fps, state_names=s_names, action_names=a_names, state_dim=self._state.shape[1],
                              action_dim=self._action.shape[1], cameras=list(cams), image_sizes=sizes, intrinsics=const_k,
                              robot_type=ds0.info.get("robot_type"), codebase_version="/".join(versions), chunk=chunk,
                              roots=[str(r) for r in roots])
        self._cache: OrderedDict = OrderedDict()
        self._cached_bytes = 0

    # ------------------------------------------------------------------------------------ tables
    def __len__(self) -> int:
        return len(self._state)

    def state_table(self) -> np.ndarray:
        """Every frame's state (N, S) float32 (for normalisation statistics)."""
        return self._state

    def action_table(self) -> np.ndarray:
        """Every frame's action (N, A) float32."""
        return self._action

    def episode_indices(self) -> list[tuple[int, int]] | list[int]:
        """The selected episodes' indices in order (one root: ints; several: (root number, index))."""
        if len(self.datasets) == 1:
            return [i for _, i in self._eps]
        return list(self._eps)

    def episode_frames(self, k: int) -> np.ndarray:
        """Sample indices (into this dataset) of the ``k``-th selected episode, in frame order."""
        if not 0 <= k < len(self._eps):
            raise IndexError(f"episode number {k} outside [0, {len(self._eps)})")
        return np.arange(self._starts[k], self._starts[k + 1])

    def episode_starts(self) -> np.ndarray:
        """Sample offsets of the episodes (episodes + 1,): episode ``k`` is ``[s[k], s[k+1])``."""
        return self._starts.copy()

    def episode_intrinsics(self, k: int, camera: str) -> np.ndarray | None:
        """fx, fy, cx, cy (of the delivered image) of the ``k``-th selected episode's camera, or None."""
        return self._ep_intrinsics[camera][k]

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def fingerprint(self) -> str:
        """Identifies the sample table (a resumed loader checks it)."""
        h = hashlib.sha256()
        h.update(json.dumps([self._eps, [ds.version for ds in self.datasets], self.cameras, self.chunk,
                             self.image_size]).encode())
        h.update(self._starts.tobytes())
        h.update(self._state.tobytes())
        h.update(self._action.tobytes())
        return h.hexdigest()[:16]

    def __getstate__(self):  # decoded frames stay in their process
        d = dict(self.__dict__)
        d["_cache"], d["_cached_bytes"] = OrderedDict(), 0
        return d

    # ------------------------------------------------------------------------------------ frames
    def _frames(self, k: int, cam: str) -> np.ndarray:
        """All frames of selected episode ``k`` for ``cam`` (decoded once, LRU-cached)."""
        key = (k, cam)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        from .video import decode_video

        r, i = self._eps[k]
        ds = self.datasets[r]
        idx = self._vidx[k][cam]
        src = _image_size(ds, cam)
        path = ds.video_file(i, cam)
        if not path.is_file():
            raise UserFileError(f"{ds.root}: episode {i}: video {path} of {cam!r} is missing")
        px = decode_video(path, idx, size=src, resize=self.image_size)
        self._cache[key] = px
        self._cached_bytes += px.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        return px

    def __getitem__(self, i: int) -> dict:
        N = len(self)
        i = int(i)
        if i < 0:
            raise IndexError(f"negative sample index {i}")
        i %= N  # the loader's sampler yields epoch * N + i
        k = int(self._ep_of[i])
        a, b = int(self._starts[k]), int(self._starts[k + 1])
        t = i - a
        steps = np.arange(i, i + self.chunk)
        pad = steps >= b
        act = self._action[np.minimum(steps, b - 1)]
        r, ep = self._eps[k]
        item = {"observation.state": torch.from_numpy(self._state[i].copy()),
                "action": torch.from_numpy(np.ascontiguousarray(act)),
                "action_is_pad": torch.from_numpy(pad),
                "task": self._tasks[int(self._task_id[i])],
                "episode_index": int(ep), "frame_index": int(self._frame_index[i]),
                "timestamp": float(self._timestamp[i]), "index": i}
        for c in self.cameras:
            item[c] = torch.from_numpy(self._frames(k, c)[t].copy())
            if c in self._with_k:
                item[INTRINSICS_PREFIX + c] = torch.from_numpy(self._ep_intrinsics[c][k].astype(np.float32))
        return item

    def __repr__(self) -> str:
        m = self.meta
        return (f"RobotDataset({len(self._eps)} episodes, {len(self)} frames, fps={m.fps:g}, state {m.state_dim}, "
                f"action {m.action_dim} x chunk {self.chunk}, cameras {m.cameras}, {m.codebase_version})")
