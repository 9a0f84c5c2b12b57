"""Loading shards for training: a map-style dataset, an exact resumable sampler and a loader.

Why map-style + sampler (and not an IterableDataset): the DataLoader then returns samples in the
sampler's order whatever ``num_workers`` is (it hands out index batches round-robin and reorders
results), so the split across workers can neither duplicate nor lose a sample, and a position in
the sampler's sequence is a position in training, also after a restart with another number of
workers or ranks. Locality, the reason streaming loaders exist, comes from block shuffling plus a
per-worker episode cache:

* epoch order (:func:`epoch_order`) from ``(seed, epoch)`` only: ``"block"`` (default) permutes
  the episodes, cuts them into blocks of ``block_episodes`` and permutes the samples inside each
  block, so a worker reads each episode about once per epoch; ``"global"`` is a full permutation;
  ``"none"`` is index order.
* ranks: rank ``r`` of ``W`` takes global positions ``P + r, P + r + W, ...`` from the resume
  point ``P``; all ranks consume in lockstep, so a checkpoint's ``position`` is global and resuming
  with another ``W`` or worker count continues exactly (no sample twice, none lost). With
  ``drop_uneven=True`` the last ``(N - P) mod W`` samples of an epoch are dropped so that every
  rank gets the same number (what DDP needs); off by default because it loses samples.

Sample ids carry the epoch (``epoch * N + i``) so that per-sample randomness (the reference frame)
depends on (seed, epoch, sample) only, also in persistent workers.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..core.errors import UserValueError
from ..motion.features import FeatureSpec
from ..motion.windows import FPS, WINDOW_FRAMES
from .episode import SIDES, Episode, parse_header
from .integrity import check_header_entry, check_sidecar
from .samples import (SIDE_IDS, features_batch, hash_uniform, image_frame_index, load_sidecar, reference_index,
                      window_params, window_text)
from .shards import ShardIndex, read_members

STATE_VERSION = 1


def sample_table(index: ShardIndex, hands=None, sources=None) -> dict[str, np.ndarray]:
    """All (episode, hand, window) samples of a dataset, episode-major (from the index only)."""
    hands = tuple(SIDES if hands is None else hands)
    for h in hands:
        if h not in SIDES:
            raise UserValueError(f"hands must be a subset of {SIDES}, got {h!r}")
    ep, side, win = [], [], []
    for i, ref in enumerate(index.refs):
        e = ref.entry
        if sources is not None and e["source"] not in sources:
            continue
        wins = e.get("motion", {}).get("windows", {})
        for h in hands:
            for a, b in wins.get(h, ()):
                n = b - a
                ep.append(np.full(n, i, np.int64))
                side.append(np.full(n, SIDE_IDS[h], np.int8))
                win.append(np.arange(a, b, dtype=np.int64))
    cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)
    return {"episode": cat(ep, np.int64), "side": cat(side, np.int8), "window": cat(win, np.int64)}


class ShardDataset(torch.utils.data.Dataset):
    """Motion-only (``kind="motion"``) or image (``kind="image"``) samples of a dataset folder.

    Args:
        root: dataset folder (``index.json``, shards).
        kind: ``"motion"`` or ``"image"`` (adds the frame at the window start and the camera).
        feature: motion feature layout, ``"D162"`` (default) ... ``"D51"``.
        reference: ``"random"`` (reference frame drawn from the 10 s before the window, training)
            or ``"first"`` (the window start, evaluation/inference).
        transform: callable on each sample dict before the features are computed (the camera
            alignment of ``beingh0.align`` plugs in here); returns the (possibly new) dict.
        seed: seeds the reference draws (the sampler has its own seed; pass the same).
        hands / sources: restrict to these hands / sources.
        cache_episodes: episodes kept decoded per worker (LRU; block shuffling needs >= the block).
        data_root: folder of the original videos, for episodes with external frames.
    Index ``i`` may be ``epoch * len(self) + sample`` (what :class:`EpochSampler` yields).
    """

    def __init__(self, root: str | Path, *, kind: str = "motion", feature: str = "D162", reference: str = "random",
                 transform: Callable[[dict], dict] | None = None, seed: int = 0, hands=None, sources=None,
                 cache_episodes: int = 64, data_root: str | Path | None = None, verify: str = "size"):
        if kind not in ("motion", "image"):
            raise UserValueError(f"kind must be 'motion' or 'image', got {kind!r}")
        if reference not in ("random", "first"):
            raise UserValueError(f"reference must be 'random' or 'first', got {reference!r}")
        if cache_episodes < 1:
            raise UserValueError(f"cache_episodes must be >= 1, got {cache_episodes}")
        self.root, self.kind, self.spec, self.reference = Path(root), kind, FeatureSpec(feature), reference
        self.transform, self.seed, self.cache_size, self.data_root = transform, int(seed), cache_episodes, data_root
        self.index = ShardIndex(root, verify=verify)
        self.table = sample_table(self.index, hands, sources)
        if kind == "image":
            keep = np.array([self.index.refs[e].entry["has_frames"] for e in self.table["episode"]], bool)
            self.table = {k: v[keep] for k, v in self.table.items()}
        self._cache: OrderedDict = OrderedDict()
        self._files: dict = {}

    def __len__(self) -> int:
        return len(self.table["episode"])

    def fingerprint(self) -> str:
        """Identifies the sample table (a checkpoint's position is meaningless on another one)."""
        h = hashlib.sha256()
        for k in ("episode", "side", "window"):
            h.update(self.table[k].tobytes())
        h.update(json.dumps([r.key for r in self.index.refs]).encode())
        return h.hexdigest()[:16]

    def episode_starts(self) -> np.ndarray:
        """Sample ranges per run of equal episodes (the table is episode-major): (runs + 1,) offsets."""
        e = self.table["episode"]
        if not len(e):
            return np.zeros(1, np.int64)
        cut = np.flatnonzero(np.diff(e)) + 1
        return np.concatenate([[0], cut, [len(e)]]).astype(np.int64)

    def __getstate__(self):  # open files and caches stay in their process
        d = dict(self.__dict__)
        d["_cache"], d["_files"] = OrderedDict(), {}
        return d

    # ------------------------------------------------------------------------- episode cache
    def _episode(self, e: int) -> dict:
        hit = self._cache.get(e)
        if hit is not None:
            self._cache.move_to_end(e)
            return hit
        ref = self.index.refs[e]
        fh = self._files.get(ref.shard)
        if fh is None:
            if len(self._files) > 16:
                for f in self._files.values():
                    f.close()
                self._files.clear()
            fh = self._files[ref.shard] = open(ref.shard, "rb")
        where = f"{ref.shard}[{ref.key}]"
        # Everything read is checked (cheap, on arrays in memory): header and its agreement with the
        # index, sidecar finiteness and ranges (beingh0.data.integrity). Image samples also
        # validate the whole episode.
        if self.kind == "image":
            m = read_members(ref.shard, ref.entry, fh=fh)
            ep = Episode.from_members(m, where=where)
        else:
            ep = None
            m = read_members(ref.shard, ref.entry, ["episode.json", ref.entry["motion"]["member"]], fh=fh)
        header = parse_header(m[f"{ref.key}.episode.json"], where)
        check_header_entry(header, ref.entry, where)
        motion = load_sidecar(m[ref.entry["motion"]["member"]], where)
        check_sidecar(motion, where, ref.entry)
        d = {"ref": ref, "header": header, "motion": motion, "episode": ep}
        self._cache[e] = d
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return d

    # ------------------------------------------------------------------------- samples
    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, ids) -> list[dict]:
        N = len(self)
        if N == 0:
            raise IndexError("the dataset has no samples")
        ids = np.asarray(ids, np.int64)
        if (ids < 0).any():
            raise IndexError(f"negative sample index {int(ids.min())}")
        epochs, sids = ids // N, ids % N
        us = [hash_uniform(self.seed, int(ep), [sid])[0] for ep, sid in zip(epochs.tolist(), sids.tolist())] \
            if len(set(epochs.tolist())) > 1 else hash_uniform(self.seed, int(epochs[0]), sids)
        samples = []
        image_jobs: dict[int, list[int]] = {}
        for j, sid in enumerate(sids.tolist()):
            e, s_id, w = int(self.table["episode"][sid]), int(self.table["side"][sid]), int(self.table["window"][sid])
            side = SIDES[s_id]
            d = self._episode(e)
            hand = d["motion"][side]
            start = w * WINDOW_FRAMES
            ref_i = reference_index(hand["valid"], start, float(us[j]), self.reference)
            mano, mask = window_params(hand, start, ref_i)
            t0 = start / FPS
            text, caption = window_text(d["header"]["text"], side, t0, t0 + 1.0)
            entry = d["ref"].entry
            s = {"mano": mano, "mask": mask, "hand": side, "hand_id": s_id, "episode": entry["key"],
                 "source": entry["source"], "index": sid, "window_start": start, "t0": t0, "ref_index": ref_i,
                 "text": text, "caption": caption,
                 # per-sample randomness of transforms: a function of (seed, epoch, sample) only, so
                 # a resumed or re-sharded run augments every sample exactly as the original run
                 "rng_key": (int(self.seed) & 0xFFFFFFFF, int(epochs[j]), int(sid))}
            if self.kind == "image":
                ep: Episode = d["episode"]
                f = image_frame_index(start, ep.fps, ep.num_frames)
                cam = ep.camera
                dist = np.zeros(5)
                if cam.distortion is not None:
                    dist[: len(cam.distortion)] = cam.distortion
                s.update(image_frame=f, intrinsics=cam.intrinsics[f].copy(), width=cam.width, height=cam.height,
                         distortion=dist, distortion_model=cam.distortion_model or "")
                image_jobs.setdefault(e, []).append(j)
            samples.append(s)
        for e, js in image_jobs.items():  # one decode pass per episode and batch
            from .video import episode_frames

            ep = self._episode(e)["episode"]
            frames = sorted({samples[j]["image_frame"] for j in js})
            imgs = dict(zip(frames, episode_frames(ep, frames, root=self.data_root)))
            for j in js:
                samples[j]["image"] = imgs[samples[j]["image_frame"]]
        if self.transform is not None:
            samples = [self.transform(s) for s in samples]
        feats = features_batch([s["mano"] for s in samples], [s["mask"] for s in samples], self.spec)
        for s, f in zip(samples, feats):
            s["features"] = f
            s["mask"] = torch.from_numpy(np.asarray(s["mask"], bool))
        return samples


# ----------------------------------------------------------------------------------- order
def epoch_order(n: int, seed: int, epoch: int, shuffle: str = "block", episode_starts: np.ndarray | None = None,
                block_episodes: int = 32) -> np.ndarray:
    """The permutation of ``range(n)`` used in ``epoch`` (a function of its arguments only)."""
    if shuffle == "none":
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), 0x5EED])
    if shuffle == "global":
        return rng.permutation(n).astype(np.int64)
    if shuffle != "block":
        raise UserValueError(f"shuffle must be 'block', 'global' or 'none', got {shuffle!r}")
    if episode_starts is None:
        raise ValueError("block shuffling needs episode_starts (ShardDataset.episode_starts())")
    if block_episodes < 1:
        raise UserValueError(f"block_episodes must be >= 1, got {block_episodes}")
    runs = len(episode_starts) - 1
    parts = []
    perm = rng.permutation(runs)
    for b in range(0, runs, block_episodes):
        chosen = perm[b:b + block_episodes]
        ids = np.concatenate([np.arange(episode_starts[r], episode_starts[r + 1]) for r in chosen])
        parts.append(ids[rng.permutation(len(ids))])
    out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(out) != n:
        raise ValueError(f"episode_starts cover {len(out)} samples, the dataset has {n}")
    return out.astype(np.int64)


def _dist_rank_world(rank, world_size):
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            r, w = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            r, w = 0, 1
        rank = r if rank is None else rank
        world_size = w if world_size is None else world_size
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise UserValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
    return rank, world_size


class EpochSampler(Sampler[int]):
    """Deterministic, resumable, rank-splitting sampler over a :class:`ShardDataset`.

    Yields ``epoch * N + i``. ``start`` is the global position (samples consumed by all ranks
    together) in this epoch's order; use :class:`ResumableLoader` to track it.
    """

    def __init__(self, dataset: ShardDataset, *, seed: int = 0, shuffle: str = "block", block_episodes: int = 32,
                 rank: int | None = None, world_size: int | None = None, drop_uneven: bool = False):
        self.n = len(dataset)
        self.seed, self.shuffle, self.block_episodes, self.drop_uneven = int(seed), shuffle, block_episodes, drop_uneven
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        self._starts = dataset.episode_starts() if shuffle == "block" else None
        epoch_order(0, 0, 0, shuffle, np.zeros(1, np.int64), block_episodes)  # validate arguments now
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not (0 <= start <= self.n):
            raise UserValueError(f"start position {start} is outside the epoch of {self.n} samples")
        self.epoch, self.start = int(epoch), int(start)

    def rank_positions(self) -> np.ndarray:
        """Global positions this rank reads in the current epoch from ``start``."""
        rem = self.n - self.start
        stop = self.start + (rem - rem % self.world_size if self.drop_uneven else rem)
        return np.arange(self.start + self.rank, stop, self.world_size)

    def __len__(self) -> int:
        return len(self.rank_positions())

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(self.n, self.seed, self.epoch, self.shuffle, self._starts, self.block_episodes)
        base = self.epoch * self.n
        for p in self.rank_positions().tolist():
            yield base + int(order[p])


def collate(samples: list[dict]) -> dict:
    """``default_collate`` (stacks arrays/tensors, lists strings); images must share one size."""
    return torch.utils.data.default_collate(samples)


class ResumableLoader:
    """A DataLoader whose exact position is checkpointable.

    Iterating yields batches and counts the samples delivered to the caller; ``state_dict()`` is
    ``{"epoch", "position" (global, all ranks), "seed", "num_samples", "fingerprint", ...}``; a fresh
    loader (any ``num_workers``, any world size) given ``load_state_dict(state)`` continues with the
    next sample. An exhausted epoch advances ``epoch`` and resets ``position`` to 0.

    Iterating again **resumes**: each new ``iter(loader)`` starts at the current position, so after
    a ``break`` the next ``for batch in loader`` delivers the rest of the epoch (no sample twice,
    none lost), exactly as a fresh loader given ``state_dict()`` would; once the epoch is used up,
    a new iteration starts the next epoch. Use ``set_epoch(e)`` to restart an epoch from its
    beginning. One live iterator at a time: starting a new one abandons the previous one.
    """

    def __init__(self, dataset: ShardDataset, batch_size: int = 64, *, num_workers: int = 0, seed: int | None = None,
                 shuffle: str = "block", block_episodes: int = 32, rank: int | None = None,
                 world_size: int | None = None, drop_uneven: bool = False, epoch: int = 0, **loader_kwargs):
        if batch_size < 1:
            raise UserValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.sampler = EpochSampler(dataset, seed=dataset.seed if seed is None else seed, shuffle=shuffle,
                                    block_episodes=block_episodes, rank=rank, world_size=world_size, drop_uneven=drop_uneven)
        self.sampler.set_epoch(epoch)
        self.batch_size, self.num_workers, self.loader_kwargs = batch_size, num_workers, loader_kwargs
        self._consumed = 0  # samples this rank has delivered in the current epoch since `start`
        self._dl = None

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def position(self) -> int:
        """Global position: the sampler's start plus what all ranks consumed (lockstep); the end of
        the epoch once this rank has consumed all its samples (ranks agree there, uneven or not)."""
        s = self.sampler
        if self._consumed >= len(s):
            return s.n
        return s.start + self._consumed * s.world_size

    def state_dict(self) -> dict[str, Any]:
        s = self.sampler
        return {"version": STATE_VERSION, "epoch": s.epoch, "position": self.position(), "seed": s.seed,
                "shuffle": s.shuffle, "block_episodes": s.block_episodes, "num_samples": s.n,
                "world_size": s.world_size, "fingerprint": self.dataset.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.sampler
        if state.get("version") != STATE_VERSION:
            raise UserValueError(f"loader state version {state.get('version')!r}; this beingh0 writes {STATE_VERSION}")
        for k, mine in (("seed", s.seed), ("shuffle", s.shuffle), ("block_episodes", s.block_episodes),
                        ("num_samples", s.n), ("fingerprint", self.dataset.fingerprint())):
            if state.get(k) != mine:
                raise UserValueError(f"loader state has {k}={state.get(k)!r} but this loader has {mine!r}: the checkpoint "
                                 "was made on another dataset or sampler setting; resume with the same ones")
        s.set_epoch(state["epoch"], state["position"])
        self._consumed = 0

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        """Start over at global ``position`` of ``epoch`` (the counter restarts there)."""
        self.sampler.set_epoch(epoch, position)
        self._consumed = 0

    def __iter__(self) -> Iterator[dict]:
        # Resume from the current position: fold what was consumed into the sampler's start, so a
        # new iteration after a `break` neither repeats nor skips samples and the count stays true.
        self.sampler.set_epoch(self.sampler.epoch, self.position())
        self._consumed = 0
        if self.sampler.start >= self.sampler.n:  # this epoch is used up: the next one
            self.sampler.set_epoch(self.sampler.epoch + 1, 0)
        if self._dl is None:  # one DataLoader for the loader's life: persistent workers keep their caches
            kw = dict(self.loader_kwargs)
            kw.setdefault("collate_fn", collate)
            # the loader's own generator: a DataLoader otherwise draws its workers' base seed from the
            # global torch RNG at every iter(), so a resumed run would shift every later random draw
            kw.setdefault("generator", torch.Generator())
            if self.num_workers > 0:
                kw.setdefault("persistent_workers", True)
            self._dl = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                                  num_workers=self.num_workers, **kw)
        for batch in self._dl:
            self._consumed += len(batch["index"])
            yield batch
        self.sampler.set_epoch(self.sampler.epoch + 1, 0)
        self._consumed = 0
