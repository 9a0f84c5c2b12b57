"""Training samples from episodes: 1-second motion windows (and the image at the window start).

Build time (:func:`motion_sidecar`) does the expensive, sample-independent work once per episode
and stores it in the shard as ``<key>.motion.safetensors``: every hand track resampled to 15 FPS
(:func:`beingh0.motion.windows.resample`: slerp for rotations), per-frame validity at 15 FPS, and
the 21 keypoints relative to the wrist in the camera frame (``beingh0.ops.mano.mano_joints`` through
``ManoModel.keypoints``). Arrays, per hand ``<side>.<name>``: ``global_orient`` (T, 3),
``hand_pose`` (T, 45), ``trans`` (T, 3), ``joints`` (T, 21, 3), float32; ``valid`` (T,) uint8;
``betas`` (10,).

Load time is then cheap (:func:`window_params` + :func:`features_batch`): a window is 15 rows of
those arrays; canonicalising to a reference frame (R_ref, t_ref) is exact and rigid for Being-H0's
wrist-trans convention: R'_t = R_ref^T R_t, t'_t = R_ref^T (t_t - t_ref), and the wrist-relative
joints rotate with the hand, J'_t = R_ref^T J_t (the same as ``encode_features`` on
``canonicalize``d parameters; ``tests/data/test_loader.py`` checks it against that reference).

Sample dict (what a ``transform`` sees and may change, and what the loader yields):

``mano``        camera-frame parameters of the window, rows padded to 16: ``global_orient`` (16, 3),
                ``hand_pose`` (16, 45), ``trans`` (16, 3) metres, ``joints`` (16, 21, 3) wrist-
                relative metres, ``betas`` (10,), and the reference frame ``ref_global_orient`` (3,),
                ``ref_trans`` (3,). A camera transform (``beingh0.align``) must keep these consistent
                with the image (rotate ``joints`` with ``global_orient``).
``mask``        (16,) bool: real, valid frames (rows 15 and frames past the end / invalid are False).
``features``    (16, D) float32, computed **after** the transform from ``mano`` (zeros where masked).
``hand``, ``hand_id`` ("left" 0 / "right" 1), ``episode``, ``source``, ``index`` (sample id),
``window_start`` (15 FPS frame), ``t0`` (seconds), ``ref_index`` (15 FPS frame), ``text`` and
``caption`` (the best-matching per-second annotation, else the per-hand / chunk instruction).
Image samples add ``image`` (H, W, 3) uint8 (the frame at the window start), ``image_frame``
(episode frame number), ``intrinsics`` (4,) float64 fx, fy, cx, cy in pixels of that image,
``width``, ``height``, ``distortion`` (5,) float64 (zeros when none) and ``distortion_model``
(``""``, ``"radtan"`` or ``"fisheye"``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from ..core.config import validate_config
from ..mano.model import hand_model
from ..motion.features import FeatureSpec
from ..motion.hands import hand_features, hand_joints
from ..motion.windows import FPS, REFERENCE_BACK_FRAMES, WINDOW_FRAMES, WINDOW_PAD, resample
from .episode import SIDES, Episode, EpisodeFormatError

SIDECAR_VERSION = 1
SIDE_IDS = {s: i for i, s in enumerate(SIDES)}


@dataclass(frozen=True)
class MotionOptions:
    """Build-time motion settings (recorded in the index)."""

    min_valid: float = field(default=0.5, metadata={"gt": 0, "le": 1})
    """A 1-second window is a sample when at least this fraction of its 15 frames is valid (0.5: a
    hand seen for half a second still teaches motion; fully hidden hands not)."""
    hand_model: str | None = None
    """None for the embedded default hand (not MANO), or a folder holding ``MANO_RIGHT.pkl`` /
    ``MANO_LEFT.pkl`` (or converted .npz/.safetensors) for real MANO joints."""

    def __post_init__(self):
        if isinstance(self.hand_model, os.PathLike):  # a Path from the command line: stored as text (JSON index)
            object.__setattr__(self, "hand_model", os.fspath(self.hand_model))
        validate_config(self)


def _fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rows at invalid frames replaced by the nearest earlier valid row (else the first valid one)."""
    idx = np.where(valid, np.arange(len(valid)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.flatnonzero(valid)[0])
    idx[idx < 0] = first
    return x[idx]


def _grid(T: int, src_fps: float):
    """Positions of the 15 FPS grid in source frames (the same grid as ``motion.windows.resample``)."""
    ratio = src_fps / FPS
    n = int(math.floor((T - 1) / ratio + 1e-9)) + 1
    pos = np.arange(n, dtype=np.float64) * ratio
    pos = np.where(np.abs(pos - np.round(pos)) < 1e-9, np.round(pos), pos)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, max(T - 2, 0))
    hi = np.minimum(lo + 1, T - 1)
    return pos, lo, hi


def usable_windows(valid15: np.ndarray, min_valid: float) -> list[list[int]]:
    """Window numbers w (frames [15 w, 15 w + 15)) with enough valid frames, as [start, stop) runs."""
    T = len(valid15)
    n = -(-T // WINDOW_FRAMES)
    padded = np.zeros(n * WINDOW_FRAMES, bool)
    padded[:T] = valid15
    ok = padded.reshape(n, WINDOW_FRAMES).sum(1) >= math.ceil(min_valid * WINDOW_FRAMES - 1e-9)
    runs, w = [], 0
    while w < n:
        if ok[w]:
            a = w
            while w < n and ok[w]:
                w += 1
            runs.append([a, w])
        else:
            w += 1
    return runs


def motion_sidecar(ep: Episode, options: MotionOptions = MotionOptions()) -> tuple[bytes, dict]:
    """The ``<key>.motion.safetensors`` member of an episode and its index summary."""
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    frames, windows = {}, {}
    for side in sorted(ep.hands):
        h = ep.hands[side]
        valid = h.valid & np.isfinite(h.trans).all(1) & np.isfinite(h.global_orient).all(1) & np.isfinite(h.hand_pose).all(1)
        if not valid.any():
            continue
        params = {
            "global_orient": torch.from_numpy(_fill_invalid(h.global_orient, valid).astype(np.float64)),
            "hand_pose": torch.from_numpy(_fill_invalid(h.hand_pose, valid).astype(np.float64)),
            "trans": torch.from_numpy(_fill_invalid(h.trans, valid).astype(np.float64)),
        }
        p15 = resample(params, ep.fps, FPS)
        pos, lo, hi = _grid(ep.num_frames, ep.fps)
        v15 = valid[lo] & (valid[hi] | (pos == lo))
        p15["betas"] = torch.from_numpy(h.betas.astype(np.float64))
        J = hand_joints(p15, side, hand_model(side, options.hand_model))       # (T15, 21, 3) float64, wrist-relative
        for name in ("global_orient", "hand_pose", "trans"):
            arrays[f"{side}.{name}"] = p15[name].numpy().astype(np.float32)
        arrays[f"{side}.joints"] = J.numpy().astype(np.float32)
        arrays[f"{side}.valid"] = v15.astype(np.uint8)
        arrays[f"{side}.betas"] = h.betas.astype(np.float32)
        frames[side] = int(len(v15))
        windows[side] = usable_windows(v15, options.min_valid)
    summary = {
        "member": f"{ep.episode_id}{'.motion.safetensors'}", "version": SIDECAR_VERSION, "fps": FPS, "frames": frames,
        "windows": windows, "min_valid": options.min_valid, "hand_model": options.hand_model or "embedded",
    }
    # One metadata key only: safetensors writes its metadata map in hash order (several keys would
    # make equal sidecars differ byte-wise between processes).
    return save(arrays, metadata={"format": f"beingh0.motion/{SIDECAR_VERSION}"}), summary


def load_sidecar(data: bytes, where: str) -> dict[str, dict[str, np.ndarray]]:
    """Parse a motion sidecar into ``{side: {name: array}}`` with shape checks (each hand's dict also
    holds ``"side"``, which :func:`window_params` passes on so that features know the hand)."""
    from safetensors.numpy import load

    try:
        flat = load(bytes(data))
    except Exception as e:  # safetensors has its own error types for malformed buffers
        raise EpisodeFormatError(f"{where}: field 'motion.safetensors': unreadable ({type(e).__name__}: {e})") from None
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, a in flat.items():
        side, _, field = name.partition(".")
        out.setdefault(side, {})[field] = a
    for side, d in out.items():
        T = len(d.get("valid", ()))
        want = {"global_orient": (T, 3), "hand_pose": (T, 45), "trans": (T, 3), "joints": (T, 21, 3), "valid": (T,), "betas": (10,)}
        for k, shape in want.items():
            if k not in d or d[k].shape != shape:
                raise EpisodeFormatError(f"{where}: field 'motion.{side}.{k}': missing or shape "
                                         f"{getattr(d.get(k), 'shape', None)}, expected {shape}")
        d["valid"] = d["valid"].astype(bool)
        d["side"] = side
    return out


# ----------------------------------------------------------------------------------- windows
def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (vectorised, wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, epoch: int, ids) -> np.ndarray:
    """Uniform [0, 1) numbers that depend only on (seed, epoch, sample id): the same sample draws
    the same reference frame whatever worker, rank or resume point produced it."""
    ids = np.asarray(ids, np.uint64)
    with np.errstate(over="ignore"):
        base = _mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(epoch))
        x = _mix64(ids * np.uint64(0x9E3779B97F4A7C15) + base)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def reference_index(valid15: np.ndarray, start: int, u: float, mode: str = "random",
                    max_back: int = REFERENCE_BACK_FRAMES) -> int:
    """Reference frame for a window starting at ``start`` (15 FPS frames).

    ``"random"``: uniform over [max(0, start - max_back), start] via ``u`` in [0, 1) (Being-H0's
    training choice, ``motion.windows.sample_reference_index``); ``"first"``: the window start.
    A reference must be a valid frame: an invalid draw falls back to the first valid frame of the
    window (usable windows always have one).
    """
    if mode == "random":
        low = max(0, start - max_back)
        ref = low + min(int(u * (start - low + 1)), start - low)
    elif mode == "first":
        ref = start
    else:
        raise ValueError(f"reference must be 'random' or 'first', got {mode!r}")
    if not valid15[ref]:
        seg = valid15[start:start + WINDOW_FRAMES]
        ref = start + int(np.argmax(seg)) if seg.any() else int(np.argmax(valid15))
    return ref


def window_params(hand: Mapping[str, np.ndarray], start: int, ref: int) -> dict[str, Any]:
    """Camera-frame parameters of the window [start, start + 15), rows padded to 16, and its mask."""
    T = len(hand["valid"])
    n = max(0, min(WINDOW_FRAMES, T - start))
    mask = np.zeros(WINDOW_PAD, bool)
    mask[:n] = hand["valid"][start:start + n]
    out: dict[str, Any] = {}
    for k, shape in (("global_orient", (3,)), ("hand_pose", (45,)), ("trans", (3,)), ("joints", (21, 3))):
        a = np.zeros((WINDOW_PAD, *shape), np.asarray(hand[k]).dtype if np.asarray(hand[k]).dtype == np.float64 else np.float32)
        a[:n] = hand[k][start:start + n]
        out[k] = a
    out["betas"] = hand["betas"]
    out["ref_global_orient"] = hand["global_orient"][ref]
    out["ref_trans"] = hand["trans"][ref]
    if "side" in hand:
        out["side"] = hand["side"]
    return out, mask


def features_batch(manos: list[Mapping[str, Any]], masks, spec: FeatureSpec | str = "D162", sides=None) -> torch.Tensor:
    """Canonical motion features (B, 16, D) of camera-frame windows (see module docstring), through
    THE feature path ``beingh0.motion.hand_features``: left hands are mirrored into the right-hand
    convention, then every row is expressed in the window's reference frame.

    ``sides``: one ``"left"``/``"right"`` per window; default each ``mano["side"]`` (set by
    :func:`window_params` from the sidecar). float32 in, float32 out; float64 in, float64 out.
    """
    spec = spec if isinstance(spec, FeatureSpec) else FeatureSpec(spec)
    if sides is None:
        missing = [i for i, m in enumerate(manos) if "side" not in m]
        if missing:
            raise ValueError(f"features_batch: window {missing[0]} has no 'side' in its mano dict; pass sides=[...] "
                             "('left'/'right' per window): left hands are mirrored before their features are computed")
        sides = [m["side"] for m in manos]
    dtype = torch.float64 if all(np.asarray(m["global_orient"]).dtype == np.float64 for m in manos) else torch.float32
    st = lambda k: torch.from_numpy(np.stack([np.asarray(m[k]) for m in manos])).to(dtype)
    keys = ["global_orient", "hand_pose", "trans", "ref_global_orient", "ref_trans"]
    if spec.has_joints:
        keys.append("joints")
    if spec.has_betas:
        keys.append("betas")
    x = hand_features({k: st(k) for k in keys}, spec, list(sides))
    m = torch.from_numpy(np.stack([np.asarray(k, bool) for k in masks]))
    return x * m[..., None]


def window_text(header_text: Mapping[str, Any], side: str, t0: float, t1: float) -> tuple[str, str]:
    """(instruction, caption) for ``side`` over [t0, t1): the per-second segment with the largest
    overlap (this hand's before bimanual ones), else the per-hand instruction, else the chunk's."""
    best, best_ov = None, 0.0
    for s in header_text.get("segments", ()):
        if s["hand"] not in (side, "both"):
            continue
        ov = min(t1, s["t1"]) - max(t0, s["t0"]) + (1e-3 if s["hand"] == side else 0.0)
        if ov > best_ov:
            best, best_ov = s, ov
    if best is not None:
        return best["instruction"], best.get("caption", "")
    return header_text.get("per_hand", {}).get(side) or header_text.get("instruction", ""), header_text.get("summary", "")


def image_frame_index(start15: int, fps: float, num_frames: int) -> int:
    """Episode frame shown at the start of a window (15 FPS frame ``start15``)."""
    return int(min(num_frames - 1, max(0, round(start15 * fps / FPS))))
