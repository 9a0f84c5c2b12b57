"""Read LeRobot robot datasets (v2.0 / v2.1 per-episode files, v3.0 file-based chunks) without the
``lerobot`` package: for post-training (proprioception, actions, camera frames).

Layouts (``meta/info.json`` gives ``codebase_version``, ``fps``, ``features``, ``data_path``,
``video_path``, ``chunks_size``):

v2.x
    ``data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet`` (one file per episode),
    ``videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4``,
    episodes in ``meta/episodes.jsonl`` (``episode_index``, ``tasks``, ``length``), tasks in
    ``meta/tasks.jsonl``. ``episode_chunk = episode_index // chunks_size``.
v3.0
    ``data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet`` and
    ``videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4`` each hold many
    episodes; ``meta/episodes/chunk-*/file-*.parquet`` rows give per episode ``data/chunk_index``,
    ``data/file_index``, ``dataset_from_index``, ``dataset_to_index`` and per camera
    ``videos/<key>/chunk_index``, ``file_index``, ``from_timestamp``, ``to_timestamp`` (where the
    episode starts inside the shared video); tasks in ``meta/tasks.parquet``.

Feature ``names`` may be a flat list, a nested list (``[[...]]``, as Unitree's converter writes)
or a dict (``{"motors": [...]}``): :meth:`LeRobotDataset.feature_names` flattens them.

Camera frames: episode frame ``t`` is video frame ``round((from_timestamp + timestamp[t]) * fps_video)``
(``from_timestamp`` = 0 for v2.x), decoded with :func:`beingh0.data.video.decode_video` (any codec
FFmpeg decodes, e.g. AV1).

A dataset may be partial (only some episodes downloaded): :meth:`LeRobotDataset.available_episodes`
lists those whose files exist; asking for a missing one raises ``FileNotFoundError`` naming it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import UserFileError, UserValueError

VERSIONS = ("v2.0", "v2.1", "v3.0")


class LeRobotFormatError(UserValueError):
    """A malformed LeRobot dataset; the message names the file and the field."""


def _fail(where, fld, msg):
    raise LeRobotFormatError(f"{where}: field '{fld}': {msg}")


def _flatten_names(names) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, dict):
        out: list[str] = []
        for v in names.values():
            out += _flatten_names(v) or []
        return out
    if isinstance(names, (list, tuple)):
        out = []
        for v in names:
            out += _flatten_names(v) if isinstance(v, (list, tuple, dict)) else [str(v)]
        return out
    return [str(names)]


def _pq():
    from .extras import require

    purpose = "reading LeRobot parquet files"
    return (require("pyarrow", "data", purpose), require("pyarrow.compute", "data", purpose),
            require("pyarrow.parquet", "data", purpose))


def _column_to_numpy(col, name: str, where) -> np.ndarray:
    """A pyarrow column (scalars or (fixed-size) lists of numbers) as a numpy array (T,) or (T, n)."""
    pa, _, _ = _pq()
    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    t = col.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        n = len(col)
        if col.null_count:
            _fail(where, name, f"{col.null_count} missing (null) rows")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if n and flat.size % n:
            _fail(where, name, "rows have different lengths")
        return flat.reshape(n, -1) if n else flat.reshape(0, 0)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        if col.null_count:
            _fail(where, name, f"{col.null_count} missing (null) rows")
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col.to_pylist(), dtype=object)


@dataclass
class LeRobotEpisode:
    """One episode's table (numpy) and access to its camera frames."""

    dataset: "LeRobotDataset"
    index: int
    length: int
    tasks: list[str]
    data: dict[str, np.ndarray]  # column -> (T,) or (T, n), rows sorted by frame_index
    video_from_timestamp: dict[str, float] = field(default_factory=dict)

    @property
    def timestamps(self) -> np.ndarray:
        return np.asarray(self.data["timestamp"], np.float64)

    @property
    def state(self) -> np.ndarray | None:
        return self.data.get("observation.state")

    @property
    def action(self) -> np.ndarray | None:
        return self.data.get("action")

    def video_frame_indices(self, video_key: str, frames: Sequence[int] | None = None) -> np.ndarray:
        """Video frame numbers (in the video file) of episode frames ``frames`` (all when None)."""
        ds = self.dataset
        if video_key not in ds.video_keys:
            raise KeyError(f"{ds.root}: {video_key!r} is not a video feature; video features: {ds.video_keys}")
        t = np.arange(self.length) if frames is None else np.asarray(frames, np.int64)
        if t.size and (t.min() < 0 or t.max() >= self.length):
            raise IndexError(f"episode {self.index}: frame indices must lie in [0, {self.length})")
        vfps = ds.video_fps(video_key)
        return np.rint((self.video_from_timestamp.get(video_key, 0.0) + self.timestamps[t]) * vfps).astype(np.int64)

    def frames(self, video_key: str, frames: Sequence[int] | None = None) -> np.ndarray:
        """Camera frames of episode frames ``frames`` (indices into this episode) as uint8 (n, H, W, 3)."""
        from .video import decode_video

        idx = self.video_frame_indices(video_key, frames)
        return decode_video(self.dataset.video_file(self.index, video_key), idx)

    def frames_at(self, video_key: str, timestamps: Sequence[float]) -> np.ndarray:
        """Camera frames nearest to episode-relative ``timestamps`` (seconds)."""
        ts = np.asarray(timestamps, np.float64)
        if ts.size and (ts.min() < -1e-6 or ts.max() > self.timestamps[-1] + 1e-6):
            raise ValueError(f"episode {self.index}: timestamps must lie in [0, {self.timestamps[-1]:.4f}] s")
        nearest = np.abs(self.timestamps[None, :] - ts[:, None]).argmin(1)
        return self.frames(video_key, nearest)


class LeRobotDataset:
    """A LeRobot dataset folder (v2.0, v2.1 or v3.0). See the module docstring for the layouts."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise UserFileError(f"{info_path}: missing; is {self.root} a LeRobot dataset (meta/info.json)?")
        try:
            info = json.loads(info_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LeRobotFormatError(f"{info_path}: not valid JSON ({e})") from None
        if not isinstance(info, dict):
            raise LeRobotFormatError(f"{info_path}: top level must be an object")
        self.info, self._info_path = info, info_path
        v = info.get("codebase_version")
        if v not in VERSIONS:
            _fail(info_path, "codebase_version", f"{v!r}; this reader supports {VERSIONS}")
        self.version = v
        fps = info.get("fps")
        if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            _fail(info_path, "fps", f"must be a positive number, got {fps!r}")
        self.fps = float(fps)
        feats = info.get("features")
        if not isinstance(feats, dict) or not feats:
            _fail(info_path, "features", "must be a non-empty object of feature specs")
        for k, spec in feats.items():
            if not isinstance(spec, dict) or "dtype" not in spec or not isinstance(spec.get("shape"), list):
                _fail(info_path, f"features.{k}", "needs 'dtype' and a 'shape' list")
        self.features: dict[str, dict] = feats
        self.video_keys = [k for k, s in feats.items() if s["dtype"] == "video"]
        if not isinstance(info.get("data_path"), str):
            _fail(info_path, "data_path", "must be a path template string")
        if self.video_keys and not isinstance(info.get("video_path"), str):
            _fail(info_path, "video_path", "video features need a video_path template")
        cs = info.get("chunks_size", 1000)
        if not isinstance(cs, int) or cs < 1:
            _fail(info_path, "chunks_size", f"must be a positive integer, got {cs!r}")
        self.chunks_size = cs
        self._episodes = self._read_episodes()
        self._tasks = self._read_tasks()

    # -- metadata ----------------------------------------------------------------------------------
    def feature_names(self, key: str) -> list[str] | None:
        """Flat list of the names of ``key``'s components (None when the dataset gives none)."""
        if key not in self.features:
            raise KeyError(f"{self.root}: no feature {key!r}; features: {sorted(self.features)}")
        spec = self.features[key]
        names = _flatten_names(spec.get("names"))
        if names is None or spec["dtype"] in ("video", "image"):
            return names
        n = int(np.prod(spec["shape"]))
        if len(names) != n:
            _fail(self._info_path, f"features.{key}.names", f"{len(names)} names for shape {spec['shape']} ({n} values)")
        return names

    def video_fps(self, key: str) -> float:
        return float((self.features[key].get("info") or {}).get("video.fps", self.fps))

    @property
    def tasks(self) -> dict[int, str]:
        """``task_index`` -> task text (from ``meta/tasks.jsonl`` or ``meta/tasks.parquet``)."""
        return dict(self._tasks)

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    def episode_indices(self) -> list[int]:
        """All episodes the metadata lists."""
        return sorted(self._episodes)

    def available_episodes(self) -> list[int]:
        """Listed episodes whose data (and video) files exist (partial downloads)."""
        out = []
        for i in self.episode_indices():
            files = [self.data_file(i)] + [self.video_file(i, k) for k in self.video_keys]
            if all(f.is_file() for f in files):
                out.append(i)
        return out

    def _read_episodes(self) -> dict[int, dict]:
        meta = self.root / "meta"
        eps: dict[int, dict] = {}
        if self.version.startswith("v2"):
            p = meta / "episodes.jsonl"
            if not p.is_file():
                raise UserFileError(f"{p}: missing (the episode list of a {self.version} dataset)")
            for ln, line in enumerate(p.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    i, n = int(row["episode_index"]), int(row["length"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise LeRobotFormatError(f"{p}: line {ln}: needs episode_index and length ({e})") from None
                eps[i] = {"episode_index": i, "length": n, "tasks": list(row.get("tasks", []))}
            return eps
        _, _, pq = _pq()
        files = sorted((meta / "episodes").rglob("*.parquet"))
        if not files:
            raise UserFileError(f"{meta / 'episodes'}: no episode metadata parquet files (v3.0 dataset)")
        for f in files:
            try:
                rows = pq.read_table(f).to_pylist()
            except Exception as e:  # pyarrow raises several error types for broken files
                raise LeRobotFormatError(f"{f}: unreadable parquet ({type(e).__name__}: {e})") from None
            for r in rows:
                for need in ("episode_index", "length", "data/chunk_index", "data/file_index"):
                    if need not in r:
                        _fail(f, need, "missing column in the episode metadata")
                eps[int(r["episode_index"])] = r
        return eps

    def _read_tasks(self) -> dict[int, str]:
        meta = self.root / "meta"
        if (meta / "tasks.jsonl").is_file():
            out = {}
            p = meta / "tasks.jsonl"
            for ln, line in enumerate(p.read_text().splitlines(), 1):
                if line.strip():
                    try:
                        r = json.loads(line)
                        out[int(r["task_index"])] = str(r["task"])
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                        raise LeRobotFormatError(f"{p}: line {ln}: needs task_index and task ({e})") from None
            return out
        if (meta / "tasks.parquet").is_file():
            _, _, pq = _pq()
            t = pq.read_table(meta / "tasks.parquet").to_pydict()
            names = t.get("task") or t.get("__index_level_0__") or []
            return {int(i): str(n) for i, n in zip(t.get("task_index", []), names)}
        return {}

    def _row(self, i: int) -> dict:
        if i not in self._episodes:
            from .shards import EpisodeLookupError

            raise EpisodeLookupError(f"{self.root}: episode {i} is not listed (the metadata lists {self.num_episodes} episodes: "
                             f"{self.episode_indices()[:5]}...)")
        return self._episodes[i]

    def data_file(self, i: int) -> Path:
        r = self._row(i)
        tpl = self.info["data_path"]
        try:
            if self.version.startswith("v2"):
                rel = tpl.format(episode_chunk=i // self.chunks_size, episode_index=i)
            else:
                rel = tpl.format(chunk_index=int(r["data/chunk_index"]), file_index=int(r["data/file_index"]))
        except (KeyError, IndexError, ValueError) as e:
            raise LeRobotFormatError(f"{self._info_path}: field 'data_path': template {tpl!r} does not fit {self.version} ({e})") from None
        return self.root / rel

    def video_file(self, i: int, key: str) -> Path:
        r = self._row(i)
        tpl = self.info["video_path"]
        try:
            if self.version.startswith("v2"):
                rel = tpl.format(episode_chunk=i // self.chunks_size, episode_index=i, video_key=key)
            else:
                rel = tpl.format(video_key=key, chunk_index=int(r[f"videos/{key}/chunk_index"]), file_index=int(r[f"videos/{key}/file_index"]))
        except (KeyError, IndexError, ValueError) as e:
            raise LeRobotFormatError(f"{self._info_path}: field 'video_path': template {tpl!r} / episode metadata do not fit ({e})") from None
        return self.root / rel

    # -- episodes ----------------------------------------------------------------------------------
    def episode(self, i: int) -> LeRobotEpisode:
        """Load episode ``i``: every non-video feature as numpy, rows in frame order."""
        r = self._row(i)
        path = self.data_file(i)
        if not path.is_file():
            have = self.available_episodes()
            raise UserFileError(f"{self.root}: episode {i} is listed in the metadata but its data file {path} is missing "
                                    f"(partial download?); episodes present: {have[:10]}{'...' if len(have) > 10 else ''}")
        pa, pc, pq = _pq()
        try:
            table = pq.read_table(path)
        except Exception as e:
            raise LeRobotFormatError(f"{path}: unreadable parquet ({type(e).__name__}: {e})") from None
        for need in ("episode_index", "timestamp"):
            if need not in table.column_names:
                _fail(path, need, "missing column")
        if self.version.startswith("v3") or len(set(table.column("episode_index").to_pylist())) > 1:
            table = table.filter(pc.equal(table.column("episode_index"), pa.scalar(i, table.schema.field("episode_index").type)))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        n = table.num_rows
        if n != int(r["length"]):
            _fail(path, "rows", f"episode {i} has {n} rows but the metadata says length {r['length']}")
        data = {}
        for name in table.column_names:
            spec = self.features.get(name)
            if spec is not None and spec["dtype"] in ("video", "image"):
                continue
            a = _column_to_numpy(table.column(name), name, path)
            if spec is not None and a.dtype != object:
                want = int(np.prod(spec["shape"]))
                got = a.shape[1] if a.ndim == 2 else 1
                if got != want:
                    _fail(path, name, f"rows hold {got} values, info.json says shape {spec['shape']}")
                if a.ndim == 2 and list(spec["shape"]) == [1]:
                    a = a[:, 0]
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    _fail(path, name, "contains NaN or inf")
            data[name] = a
        ts = np.asarray(data["timestamp"], np.float64)
        if n > 1 and (np.diff(ts) <= 0).any():
            _fail(path, "timestamp", "not strictly increasing within the episode")
        tasks = [str(t) for t in (r.get("tasks") or [])]
        if not tasks and "task_index" in data and self._tasks:
            tasks = sorted({self._tasks.get(int(k), "") for k in np.unique(data["task_index"])})
        vfrom = {}
        for k in self.video_keys:
            vfrom[k] = float(r.get(f"videos/{k}/from_timestamp", 0.0) or 0.0)
            vf = self.video_file(i, k)
            if not vf.is_file():
                raise UserFileError(f"{self.root}: episode {i}: video {vf} of {k!r} is missing (partial download?)")
        return LeRobotEpisode(self, i, n, tasks, data, vfrom)

    def __repr__(self) -> str:
        return (f"LeRobotDataset({str(self.root)!r}, {self.version}, {self.num_episodes} episodes, fps={self.fps:g}, "
                f"videos={self.video_keys})")
