"""MANO parameter sequences -> tokenizer training and evaluation windows.

Input is any list/iterable of ``MotionClip`` (MANO parameters of one hand over time), so episode
storage from ``beingh0.data`` plugs in unchanged. Steps per clip (``prepare_clip``):

1. resample to 15 FPS (``beingh0.motion.resample``);
2. left hands are mirrored into the right-hand convention (one tokenizer for both sides;
   ``beingh0.mano.model.mirror_pose`` / ``mirror_points``), decode mirrors back;
3. betas are held at the clip's first frame (paper section 6.4.1: the tokenizer models motion,
   not shape);
4. features (``beingh0.motion.encode_features``) in the camera frame, joints from the embedded
   hand (or a given ``ManoModel``).

Windows (``WindowSampler`` for training, ``clip_windows`` for evaluation) are re-expressed in a
reference frame directly in feature space (``canonicalize_features``): rotating the world by R^T
rotates every 3-vector block (6D columns, trans, joints) linearly, which is ~100x cheaper than
re-running forward kinematics per window and equals ``beingh0.motion.canonicalize`` followed by
``encode_features`` (tested). Training references are drawn from the 10 s before each window
(``sample_reference_index``); evaluation uses the first frame of the clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..motion import (FPS, WINDOW_FRAMES, WINDOW_PAD, FeatureSpec, axis_angle_to_matrix, encode_features,
                      make_windows, matrix_to_axis_angle, resample, sample_reference_index)

__all__ = ["MotionClip", "PreparedClip", "prepare_clip", "canonicalize_features", "WindowSampler", "clip_windows",
           "hand_model"]


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
        def t(key, width):
            v = getattr(self, key)
            try:
                v = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v, dtype=torch.float64)
            except (TypeError, ValueError) as e:
                raise TypeError(f"MotionClip.{key} must be an array of numbers: {e}") from None
            setattr(self, key, v.detach().cpu())
            return v

        go, hp, tr = t("global_orient", 3), t("hand_pose", 45), t("trans", 3)
        b = t("betas", 10)
        T = go.shape[0] if go.dim() == 2 else -1
        for key, x, w in (("global_orient", go, 3), ("hand_pose", hp, 45), ("trans", tr, 3)):
            if x.dim() != 2 or x.shape[1] != w or x.shape[0] != T:
                raise ValueError(f"MotionClip.{key} must be (T, {w}) with the T of global_orient ({T}), got {tuple(x.shape)}")
        if T < 1:
            raise ValueError("MotionClip needs at least one frame")
        if not (b.shape == (10,) or (b.dim() == 2 and b.shape == (T, 10))):
            raise ValueError(f"MotionClip.betas must be (10,) or (T={T}, 10), got {tuple(b.shape)}")
        for key in ("global_orient", "hand_pose", "trans", "betas"):
            if not bool(torch.isfinite(getattr(self, key)).all()):
                raise ValueError(f"MotionClip.{key} of clip {self.name!r} contains NaN or Inf; interpolate or drop "
                                 "those frames first (beingh0.mano.clean.interpolate_gaps)")
        if not (isinstance(self.fps, (int, float)) and self.fps > 0):
            raise ValueError(f"MotionClip.fps must be > 0, got {self.fps!r}")
        if self.side not in ("right", "left"):
            raise ValueError(f"MotionClip.side must be 'right' or 'left', got {self.side!r}")

    @property
    def num_frames(self) -> int:
        return self.global_orient.shape[0]

    def params(self) -> dict:
        """Time-major parameter dict (betas of the first frame, (10,))."""
        b = self.betas if self.betas.dim() == 1 else self.betas[0]
        return {"global_orient": self.global_orient, "hand_pose": self.hand_pose, "trans": self.trans, "betas": b}


@lru_cache(maxsize=4)
def hand_model(side: str = "right"):
    """The embedded hand (cached): joints for the D114/D162 features and the evaluation FK."""
    from ..mano.model import ManoModel

    return ManoModel.embedded(side)


def to_right(params: dict, side: str) -> dict:
    """Mirror a left hand's parameters into the right-hand convention (identity for right hands)."""
    if side == "right":
        return dict(params)
    from ..mano.model import mirror_points, mirror_pose

    out = dict(params)
    out["global_orient"] = mirror_pose(params["global_orient"])
    out["hand_pose"] = mirror_pose(params["hand_pose"])
    out["trans"] = mirror_points(params["trans"])
    return out


from_right = to_right  # mirroring is its own inverse


@dataclass
class PreparedClip:
    """A clip at 15 FPS, right-hand convention, camera frame. features (T, D) float64; rot (T, 3, 3)
    wrist rotations and trans (T, 3), the candidate reference frames; params at 15 FPS."""

    features: torch.Tensor
    rot: torch.Tensor
    trans: torch.Tensor
    params: dict
    side: str
    name: str

    @property
    def num_frames(self) -> int:
        return self.features.shape[0]


def prepare_clip(clip: MotionClip, spec="D162", model=None) -> PreparedClip:
    """Resample, mirror to the right hand, hold betas, compute features (see the module docstring)."""
    if not isinstance(clip, MotionClip):
        raise TypeError(f"expected a MotionClip, got {type(clip).__name__}")
    spec = FeatureSpec(spec) if isinstance(spec, str) else spec
    p = clip.params()
    betas = p.pop("betas")
    if clip.fps != FPS:
        p = resample(p, clip.fps, FPS)
    p = to_right(p, clip.side)
    p["betas"] = betas
    model = model if model is not None else hand_model("right")
    feats = encode_features(p, spec, model=model if spec.has_joints else None)
    return PreparedClip(feats, axis_angle_to_matrix(p["global_orient"]), p["trans"], p, clip.side, clip.name)


def canonicalize_features(x: torch.Tensor, rot: torch.Tensor, origin: torch.Tensor, spec="D162") -> torch.Tensor:
    """Express features x (..., T, D) (camera frame) in the reference frame (rot (..., 3, 3), origin (..., 3)).

    global_orient <- R^T R_t, trans <- R^T (t - origin), joints (wrist-relative) <- R^T J; hand_pose
    and betas are unchanged. Same result as ``motion.canonicalize`` + ``encode_features``.
    """
    spec = FeatureSpec(spec) if isinstance(spec, str) else spec
    s = spec.slices
    Rt = rot.transpose(-1, -2).to(x.dtype).unsqueeze(-3)             # (..., 1, 3, 3)
    o = origin.to(x.dtype).unsqueeze(-2)                              # (..., 1, 3)
    out = x.clone()
    rotate = lambda v: (Rt @ v.unsqueeze(-1)).squeeze(-1)
    go = x[..., s["global_orient"]]
    if spec.rot == "6d":
        out[..., s["global_orient"]] = torch.cat([rotate(go[..., :3]), rotate(go[..., 3:])], -1)
    else:
        out[..., s["global_orient"]] = matrix_to_axis_angle(Rt @ axis_angle_to_matrix(go))
    out[..., s["trans"]] = rotate(x[..., s["trans"]] - o)
    if spec.has_joints:
        J = x[..., s["joints"]].reshape(*x.shape[:-1], 21, 3)
        out[..., s["joints"]] = (J @ Rt.transpose(-1, -2)).reshape(*x.shape[:-1], 63)
    return out


class WindowSampler:
    """Random training windows: clip (weighted by length), start frame, reference frame within the
    10 s before the start; features canonicalised and normalised, padded to 16 frames.

    All randomness comes from ``self.generator`` (a torch.Generator), whose state a checkpoint saves.
    """

    def __init__(self, clips: list, spec="D162", seed: int = 0, frames: int = WINDOW_FRAMES, pad_to: int = WINDOW_PAD):
        if not clips:
            raise ValueError("WindowSampler needs at least one clip")
        self.clips, self.spec = clips, FeatureSpec(spec) if isinstance(spec, str) else spec
        self.frames, self.pad_to = frames, pad_to
        self.generator = torch.Generator().manual_seed(seed)
        self.weights = torch.tensor([max(c.num_frames - frames + 1, 1) for c in clips], dtype=torch.float64)

    def sample(self, batch: int, norm=None):
        """-> (windows (B, pad_to, D) float32, mask (B, pad_to) bool)."""
        g = self.generator
        which = torch.multinomial(self.weights, batch, replacement=True, generator=g).tolist()
        D = self.spec.dim
        x = torch.zeros(batch, self.pad_to, D, dtype=torch.float64)
        mask = torch.zeros(batch, self.pad_to, dtype=torch.bool)
        rots, origins = torch.empty(batch, 3, 3, dtype=torch.float64), torch.empty(batch, 3, dtype=torch.float64)
        for i, ci in enumerate(which):
            c = self.clips[ci]
            start = int(torch.randint(0, max(c.num_frames - self.frames, 0) + 1, (1,), generator=g))
            ref = sample_reference_index(g, start)
            n = min(self.frames, c.num_frames - start)
            x[i, :n] = c.features[start:start + n]
            mask[i, :n] = True
            rots[i], origins[i] = c.rot[ref], c.trans[ref]
        x = canonicalize_features(x, rots, origins, self.spec)
        if norm is not None:
            x = norm.apply(x)
        return (x * mask[..., None]).float(), mask

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def clip_windows(clip: PreparedClip, spec="D162", norm=None):
    """Evaluation windows: the whole clip in the frame of its first frame, cut into consecutive
    1-s windows. -> (windows (N, 16, D), mask (N, 16), canonical features (T, D))."""
    feats = canonicalize_features(clip.features, clip.rot[0], clip.trans[0], spec)
    x = norm.apply(feats) if norm is not None else feats
    w, m = make_windows(x)
    return w * m[..., None], m, feats


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


def synthetic_clips(episodes: int, seed: int = 0, seconds: float = 6.0, progress: bool = False) -> list[MotionClip]:
    """Clips of ``episodes`` motion-only episodes of the UniHand synthetic source
    (:mod:`beingh0.data.synth`: bimanual reach/grasp/move/place/pour/press/open), both hands each."""
    from ..data.synth.generate import SynthConfig, synth_episode

    cfg = SynthConfig(seconds=seconds, frames=False)
    it = range(episodes)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="synthesising motion", unit="episode")
    return [c for i in it for c in clips_from_episode(synth_episode(seed, i, cfg))]
