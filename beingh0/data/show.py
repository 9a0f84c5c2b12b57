"""Look at an episode: frames with the projected 21 hand keypoints and the per-second caption.

:func:`show_episode` writes a PNG grid of selected frames, or an mp4 of all of them. Keypoints come
from the episode's MANO parameters through the embedded hand model (or real MANO files given by
``model_dir``) and are projected with the episode's intrinsics (and lens distortion, via OpenCV).
Episodes whose frames live in an external video need the source's data folder (``root``).
Motion-only episodes have no pixels: they are shown as 3-D keypoint trajectories in the camera
frame instead, and the function says so.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.constants import KEYPOINT_PARENTS
from ..core.errors import UserFileError, UserValueError
from .episode import Episode, load_episode

#: BGR-free RGB colours per finger (wrist links, thumb, index, middle, ring, pinky) and per hand.
FINGER_RGB = ((90, 90, 90), (230, 50, 50), (255, 140, 20), (50, 180, 60), (40, 120, 230), (160, 80, 200))
HAND_RGB = {"left": (0, 200, 255), "right": (255, 60, 200)}


def _finger(k: int) -> int:
    return 0 if k == 0 else 1 + (k - 1) // 4


def episode_keypoints(ep: Episode, model_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Camera-frame 21 keypoints (T, 21, 3) per hand (NaN where the hand is not valid)."""
    import torch

    from ..mano.model import ManoModel

    out = {}
    for side, h in ep.hands.items():
        if model_dir is not None:
            path = Path(model_dir) / f"MANO_{side.upper()}.pkl"
            if not path.is_file():
                raise UserFileError(f"{path}: no MANO model for the {side} hand in --model-dir")
            m = ManoModel.from_file(path, side=side)
        else:
            m = ManoModel.embedded(side)
        f64 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)
        with torch.no_grad():
            k = m.keypoints(f64(h.betas)[None], f64(h.global_orient), f64(h.hand_pose), f64(h.trans)).numpy()
        k[~h.valid] = np.nan
        out[side] = k
    return out


def project(ep: Episode, points: np.ndarray, t: int) -> np.ndarray:
    """Pixel coordinates (n, 2) of camera-frame points (n, 3) at frame ``t`` (NaN behind the camera)."""
    cam = ep.camera
    fx, fy, cx, cy = cam.intrinsics[t]
    P = np.asarray(points, np.float64)
    bad = ~np.isfinite(P).all(1) | (P[:, 2] <= 1e-6)
    P = np.where(bad[:, None], [0.0, 0.0, 1.0], P)
    if cam.distortion is not None:
        from .extras import require

        cv2 = require("cv2", "data", "projecting with lens distortion")

        K = cam.K(t)
        if cam.distortion_model == "fisheye":
            uv = cv2.fisheye.projectPoints(P[None], np.zeros(3), np.zeros(3), K, cam.distortion[:4])[0][0]
        else:
            uv = cv2.projectPoints(P, np.zeros(3), np.zeros(3), K, cam.distortion)[0][:, 0]
    else:
        uv = np.stack([fx * P[:, 0] / P[:, 2] + cx, fy * P[:, 1] / P[:, 2] + cy], 1)
    uv[bad] = np.nan
    return uv


def caption_at(ep: Episode, t: int) -> str:
    """The per-second caption (both hands if present) covering frame ``t``."""
    sec = t / ep.fps
    segs = [s for s in ep.text.segments if s.t0 <= sec < s.t1 + 1e-9]
    both = [s for s in segs if s.hand == "both"]
    s = (both or segs or [None])[0]
    return ep.text.instruction if s is None else (s.caption or s.instruction)


def draw_frame(img: np.ndarray, kps: dict[str, np.ndarray], ep: Episode, t: int, caption: str, band: int | None = None) -> np.ndarray:
    """One annotated frame: skeletons (finger colours, per-hand joint colour) and a caption band."""
    from .extras import require

    cv2 = require("cv2", "data", "drawing episode frames")

    img = np.ascontiguousarray(img.copy())
    H, W = img.shape[:2]
    sc = max(W, H) / 256
    lw, r = max(1, int(round(1.5 * sc))), max(1, int(round(2 * sc)))
    for side, k in kps.items():
        uv = project(ep, k[t], t)
        for j, p in enumerate(KEYPOINT_PARENTS):
            if p >= 0 and np.isfinite(uv[[j, p]]).all():
                a, b = tuple(np.round(uv[p]).astype(int)), tuple(np.round(uv[j]).astype(int))
                cv2.line(img, a, b, FINGER_RGB[_finger(j)], lw, cv2.LINE_AA)
        for j in range(21):
            if np.isfinite(uv[j]).all():
                c = tuple(np.round(uv[j]).astype(int))
                cv2.circle(img, c, r + (1 if j == 0 else 0), HAND_RGB[side], -1, cv2.LINE_AA)
        if np.isfinite(uv[0]).all():
            c = np.round(uv[0]).astype(int)
            cv2.putText(img, side[0].upper(), (int(c[0]) + 3, int(c[1]) + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * sc, HAND_RGB[side], 1, cv2.LINE_AA)
    fs = 0.32 * max(sc, 1.0)
    chars = max(10, int(W / (fs * 19)))
    lines = [f"t={t / ep.fps:.2f}s  frame {t}"] + textwrap.wrap(caption, chars)
    lh = int(14 * fs / 0.32)
    band = band or lh * len(lines) + 6
    out = np.full((H + band, W, 3), 255, np.uint8)
    out[:H] = img
    for i, line in enumerate(lines[: max(1, (band - 6) // lh)]):
        cv2.putText(out, line, (3, H + lh * (i + 1) - 2), cv2.FONT_HERSHEY_SIMPLEX, fs, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h: r * h + t.shape[0], c * w: c * w + t.shape[1]] = t
    return out


def _plot_motion_only(ep: Episode, kps: dict[str, np.ndarray], out: Path, frames: Sequence[int]) -> Path:
    from ..mano.render import pyplot_agg

    plt = pyplot_agg()
    fig = plt.figure(figsize=(11, 5.5))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    for side, k in kps.items():
        ax.plot(k[:, 0, 0], k[:, 0, 2], -k[:, 0, 1], "-", color=np.array(HAND_RGB[side]) / 255, label=f"{side} wrist")
        ax.plot(k[:, 8, 0], k[:, 8, 2], -k[:, 8, 1], ":", color=np.array(HAND_RGB[side]) / 255, label=f"{side} index tip")
        for t in frames:
            for j, p in enumerate(KEYPOINT_PARENTS):
                if p >= 0:
                    ax.plot(k[t, [p, j], 0], k[t, [p, j], 2], -k[t, [p, j], 1], color=np.array(FINGER_RGB[_finger(j)]) / 255, lw=1)
    ax.set_xlabel("x (m, right)"), ax.set_ylabel("z (m, forward)"), ax.set_zlabel("-y (m, up)")
    ax.legend(fontsize=7)
    ax.set_title("camera-frame keypoints (skeletons at the shown frames)", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.axis("off")
    txt = [f"episode {ep.episode_id} ({ep.source}): MOTION-ONLY, no frames",
           f"{ep.num_frames} frames at {ep.fps:g} FPS", "", "instruction: " + ep.text.instruction, ""]
    for s in ep.text.segments:
        if s.hand == "both" or not any(x.hand == "both" for x in ep.text.segments):
            txt += textwrap.wrap(f"[{s.t0:.1f}-{s.t1:.1f}s] {s.caption or s.instruction}", 70)
    ax2.text(0, 1, "\n".join(txt[:40]), va="top", fontsize=8, family="monospace")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def show_episode(path_or_ep, out: str | Path, frames: Sequence[int] | None = None, root: str | Path | None = None,
                 model_dir: str | Path | None = None, cols: int = 4, log=print) -> Path:
    """Annotate an episode (file or :class:`Episode`) into ``out`` (.png grid or .mp4 video)."""
    ep = path_or_ep if isinstance(path_or_ep, Episode) else load_episode(path_or_ep)
    out = Path(out)
    if out.suffix.lower() not in (".png", ".mp4"):
        raise UserValueError(f"--out must end in .png (a grid of frames) or .mp4 (a video), got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    T = ep.num_frames
    if frames is not None:
        frames = [int(f) for f in frames]
        bad = [f for f in frames if not 0 <= f < T]
        if bad:
            raise UserValueError(f"frames {bad} are outside the episode's 0..{T - 1}")
    kps = episode_keypoints(ep, model_dir)
    if ep.frames.kind == "none":
        if out.suffix.lower() == ".mp4":
            raise UserValueError(f"episode {ep.episode_id} is motion-only (no frames): there is nothing to put in a video; "
                             "use --out something.png for a plot of its 3-D keypoints")
        log(f"episode {ep.episode_id} is motion-only (no frames): plotting its 3-D keypoint trajectories instead")
        sel = frames if frames is not None else sorted(set(np.linspace(0, T - 1, 4).round().astype(int).tolist()))
        return _plot_motion_only(ep, kps, out, sel)
    from .video import encode_mp4, episode_frames

    if out.suffix.lower() == ".mp4":
        sel = frames if frames is not None else list(range(T))
    else:
        sel = frames if frames is not None else sorted(set(np.linspace(0, T - 1, min(8, T)).round().astype(int).tolist()))
    imgs = episode_frames(ep, sel, root=root)
    caps = [caption_at(ep, t) for t in sel]
    # one band height for all tiles so the grid / video frames share a size
    probe = [draw_frame(imgs[0], {}, ep, sel[0], c) for c in caps]
    band = max(p.shape[0] for p in probe) - imgs.shape[1]
    tiles = [draw_frame(im, kps, ep, t, c, band) for im, t, c in zip(imgs, sel, caps)]
    if out.suffix.lower() == ".png":
        from PIL import Image

        Image.fromarray(_grid(tiles, min(cols, len(tiles)))).save(out)
    else:
        out.write_bytes(encode_mp4(np.stack(tiles), ep.fps))
    return out


def resolve_episode(path: str | Path, key: str | int | None = None) -> tuple[Episode, Path | None, Path]:
    """The episode ``beingh0 data show PATH [--key KEY]`` means, with its frame root and default output.

    ``path``: a dataset folder (``index.json``; ``key`` = episode key or position, default the
    first), a LeRobot dataset folder (``meta/info.json``; ``key`` = episode index, default the first
    present; its frames are read from ``path``), or a single episode ``.tar`` (no ``key``). Returns
    ``(episode, root for external frames or None, default output path)``: beside the episode file,
    inside a dataset folder, and in the current directory for LeRobot folders (often read-only).
    """
    from .shards import INDEX_NAME, load_index

    src = Path(path)
    if src.is_dir() and (src / INDEX_NAME).is_file():
        index = load_index(src)
        ep = index.read(0 if key is None else key)
        return ep, None, src / f"{ep.episode_id}.png"
    if src.is_dir() and (src / "meta" / "info.json").is_file():
        from .lerobot import LeRobotDataset
        from .sources.lerobot import episode_from_lerobot

        ds = LeRobotDataset(src)
        present = ds.available_episodes()
        if key is None:
            if not present:
                raise UserFileError(f"{src}: no episode of this LeRobot dataset has its files present")
            i = present[0]
        else:
            try:
                i = int(key)
            except (TypeError, ValueError):
                raise UserValueError(f"--key {key!r}: a LeRobot dataset's episodes are chosen by index; present: "
                                     f"{present[:10]}") from None
            if i not in present:
                raise UserValueError(f"{src}: episode {i} is not present; episodes with files: {present[:10]}"
                                     f"{'...' if len(present) > 10 else ''}")
        ep = episode_from_lerobot(ds, i)
        return ep, src, Path.cwd() / f"{src.name}-{ep.episode_id}.png"
    if src.is_dir():
        raise UserFileError(f"{src} is a folder but neither a beingh0 dataset (index.json) nor a LeRobot dataset "
                            "(meta/info.json); give one of those or an episode .tar file")
    if key is not None:
        raise UserValueError("--key selects an episode inside a dataset folder; EPISODE is a single episode file")
    return load_episode(src), None, src.with_suffix(".png")


def show(path: str | Path, out: str | Path | None = None, key: str | int | None = None, frames: Sequence[int] | None = None,
         root: str | Path | None = None, model_dir: str | Path | None = None, cols: int = 4, log=print) -> Path:
    """``beingh0 data show``: :func:`resolve_episode` then :func:`show_episode`; returns the file written."""
    ep, own_root, default_out = resolve_episode(path, key)
    return show_episode(ep, out if out is not None else default_out, frames=frames,
                        root=root if root is not None else own_root, model_dir=model_dir, cols=cols, log=log)
