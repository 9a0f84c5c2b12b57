"""Cheap integrity checks of what a dataset folder holds, run when episodes are loaded.

A flipped byte in a shard, a sidecar written with NaN or 1e30, or an index that disagrees with its
members must not reach training as NaN features. Every load checks, on arrays already in memory
(vectorised numpy, a few microseconds per episode):

* the episode header (:func:`beingh0.data.episode.validate_header`) and that it agrees with the
  index entry (frames, rate, hands, source);
* the motion sidecar (:func:`check_sidecar`): shapes, dtypes, finiteness and plausible ranges of
  every array, and its frame counts against the index.

Corruption that still yields plausible finite numbers is only found by hashing the shards
(``ShardIndex(verify="sha256")``, ``beingh0 data stats --verify``). :func:`scan_dataset` runs the
checks over a whole dataset (what ``data stats`` reports) without decoding any frame.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..core.errors import UserError
from .episode import MAX_ABS_ANGLE, MAX_ABS_BETA, MAX_ABS_TRANS_M, Episode, EpisodeFormatError, parse_header
from .shards import ShardIndex, read_members

#: wrist-relative keypoints of a hand farther than this from the wrist (metres) are corrupt data
MAX_ABS_JOINT_M = 10.0

_SIDECAR_LIMITS = {"global_orient": (MAX_ABS_ANGLE, "rad"), "hand_pose": (MAX_ABS_ANGLE, "rad"),
                   "trans": (MAX_ABS_TRANS_M, "m"), "joints": (MAX_ABS_JOINT_M, "m"), "betas": (MAX_ABS_BETA, "")}


def _fail(where: str, field: str, msg: str):
    raise EpisodeFormatError(f"{where}: field '{field}': {msg}; the data is corrupt (rebuild the dataset, or "
                             "check the shard with `beingh0 data stats --verify`)")


def check_sidecar(motion: Mapping[str, Mapping[str, np.ndarray]], where: str, entry: Mapping[str, Any] | None = None) -> None:
    """Values of a parsed motion sidecar (``samples.load_sidecar``): float32, finite, within
    plausible ranges, and (given the index ``entry``) the frame counts the index recorded."""
    frames = (entry or {}).get("motion", {}).get("frames") if entry is not None else None
    if frames is not None and set(frames) != set(motion):
        _fail(where, "motion", f"holds hands {sorted(motion)}, the index lists {sorted(frames)}")
    for side, d in motion.items():
        if frames is not None and len(d["valid"]) != frames[side]:
            _fail(where, f"motion.{side}.valid", f"{len(d['valid'])} frames, the index says {frames[side]}")
        for name, (lim, unit) in _SIDECAR_LIMITS.items():
            a = d[name]
            if a.dtype != np.float32:
                _fail(where, f"motion.{side}.{name}", f"dtype {a.dtype}, expected float32")
            if a.size == 0:
                continue
            if not np.isfinite(a).all():
                bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1)) if a.ndim > 1 else np.flatnonzero(~np.isfinite(a))
                _fail(where, f"motion.{side}.{name}", f"NaN or inf at rows {bad[:5].tolist()}")
            m = float(np.abs(a).max())
            if m > lim:
                _fail(where, f"motion.{side}.{name}", f"values up to {m:.3g}{(' ' + unit) if unit else ''}, "
                                                      f"beyond the plausible {lim:g}")


def check_header_entry(h: Mapping[str, Any], entry: Mapping[str, Any], where: str) -> None:
    """The (validated) episode header agrees with its index entry."""
    for hk, ek in (("episode_id", "key"), ("num_frames", "num_frames"), ("source", "source")):
        if h[hk] != entry[ek]:
            _fail(where, hk, f"episode.json says {h[hk]!r}, the index says {entry[ek]!r}")
    if abs(float(h["fps"]) - float(entry["fps"])) > 1e-6 * float(entry["fps"]):
        _fail(where, "fps", f"episode.json says {h['fps']!r}, the index says {entry['fps']!r}")
    if sorted(h["hands"]) != sorted(entry["hands"]):
        _fail(where, "hands", f"episode.json says {h['hands']!r}, the index says {entry['hands']!r}")


def check_episode(index: ShardIndex, i: int, *, arrays: bool = True) -> dict:
    """Check episode ``i`` of a dataset without decoding frames: header (and its agreement with
    the index), arrays (``arrays=True``: the whole :meth:`Episode.validate` but for the frame
    data) and motion sidecar. Returns the parsed header; raises :class:`EpisodeFormatError`
    naming the file and the field."""
    from .samples import load_sidecar

    ref = index.refs[i]
    where = f"{ref.shard}[{ref.key}]"
    entry = ref.entry
    names = ["episode.json"] + (["arrays.safetensors"] if arrays else [])
    mo = entry.get("motion")
    if mo is not None:
        names.append(mo["member"])
    m = read_members(ref.shard, entry, names)
    h = parse_header(m[f"{ref.key}.episode.json"], where)
    check_header_entry(h, entry, where)
    if arrays:
        Episode.from_members(m, where=where, frames=False)
    if mo is not None:
        check_sidecar(load_sidecar(m[mo["member"]], where), where, entry)
    return h


def scan_dataset(root_or_index, *, arrays: bool = True, max_errors: int = 5) -> dict[str, Any]:
    """Run :func:`check_episode` on every episode: ``{"checked", "corrupt", "errors"}`` (the
    first ``max_errors`` messages). Reads headers, arrays and sidecars, never frames."""
    index = root_or_index if isinstance(root_or_index, ShardIndex) else ShardIndex(root_or_index)
    corrupt, errors = 0, []
    for i in range(len(index)):
        try:
            check_episode(index, i, arrays=arrays)
        except UserError as e:
            corrupt += 1
            if len(errors) < max_errors:
                errors.append(str(e))
    return {"checked": len(index), "corrupt": corrupt, "errors": errors}
