"""Synthetic robot demonstrations: the synthetic hand-video episodes as an Inspire-hand robot
dataset in LeRobot v2.1 layout (the embedded default for post-training). ``beingh0 data synth-robot``.

Each episode is :func:`beingh0.data.synth.synth_episode` (the one synthetic generator: scene,
bimanual motion, camera, rendering, instruction); its frames become the camera video, and the
hands' MANO poses become a robot's proprioception and actions:

* per hand, the wrist pose in the scene's world frame (table frame: +Y up, table plane y = 0,
  metres): position x, y, z and the rotation's 6D form (first two columns of the rotation matrix,
  continuous, as the motion features use);
* per hand, the 6 Inspire joint values of :func:`beingh0.data.retarget.inspire_from_mano`, in the
  units of Unitree's G1 Inspire datasets (normalised, 1 open, 0 closed) and with their names.

``observation.state`` (30) = [left wrist 9, right wrist 9, left hand 6, right hand 6] (arm part first,
hands last, like the G1's 26-D layout; the hand names equal the G1 dataset's). ``action[t]`` =
``state[t + lookahead]`` (default 1 frame: the next state, a position target; the last frames repeat
the final state). Task = the episode's instruction.

Layout (as the real G1 v2.1 folder): ``meta/info.json``, ``meta/episodes.jsonl``,
``meta/tasks.jsonl``, ``meta/episodes_stats.jsonl``, ``data/chunk-000/episode_XXXXXX.parquet``,
``videos/chunk-000/observation.images.cam_high/episode_XXXXXX.mp4`` (H.264; the camera is named like
the G1's head camera so a policy config reads both), plus ``meta/camera_intrinsics.json`` (per
episode fx, fy, cx, cy of the video, see :mod:`beingh0.data.robot`) and ``meta/beingh0_synth.json``
(the generator settings, for ``reuse``).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ...core.errors import UserValueError
from .generate import SynthConfig, synth_episode

__all__ = ["robot_demos", "robot_state_names", "episode_robot_arrays", "CAMERA"]

CAMERA = "observation.images.cam_high"
ROBOT_TYPE = "beingh0_synthetic_bimanual_inspire"
SIDES = ("left", "right")
SETTINGS_FILE = "meta/beingh0_synth.json"
CHUNKS_SIZE = 1000


def robot_state_names() -> list[str]:
    from ..retarget import INSPIRE_JOINTS

    names = []
    for s in ("Left", "Right"):
        names += [f"k{s}WristPos{a}" for a in "XYZ"] + [f"k{s}WristRot6d{i}" for i in range(6)]
    for s in ("Left", "Right"):
        names += [f"k{s}Hand{j}" for j in INSPIRE_JOINTS]
    return names


def episode_robot_arrays(ep, lookahead: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(state, action) float32 (T, 30) of a synthetic :class:`~beingh0.data.episode.Episode`."""
    import torch

    from ...core.rotations import axis_angle_to_matrix, matrix_to_6d
    from ..retarget import inspire_from_mano

    T = ep.num_frames
    E = np.asarray(ep.camera.cam_to_world, np.float64)
    wrist, hand = [], []
    for s in SIDES:
        h = ep.hands[s]
        Rc = axis_angle_to_matrix(torch.as_tensor(h.global_orient, dtype=torch.float64)).numpy()
        Rw = E[:, :3, :3] @ Rc
        pw = np.einsum("tij,tj->ti", E[:, :3, :3], np.asarray(h.trans, np.float64)) + E[:, :3, 3]
        wrist.append(np.concatenate([pw, matrix_to_6d(torch.as_tensor(Rw)).numpy()], 1))
        hand.append(inspire_from_mano(h.hand_pose, s, h.betas))
    state = np.concatenate(wrist + hand, 1).astype(np.float32)
    nxt = np.minimum(np.arange(T) + int(lookahead), T - 1)
    return state, state[nxt].copy()


def _stats(a: np.ndarray) -> dict:
    a = np.asarray(a, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    return {"min": a.min(0).tolist(), "max": a.max(0).tolist(), "mean": a.mean(0).tolist(), "std": a.std(0).tolist(),
            "count": [int(len(a))]}


def _image_stats(mp4: bytes, size) -> dict:
    from ..video import decode_video

    px = decode_video(mp4, None, size=size).astype(np.float64) / 255.0  # (T, H, W, 3)
    px = px[:: max(1, len(px) // 8)]
    flat = px.reshape(-1, 3)
    c = lambda v: [[[float(x)]] for x in v]  # (3, 1, 1) as LeRobot writes image stats
    return {"min": c(flat.min(0)), "max": c(flat.max(0)), "mean": c(flat.mean(0)), "std": c(flat.std(0)),
            "count": [int(len(px))]}


def _settings(episodes, cfg: SynthConfig, seed, lookahead) -> dict:
    return {"generator": "beingh0.data.synth.robot", "version": 1, "episodes": int(episodes), "seed": int(seed),
            "seconds": float(cfg.seconds), "fps": float(cfg.fps), "size": [int(cfg.size[0]), int(cfg.size[1])],
            "supersample": int(cfg.supersample), "scenario": cfg.scenario, "lookahead": int(lookahead)}


def robot_demos(out_dir, episodes: int = 16, seconds: float = 4.0, fps: float = 15.0, size: tuple[int, int] = (96, 96),
                seed: int = 0, *, lookahead: int = 1, scenario: str | None = None, overwrite: bool = False,
                reuse: bool = False, progress: bool = False) -> Path:
    """Write ``episodes`` synthetic robot demonstrations (LeRobot v2.1) to ``out_dir``; returns it.

    ``size`` = (width, height) of the video (even numbers; H.264 4:2:0), ``fps`` 15 or 30,
    ``lookahead`` frames between a state and its action. ``reuse=True`` keeps a folder written with
    the same settings; ``overwrite=True`` replaces any other. Deterministic in its arguments."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserValueError(f"episodes={episodes!r} must be an integer >= 1")
    if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
        raise UserValueError(f"lookahead={lookahead!r} must be an integer >= 0 (frames)")
    size = (int(size[0]), int(size[1]))
    if size[0] % 2 or size[1] % 2:
        raise UserValueError(f"size={size} must be even (H.264 4:2:0 video); e.g. {size[0] + size[0] % 2}x{size[1] + size[1] % 2}")
    cfg = SynthConfig(seconds=float(seconds), fps=float(fps), size=size, frames=True, image_format="mp4", scenario=scenario)
    out = Path(out_dir)
    settings = _settings(episodes, cfg, seed, lookahead)
    if out.exists() and any(out.iterdir()):
        sp = out / SETTINGS_FILE
        same = sp.is_file() and json.loads(sp.read_text()) == settings and (out / "meta/info.json").is_file()
        if reuse and same:
            return out
        if not (overwrite or (reuse and sp.is_file())):
            raise UserValueError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "meta").mkdir(parents=True)
    names = robot_state_names()
    D = len(names)
    tasks: dict[str, int] = {}
    ep_rows, stat_rows, intr = [], [], {}
    index = 0
    it = range(episodes)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synthetic robot episodes", unit="ep")
    t0 = time.perf_counter()
    for e in it:
        ep = synth_episode(seed, e, cfg)
        state, action = episode_robot_arrays(ep, lookahead)
        T = ep.num_frames
        task = ep.text.instruction or "manipulate the object"
        ti = tasks.setdefault(task, len(tasks))
        chunk = e // CHUNKS_SIZE
        dp = tmp / f"data/chunk-{chunk:03d}/episode_{e:06d}.parquet"
        vp = tmp / f"videos/chunk-{chunk:03d}/{CAMERA}/episode_{e:06d}.mp4"
        dp.parent.mkdir(parents=True, exist_ok=True)
        vp.parent.mkdir(parents=True, exist_ok=True)
        ts = (np.arange(T) / cfg.fps).astype(np.float32)
        lst = pa.list_(pa.float32(), D)
        table = pa.table({
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1), pa.float32()), D),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1), pa.float32()), D),
            "timestamp": pa.array(ts, pa.float32()),
            "frame_index": pa.array(np.arange(T), pa.int64()),
            "episode_index": pa.array(np.full(T, e), pa.int64()),
            "index": pa.array(np.arange(index, index + T), pa.int64()),
            "task_index": pa.array(np.full(T, ti), pa.int64()),
        })
        assert table.schema.field("action").type == lst
        pq.write_table(table, dp)
        vp.write_bytes(ep.frames.data)  # the generator's H.264 mp4, frame t = episode frame t
        intr[str(e)] = [float(x) for x in ep.camera.intrinsics[0]]
        if not np.allclose(ep.camera.intrinsics, ep.camera.intrinsics[0]):
            raise AssertionError("synthetic camera intrinsics vary within an episode")  # the generator's contract
        ep_rows.append({"episode_index": e, "tasks": [task], "length": T})
        stat_rows.append({"episode_index": e, "stats": {
            "observation.state": _stats(state), "action": _stats(action), CAMERA: _image_stats(ep.frames.data, size),
            "timestamp": _stats(ts), "frame_index": _stats(np.arange(T)), "episode_index": _stats(np.full(T, e)),
            "index": _stats(np.arange(index, index + T)), "task_index": _stats(np.full(T, ti))}})
        index += T
    scalar = lambda dt: {"dtype": dt, "shape": [1], "names": None}
    info = {
        "codebase_version": "v2.1", "robot_type": ROBOT_TYPE, "total_episodes": episodes, "total_frames": index,
        "total_tasks": len(tasks), "total_videos": episodes, "total_chunks": (episodes - 1) // CHUNKS_SIZE + 1,
        "chunks_size": CHUNKS_SIZE, "fps": int(cfg.fps) if float(cfg.fps).is_integer() else cfg.fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "observation.state": {"dtype": "float32", "shape": [D], "names": [names]},
            "action": {"dtype": "float32", "shape": [D], "names": [names]},
            CAMERA: {"dtype": "video", "shape": [size[1], size[0], 3], "names": ["height", "width", "channel"],
                     "info": {"video.height": size[1], "video.width": size[0], "video.codec": "h264",
                              "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": cfg.fps,
                              "video.channels": 3, "has_audio": False}},
            "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
            "index": scalar("int64"), "task_index": scalar("int64"),
        },
        "license": "CC0-1.0",
    }
    meta = tmp / "meta"
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    (meta / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ep_rows))
    (meta / "tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n" for t, i in tasks.items()))
    (meta / "episodes_stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stat_rows))
    (meta / "camera_intrinsics.json").write_text(json.dumps({
        "format": "beingh0.camera_intrinsics", "version": 1,
        "convention": "fx, fy, cx, cy in pixels of the stored video (OpenCV pinhole, pixel centres at integers)",
        "cameras": {CAMERA: {"width": size[0], "height": size[1], "default": None, "episodes": intr}}}, indent=1))
    settings["seconds_to_build"] = round(time.perf_counter() - t0, 2)
    (tmp / SETTINGS_FILE).write_text(json.dumps({k: v for k, v in settings.items() if k != "seconds_to_build"}))
    tmp.rename(out)
    return out
