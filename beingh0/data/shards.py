"""Shards: WebDataset-style uncompressed tar files plus a JSON index for random access by seeking.

A dataset folder holds

``shard-000000.tar`` ...
    uncompressed tars of episode members exactly as :meth:`Episode.to_members` writes them
    (``<key>.episode.json``, ``<key>.arrays.safetensors``, ``<key>.frames.*``), plus the build-time
    sidecar ``<key>.motion.safetensors`` (15 FPS resampled MANO parameters and wrist-relative
    joints, see :mod:`beingh0.data.samples`). Members of one episode are contiguous; any WebDataset
    reader can stream the files as they are.
``index.json`` (:data:`INDEX_FORMAT` version :data:`INDEX_VERSION`)
    per shard: file name, sha256, size; per episode: key, member name -> [data offset, size],
    num_frames, fps, source, hands, duration, has_frames, camera size, and the motion summary
    (15 FPS frame counts and usable 1-second windows per hand). With it, any member of any
    episode is read with one ``seek`` + ``read`` (no scan of the shard).
``manifest.json``
    dataset-level: sources, source and build options, counts, hours, skipped items.

Every write is atomic (temporary file + ``os.replace``). Reading checks what it reads: a shard
whose size differs from the index, a member whose tar header disagrees with the index, or a
truncated file raises :class:`EpisodeFormatError` naming the file and the field.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ..core.errors import UserError, UserFileError
from .episode import MAX_FPS, Episode, EpisodeFormatError, parse_header

INDEX_FORMAT = "beingh0.shard-index"
INDEX_VERSION = 1
MANIFEST_FORMAT = "beingh0.dataset"
INDEX_NAME = "index.json"
MANIFEST_NAME = "manifest.json"
_BLOCK = 512
#: Fewest bytes one frame takes in the stored arrays (camera intrinsics 4 + cam_to_world 16 float64)
#: and in a motion sidecar (global_orient 3 + hand_pose 45 + trans 3 + joints 63 float32 + valid):
#: an index cannot claim more frames or windows than its members hold bytes for.
MIN_ARRAY_BYTES_PER_FRAME = 8 * (4 + 16)
MIN_SIDECAR_BYTES_PER_FRAME = 4 * (3 + 45 + 3 + 63) + 1


class EpisodeLookupError(UserError, IndexError, KeyError):
    """No such episode in a dataset (a position out of range or an unknown key)."""

    __str__ = Exception.__str__  # KeyError would quote the message


def shard_name(i: int) -> str:
    return f"shard-{i:06d}.tar"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: str | Path, obj: Any) -> Path:
    """JSON written atomically (sorted keys, so equal content gives equal bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())
    return path


def write_shard(path: str | Path, episodes: Iterable[Mapping[str, bytes]]) -> dict:
    """Write one shard from per-episode member dicts; returns its index entry (without episode metadata).

    The tar is deterministic (mtime 0, owner root, mode 0644): equal inputs give equal bytes, so
    shards can be compared by sha256 across builds. Returns ``{"file", "size", "sha256",
    "episodes": [{"key", "members": {name: [offset, size]}}]}``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    entries = []
    with open(tmp, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for members in episodes:
                keys = {n.split(".", 1)[0] for n in members}
                if len(keys) != 1:
                    raise ValueError(f"{path}: one episode's members must share one key, got {sorted(keys)}")
                ent = {"key": keys.pop(), "members": {}}
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
                    info.uname = info.gname = ""
                    tf.addfile(info, io.BytesIO(data))
                    # tarfile advances tf.offset past header and padded data; the data started
                    # len(data) rounded up to 512 bytes before it.
                    padded = -(-len(data) // _BLOCK) * _BLOCK
                    ent["members"][name] = [tf.offset - padded, len(data)]
                entries.append(ent)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    size = tmp.stat().st_size
    os.replace(tmp, path)
    return {"file": path.name, "size": size, "sha256": h.hexdigest(), "episodes": entries}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lives: its index entry (``entry``) and shard file."""

    shard: Path
    entry: dict

    @property
    def key(self) -> str:
        return self.entry["key"]


def _check_header(path: Path, header: bytes, name: str, size: int) -> None:
    """The 512-byte ustar header just before a member's data must name that member and size."""
    try:
        info = tarfile.TarInfo.frombuf(header, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError as e:
        raise EpisodeFormatError(f"{path}: field 'index.members[{name}]': no tar header before the recorded offset ({e}); "
                                 "the index does not match this shard (rebuild the dataset)") from None
    # Names longer than 100 bytes sit in a PAX record; the ustar field then holds a truncated form.
    if info.size != size or not (info.name == name or (len(name) > 99 and name.startswith(info.name[:90]))):
        raise EpisodeFormatError(f"{path}: field 'index.members[{name}]': tar header says {info.name!r} of {info.size} bytes, "
                                 f"the index says {name!r} of {size} bytes; the index does not match this shard (rebuild the dataset)")


def read_members(shard: str | Path, entry: Mapping, names: Iterable[str] | None = None, *, check_headers: bool = True,
                 fh=None) -> dict[str, bytes]:
    """Members of one episode read by seeking to the offsets in its index ``entry``.

    ``names`` selects members (full names or suffixes such as ``"motion.safetensors"``; default:
    all). ``fh``: an open binary file of the shard to reuse (workers keep them open).
    """
    shard = Path(shard)
    members = entry["members"]
    if names is None:
        wanted = list(members)
    else:
        wanted = []
        for n in names:
            full = n if n in members else f"{entry['key']}.{n}"
            if full not in members:
                raise EpisodeFormatError(f"{shard}: field 'index.members': episode {entry['key']!r} has no member {full!r}")
            wanted.append(full)
    if not wanted:
        return {}
    spans = sorted((members[n][0], members[n][1], n) for n in wanted)
    lo = spans[0][0] - _BLOCK
    hi = max(o + s for o, s, _ in spans)
    own = fh is None
    try:
        f = open(shard, "rb") if own else fh
    except FileNotFoundError:
        raise UserFileError(f"{shard}: shard file missing (the dataset folder is incomplete; rebuild it)") from None
    try:
        f.seek(lo)
        buf = f.read(hi - lo)
    finally:
        if own:
            f.close()
    if len(buf) != hi - lo:
        raise EpisodeFormatError(f"{shard}: field 'size': file ends at byte {lo + len(buf)}, member data of "
                                 f"{entry['key']!r} runs to {hi}; the shard is truncated")
    out = {}
    for off, size, name in spans:
        if check_headers:
            _check_header(shard, buf[off - _BLOCK - lo: off - lo], name, size)
        out[name] = buf[off - lo: off - lo + size]
    return out


def read_episode(ref: EpisodeRef, fh=None) -> Episode:
    """The validated :class:`Episode` of an index entry (one seek, no shard scan)."""
    m = read_members(ref.shard, ref.entry, fh=fh)
    return Episode.from_members(m, where=f"{ref.shard}[{ref.key}]")


def iter_shard(path: str | Path) -> Iterator[dict[str, bytes]]:
    """Sequential read of a shard (no index): member dicts grouped by key, in file order."""
    path = Path(path)
    cur_key, cur = None, {}
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                if not m.isreg():
                    raise EpisodeFormatError(f"{path}: member {m.name!r} is not a regular file")
                key = m.name.split(".", 1)[0]
                if key != cur_key and cur:
                    yield cur
                    cur = {}
                cur_key = key
                data = tf.extractfile(m).read()
                if len(data) != m.size:
                    raise EpisodeFormatError(f"{path}: member {m.name!r} is truncated")
                cur[m.name] = data
    except tarfile.TarError as e:
        raise EpisodeFormatError(f"{path}: not a readable tar file ({e}); the shard may be truncated") from None
    if cur:
        yield cur


# ----------------------------------------------------------------------------------- index
_EP_FIELDS = {"key": str, "members": dict, "num_frames": int, "fps": (int, float), "source": str, "hands": list,
              "duration": (int, float), "has_frames": bool}


def validate_index(index: Any, where: str) -> dict:
    """Structure check of a loaded index; errors name the file and the field."""
    def fail(field, msg):
        raise EpisodeFormatError(f"{where}: field '{field}': {msg}")

    if not isinstance(index, dict):
        fail("index", "top level must be an object")
    if index.get("format") != INDEX_FORMAT:
        fail("format", f"{index.get('format')!r} is not {INDEX_FORMAT!r}")
    if index.get("version") != INDEX_VERSION:
        fail("version", f"index version {index.get('version')!r}; this beingh0 reads version {INDEX_VERSION} (rebuild the dataset)")
    shards = index.get("shards")
    if not isinstance(shards, list):
        fail("shards", "must be a list")
    keys = set()
    for i, sh in enumerate(shards):
        if not isinstance(sh, dict):
            fail(f"shards[{i}]", "must be an object")
        for k, t in (("file", str), ("size", int), ("sha256", str), ("episodes", list)):
            if not isinstance(sh.get(k), t):
                fail(f"shards[{i}].{k}", f"missing or not a {t.__name__}")
        if "/" in sh["file"] or sh["file"].startswith("."):
            fail(f"shards[{i}].file", f"{sh['file']!r} must be a plain file name inside the dataset folder")
        for j, ep in enumerate(sh["episodes"]):
            f = f"shards[{i}].episodes[{j}]"
            if not isinstance(ep, dict):
                fail(f, "must be an object")
            for k, t in _EP_FIELDS.items():
                if not isinstance(ep.get(k), t):
                    fail(f"{f}.{k}", "missing or of the wrong type")
            if ep["key"] in keys:
                fail(f"{f}.key", f"episode {ep['key']!r} appears twice")
            keys.add(ep["key"])
            for name, span in ep["members"].items():
                if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) and v >= 0 for v in span)):
                    fail(f"{f}.members[{name}]", f"expected [offset, size], got {span!r}")
                if span[0] + span[1] > sh["size"]:
                    fail(f"{f}.members[{name}]", f"member runs past the end of the shard ({sh['size']} bytes)")
            _validate_entry(ep, f, fail)
    return index


def _validate_entry(ep: dict, f: str, fail) -> None:
    """Values of one episode entry: frame counts, rates and motion windows within what its members
    can hold (a crafted ``[[0, 3e8]]`` window run would otherwise allocate gigabytes)."""
    key, T, fps = ep["key"], ep["num_frames"], ep["fps"]
    if isinstance(fps, bool) or not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        fail(f"{f}.fps", f"must be a positive frame rate (at most {MAX_FPS:g}), got {fps!r}")
    if isinstance(T, bool) or T < 1:
        fail(f"{f}.num_frames", f"must be a positive integer, got {T!r}")
    if not math.isfinite(ep["duration"]) or abs(ep["duration"] - T / fps) > 1e-6 * max(1.0, T / fps):
        fail(f"{f}.duration", f"{ep['duration']!r} s, but num_frames / fps = {T / fps:.6g} s")
    if any(h not in ("left", "right") for h in ep["hands"]) or len(set(ep["hands"])) != len(ep["hands"]):
        fail(f"{f}.hands", f"must list distinct 'left'/'right', got {ep['hands']!r}")
    arrays = ep["members"].get(f"{key}.arrays.safetensors")
    if arrays is not None and T * MIN_ARRAY_BYTES_PER_FRAME > arrays[1]:
        fail(f"{f}.num_frames", f"{T} frames cannot fit in the {arrays[1]}-byte arrays member")
    mo = ep.get("motion")
    if mo is None:
        return
    if not isinstance(mo, dict) or not isinstance(mo.get("member"), str) or mo["member"] not in ep["members"]:
        fail(f"{f}.motion.member", f"must name one of the episode's members, got {mo.get('member') if isinstance(mo, dict) else mo!r}")
    frames, windows = mo.get("frames"), mo.get("windows")
    if not isinstance(frames, dict) or not isinstance(windows, dict) or not set(windows) <= set(frames):
        fail(f"{f}.motion", "needs 'frames' and 'windows' objects per hand")
    size = ep["members"][mo["member"]][1]
    T15_max = int(math.floor((T - 1) * 15.0 / fps + 1e-9)) + 1
    total = 0
    for side, n in frames.items():
        if side not in ep["hands"] or isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= T15_max:
            fail(f"{f}.motion.frames.{side}", f"{n!r} 15 FPS frames for a {T}-frame episode at {fps:g} FPS "
                                               f"(at most {T15_max}, of a hand the episode has)")
        total += n
    if total * MIN_SIDECAR_BYTES_PER_FRAME > size:
        fail(f"{f}.motion.frames", f"{total} frames cannot fit in the {size}-byte motion member")
    for side, runs in windows.items():
        n_win = -(-frames[side] // 15)
        prev = 0
        if not isinstance(runs, list):
            fail(f"{f}.motion.windows.{side}", "must be a list of [start, stop) runs")
        for r in runs:
            if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
                    and prev <= r[0] < r[1] <= n_win):
                fail(f"{f}.motion.windows.{side}", f"run {r!r}: runs must be sorted integer [start, stop) within the "
                                                   f"{n_win} one-second windows of {frames[side]} frames")
            prev = r[1]


class ShardIndex:
    """A dataset folder opened through its index: ``len``, ``refs[i]``, ``read(i)``."""

    def __init__(self, root: str | Path, *, verify: str = "size"):
        """``verify``: ``"size"`` (default: every shard's size must match the index), ``"sha256"``
        (also hash every shard: slow, reads everything) or ``"none"``."""
        self.root = Path(root)
        p = self.root / INDEX_NAME
        if not self.root.is_dir():
            raise UserFileError(f"{self.root}: no such folder (no index); give a dataset folder built by `beingh0 data build`")
        if not p.is_file():
            raise UserFileError(f"{p}: no index; is {self.root} a dataset folder built by `beingh0 data build`?")
        try:
            raw = json.loads(p.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EpisodeFormatError(f"{p}: field 'index.json': not valid JSON ({e})") from None
        self.index = validate_index(raw, str(p))
        mp = self.root / MANIFEST_NAME
        try:
            self.manifest = json.loads(mp.read_text()) if mp.is_file() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EpisodeFormatError(f"{mp}: field 'manifest.json': not valid JSON ({e}); rebuild the dataset") from None
        if not isinstance(self.manifest, dict):
            raise EpisodeFormatError(f"{mp}: field 'manifest.json': top level must be an object; rebuild the dataset")
        if verify not in ("none", "size", "sha256"):
            raise ValueError(f"verify must be 'none', 'size' or 'sha256', got {verify!r}")
        self.refs: list[EpisodeRef] = []
        for i, sh in enumerate(self.index["shards"]):
            path = self.root / sh["file"]
            if verify != "none":
                if not path.is_file():
                    raise UserFileError(f"{path}: shard listed in the index is missing (incomplete copy? rebuild the dataset)")
                size = path.stat().st_size
                if size != sh["size"]:
                    raise EpisodeFormatError(f"{path}: field 'size': {size} bytes on disk, the index says {sh['size']} "
                                             "(truncated or replaced shard; rebuild it)")
                if verify == "sha256" and sha256_file(path) != sh["sha256"]:
                    raise EpisodeFormatError(f"{path}: field 'sha256': content differs from the index (corrupt shard)")
            self.refs.extend(EpisodeRef(path, ep) for ep in sh["episodes"])
        self._by_key = {r.key: i for i, r in enumerate(self.refs)}

    def __len__(self) -> int:
        return len(self.refs)

    def position(self, key: int | str) -> int:
        """Position of an episode given by key, by position (int) or by a position string (``"3"``)."""
        n = len(self.refs)
        if isinstance(key, str) and key not in self._by_key and key.lstrip("-").isdigit():
            key = int(key)
        if isinstance(key, (int,)) and not isinstance(key, bool):
            if not -n <= key < n:
                raise EpisodeLookupError(f"{self.root}: episode position {key} is out of range; the dataset has {n} "
                                         f"episodes (positions 0..{n - 1})")
            return key % n
        if key not in self._by_key:
            some = ", ".join(repr(r.key) for r in self.refs[:3])
            raise EpisodeLookupError(f"{self.root}: no episode {key!r}; give a position 0..{n - 1} or a key such as {some}")
        return self._by_key[key]

    def read(self, i: int | str) -> Episode:
        """Episode ``i`` (position, key or position string), read by seeking."""
        return read_episode(self.refs[self.position(i)])

    def header(self, i: int | str) -> dict:
        """The parsed, validated ``<key>.episode.json`` of episode ``i`` (text, camera, meta) without the arrays."""
        ref = self.refs[self.position(i)]
        m = read_members(ref.shard, ref.entry, ["episode.json"])
        return parse_header(next(iter(m.values())), f"{ref.shard}[{ref.key}]")


def load_index(root: str | Path, verify: str = "size") -> ShardIndex:
    return ShardIndex(root, verify=verify)
