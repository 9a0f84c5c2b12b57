"""Motion for the tokenizer: dataset folders through the data loader, in-memory clips through the
same feature path.

Training and held-out evaluation read **dataset folders** (``beingh0 data build`` / ``data synth``)
through the loader the VLA uses (``beingh0.data.loader.ShardDataset``, ``kind="motion"``): 1-second
windows, reference frames drawn from the 10 s before each window (training) or the window start
(evaluation), features from ``beingh0.data.samples.features_batch``. Several folders are read as one
(:class:`ShardDatasets`).

An in-memory ``MotionClip`` (a fitted real sequence, ``MotionTokenizer.encode``) becomes the same
per-hand track the data build writes (:func:`clip_track`: 15 FPS, betas of the first frame,
wrist-relative keypoints of the hand's own model) and its windows go through the same
``window_params`` + ``features_batch`` (:func:`clip_windows`). Every path ends in
``beingh0.motion.hand_features``, which mirrors left hands into the right-hand convention.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserFileError, UserValueError
from ..motion import FPS, WINDOW_FRAMES, CanonicalFrame, FeatureSpec, axis_angle_to_matrix, hand_features, resample
from ..motion.hands import hand_joints, to_right_hand

__all__ = ["MotionClip", "clip_track", "clip_windows", "clip_features", "clips_from_episode", "ShardDatasets",
           "open_datasets"]


@dataclass
class MotionClip:
    """MANO parameters of one hand over time (metres, radians; ``trans`` = wrist position).

    global_orient (T, 3) and hand_pose (T, 45) axis-angle (MANO native joint order, no PCA),
    betas (10,) or (T, 10), trans (T, 3), fps (frames per second), side ('right' or 'left').
    Arrays may be numpy or torch; they are stored as float64 tensors.
    """

    global_orient: object
    hand_pose: object
    betas: object
    trans: object
    fps: float = float(FPS)
    side: str = "right"
    name: str = ""

    def __post_init__(self):
        def t(key):
            v = getattr(self, key)
            try:
                v = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v, dtype=torch.float64)
            except (TypeError, ValueError) as e:
                raise UserValueError(f"MotionClip.{key} must be an array of numbers: {e}") from None
            setattr(self, key, v.detach().cpu())
            return v

        go, hp, tr, b = t("global_orient"), t("hand_pose"), t("trans"), t("betas")
        T = go.shape[0] if go.dim() == 2 else -1
        for key, x, w in (("global_orient", go, 3), ("hand_pose", hp, 45), ("trans", tr, 3)):
            if x.dim() != 2 or x.shape[1] != w or x.shape[0] != T:
                raise UserValueError(f"MotionClip.{key} must be (T, {w}) with the T of global_orient ({T}), got {tuple(x.shape)}")
        if T < 1:
            raise UserValueError("MotionClip needs at least one frame")
        if not (b.shape == (10,) or (b.dim() == 2 and b.shape == (T, 10))):
            raise UserValueError(f"MotionClip.betas must be (10,) or (T={T}, 10), got {tuple(b.shape)}")
        for key in ("global_orient", "hand_pose", "trans", "betas"):
            if not bool(torch.isfinite(getattr(self, key)).all()):
                raise UserValueError(f"MotionClip.{key} of clip {self.name!r} contains NaN or Inf; interpolate or drop "
                                     "those frames first (beingh0.mano.clean.interpolate_gaps)")
        if isinstance(self.fps, bool) or not (isinstance(self.fps, (int, float)) and 0 < self.fps < 1e4):
            raise UserValueError(f"MotionClip.fps must be > 0, got {self.fps!r}")
        if self.side not in ("right", "left"):
            raise UserValueError(f"MotionClip.side must be 'right' or 'left', got {self.side!r}")

    @property
    def num_frames(self) -> int:
        return self.global_orient.shape[0]

    def params(self) -> dict:
        """Time-major parameter dict (betas of the first frame, (10,))."""
        b = self.betas if self.betas.dim() == 1 else self.betas[0]
        return {"global_orient": self.global_orient, "hand_pose": self.hand_pose, "trans": self.trans, "betas": b}


def _check_clip(clip) -> "MotionClip":
    if isinstance(clip, dict):
        clip = MotionClip(**clip)
    if not isinstance(clip, MotionClip):
        raise TypeError(f"expected a MotionClip, got {type(clip).__name__}")
    return clip


def clip_track(clip: MotionClip, model=None) -> dict:
    """A clip as the per-hand track the data build stores (``beingh0.data.samples.motion_sidecar``):
    15 FPS, camera frame, the hand's own convention; float64 numpy arrays ``global_orient`` (T, 3),
    ``hand_pose`` (T, 45), ``trans`` (T, 3), ``joints`` (T, 21, 3) wrist-relative keypoints of
    ``model`` (default ``beingh0.mano.hand_model(clip.side)``), ``valid`` (T,), ``betas`` (10,)
    (the first frame's: the tokenizer models motion, not shape) and ``side``."""
    clip = _check_clip(clip)
    p = clip.params()
    betas = p.pop("betas")
    if clip.fps != FPS:
        p = resample(p, clip.fps, FPS)
    p["betas"] = betas
    J = hand_joints(p, clip.side, model)
    out = {k: p[k].numpy() for k in ("global_orient", "hand_pose", "trans")}
    out.update(joints=J.double().numpy(), valid=np.ones(len(out["trans"]), bool), betas=betas.numpy(), side=clip.side)
    return out


def clip_windows(clip: MotionClip, spec="D162", model=None):
    """Evaluation windows of a clip, exactly as the loader builds them with ``reference="first"``:
    consecutive 1-s windows, each in the frame of its first frame, left hands mirrored.
    -> (features (N, 16, D) float64, mask (N, 16) bool, betas (N, 10) float64)."""
    from ..data.samples import features_batch, window_params

    spec = FeatureSpec(spec) if isinstance(spec, str) else spec
    track = clip_track(clip, model)
    T = len(track["valid"])
    manos, masks = [], []
    for start in range(0, T, WINDOW_FRAMES):
        m, k = window_params(track, start, start)
        manos.append(m)
        masks.append(k)
    x = features_batch(manos, masks, spec)
    betas = torch.from_numpy(np.stack([m["betas"] for m in manos])).double()
    return x, torch.from_numpy(np.stack(masks)), betas


def clip_features(clip: MotionClip, spec="D162", model=None, canonicalize: bool = True):
    """Whole-clip features (T, D) float64 at 15 FPS in the right-hand convention, expressed in the
    frame of the clip's first frame (``canonicalize``) -> (features, CanonicalFrame or None). The
    frame is in the right-hand convention too (what ``MotionTokenizer.decode`` undoes before it
    mirrors a left hand back)."""
    spec = FeatureSpec(spec) if isinstance(spec, str) else spec
    clip = _check_clip(clip)
    track = clip_track(clip, model)
    p = {k: torch.from_numpy(track[k]) for k in ("global_orient", "hand_pose", "trans", "joints")}
    p["betas"] = torch.from_numpy(track["betas"])
    frame = None
    if canonicalize:
        p["ref_global_orient"], p["ref_trans"] = p["global_orient"][0], p["trans"][0]
        r = to_right_hand({"global_orient": p["ref_global_orient"], "trans": p["ref_trans"]}, clip.side)
        frame = CanonicalFrame(axis_angle_to_matrix(r["global_orient"]), r["trans"])
    return hand_features(p, spec, clip.side), frame


def clips_from_episode(ep, min_seconds: float = 1.0) -> list[MotionClip]:
    """The hand tracks of a UniHand :class:`~beingh0.data.episode.Episode` as clips: one clip per
    hand and maximal run of valid frames at least ``min_seconds`` long (shorter runs are dropped)."""
    out: list[MotionClip] = []
    min_len = max(1, int(round(min_seconds * ep.fps)))
    for side in sorted(ep.hands):
        h = ep.hands[side]
        v = np.concatenate([[False], np.asarray(h.valid, bool), [False]])
        edges = np.flatnonzero(v[1:] != v[:-1])
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= min_len:
                out.append(MotionClip(h.global_orient[a:b], h.hand_pose[a:b], h.betas, h.trans[a:b], fps=float(ep.fps),
                                      side=side, name=f"{ep.episode_id}:{side}:{a}"))
    return out


# ----------------------------------------------------------------------------------- folders
class ShardDatasets(torch.utils.data.Dataset):
    """Several ``ShardDataset`` folders read as one (the interface ``ResumableLoader`` needs):
    samples are the folders' samples in order; sample ``epoch * N + i`` of the whole maps to sample
    ``epoch * N_k + j`` of folder k, so reference draws stay those of each folder."""

    def __init__(self, parts: list):
        if not parts:
            raise UserValueError("no dataset folders given")
        self.parts = list(parts)
        self.sizes = np.array([len(p) for p in self.parts], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.seed = self.parts[0].seed
        self.spec = self.parts[0].spec

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def fingerprint(self) -> str:
        return hashlib.sha256("|".join(p.fingerprint() for p in self.parts).encode()).hexdigest()[:16]

    def episode_starts(self) -> np.ndarray:
        out = [np.zeros(1, np.int64)]
        for off, p in zip(self.offsets[:-1], self.parts):
            out.append(p.episode_starts()[1:] + off)
        return np.concatenate(out).astype(np.int64)

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, ids) -> list:
        N = len(self)
        ids = np.asarray(ids, np.int64)
        ep, local = ids // N, ids % N
        k = np.searchsorted(self.offsets, local, side="right") - 1
        out: list = [None] * len(ids)
        for part in np.unique(k).tolist():
            js = np.flatnonzero(k == part)
            sub = ep[js] * self.sizes[part] + (local[js] - self.offsets[part])
            for j, s in zip(js.tolist(), self.parts[part].__getitems__(sub.tolist())):
                out[j] = s
        return out


def open_datasets(folders, spec="D162", reference: str = "random", seed: int = 0):
    """Dataset folder(s) -> a ``ShardDataset`` (one folder) or :class:`ShardDatasets` (several) of
    ``kind="motion"`` samples; a folder that is not a dataset, or has no motion windows, is a
    ``UserError`` naming it."""
    from ..data.loader import ShardDataset

    if isinstance(folders, (str, Path)):
        folders = [folders]
    folders = [Path(f) for f in folders]
    if not folders:
        raise UserValueError("no dataset folders given; pass --data DIR (a folder written by `beingh0 data build` "
                             "or `beingh0 data synth`)")
    spec = spec.name if isinstance(spec, FeatureSpec) else spec
    parts = []
    for f in folders:
        if not (f / "index.json").is_file():
            raise UserFileError(f"{f} is not a dataset folder (no index.json); build one with `beingh0 data build` or "
                                "`beingh0 data synth --no-frames`")
        ds = ShardDataset(f, kind="motion", feature=spec, reference=reference, seed=seed)
        if len(ds) == 0:
            raise UserValueError(f"{f} has no motion windows (no hand track with a valid second); check it with "
                                 "`beingh0 data stats`")
        parts.append(ds)
    return parts[0] if len(parts) == 1 else ShardDatasets(parts)


def dataset_windows(ds, batch: int = 512, limit: int | None = None):
    """Yield (features (B, 16, D) float32, mask (B, 16), betas (B, 10)) over a dataset's samples in
    index order (the first ``limit``)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    for a in range(0, n, batch):
        samples = ds.__getitems__(list(range(a, min(a + batch, n))))
        yield (torch.stack([s["features"] for s in samples]), torch.stack([s["mask"] for s in samples]),
               torch.from_numpy(np.stack([np.asarray(s["mano"]["betas"], np.float64) for s in samples])))
