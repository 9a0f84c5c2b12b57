"""The VLA pretraining dataset: instruction samples of dataset folders, built into token sequences.

Items are the instruction samples (:func:`beingh0.data.instructions.instruction_samples`: the three
task types, from each episode's header text) of every episode of every folder, kept when every
second of motion they mention has motion ids (``beingh0 data tokenize``: one id block per usable
1-second window and hand, :class:`beingh0.data.tokenize.MotionIds`; second ``s`` of a sample
starting at ``t0`` is window ``t0 + s`` of the episode). A sample becomes a sequence by
:meth:`beingh0.vla.VLAProcessor.build`; labels sit on its targets only.

Images: an episode with frames gives the frame at the sample's ``image_time`` (decoded from the
episode's video or JPEGs), aligned to Being-H0's virtual camera (``align=True``: the affine
``K_tgt K_src^-1`` of :func:`beingh0.align.geometry.frame_from_src_matrix` onto the 1920x1080 frame,
folded into each tile's ``warp_align`` pass) and tiled. Motion-only episodes (no frames) give
their samples without an image: text -> motion, motion -> text and contextual prediction from
motion history. ``text_only`` is the fraction of samples of episodes with frames that drop the
image as well (the paper's text -> motion translation); the draw is a function of (seed, epoch,
item) only.

The dataset is map-style with the interface :class:`beingh0.data.loader.ResumableLoader` needs
(``seed``, ``fingerprint()``, ``episode_starts()``, index ``epoch * N + i``), so a run resumes at
the exact next sample on any number of workers or ranks. Nothing here runs the motion tokenizer.
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

from ..core.config import validate_config
from ..core.errors import UserValueError
from ..data.instructions import TASKS, InstructionOptions, MotionRef, instruction_samples, motion_blocks, parse_placeholders
from ..data.samples import hash_uniform
from ..data.shards import ShardIndex, read_episode
from ..data.tokenize import MotionIds
from ..train.packing import pack_sequences
from .processor import IGNORE_INDEX, VLAProcessor, without_image

__all__ = ["DataConfig", "PretrainDataset", "PretrainCollator", "target_counts"]


@dataclass(frozen=True)
class DataConfig:
    """Which samples the pretraining dataset builds and how they are batched."""

    tasks: tuple[str, ...] = field(default=TASKS, metadata={"choices": TASKS})
    """Task types to train on (generation, translation, prediction)."""
    motion_seconds: int = field(default=4, metadata={"ge": 1})
    """Longest motion of one sample in seconds (UniHand chunks are at most 10 s)."""
    images: bool = True
    """Use the episodes' frames (the scene image at the sample's image time); off: every sample without image."""
    align: bool = True
    """Align every image to Being-H0's virtual camera (736.6 px focal, 1920x1080) before tiling."""
    text_only: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})
    """Fraction of samples of episodes with frames that drop the image too (text -> motion)."""
    max_tokens: int | None = field(default=None, metadata={"ge": 16})
    """Leave out samples longer than this many tokens (None: keep all)."""
    pack: bool = False
    """Pack the micro-batch's samples into rows of ``seq_len`` tokens (block-diagonal attention) instead of padding."""
    seq_len: int = field(default=2048, metadata={"ge": 16})
    """Row length when packing."""

    def __post_init__(self):
        validate_config(self)
        if not self.tasks:
            raise UserValueError("tasks must name at least one task type")


def _item_key(folder: int, s: dict) -> str:
    return f"{folder}|{s['episode']}|{s['task']}|{s['hand']}|{s['t0']}|{s['duration']}|{s['template']}"


def _motion_refs(s: dict) -> list[MotionRef]:
    return [r for r in parse_placeholders(s["prompt"]) + parse_placeholders(s["response"]) if isinstance(r, MotionRef)]


class PretrainDataset(torch.utils.data.Dataset):
    """Instruction samples of dataset folders as VLA training sequences (see the module docstring).

    Args:
        folders: dataset folders, each tokenized with the same motion tokenizer.
        processor: the VLA's :class:`VLAProcessor` (its motion vocabulary must have the tokenizer's layout).
        config: :class:`DataConfig`.
        fingerprint: the motion tokenizer's fingerprint (or the tokenizer) when a folder holds the
            ids of several tokenizers.
        seed: seeds the template choice and the per-epoch image drops.
        cache_episodes: decoded episodes (frames) kept per worker.
    """

    def __init__(self, folders, processor: VLAProcessor, config: DataConfig = DataConfig(), *,
                 fingerprint=None, seed: int = 0, cache_episodes: int = 8, data_root=None):
        folders = [Path(f) for f in ([folders] if isinstance(folders, (str, Path)) else folders)]
        if not folders:
            raise UserValueError("no dataset folders given")
        self.folders, self.proc, self.cfg, self.seed = folders, processor, config, int(seed)
        self.cache_size, self.data_root = cache_episodes, data_root
        tb = processor.vocab.layout.tokens_per_block
        self.indexes, self.ids = [], []
        opts = InstructionOptions(max_seconds=config.motion_seconds)
        items: list[dict] = []
        for k, f in enumerate(folders):
            idx = ShardIndex(f)
            ids = MotionIds(f, fingerprint)
            if ids.tokens_per_block != tb or ids.vocab_size != processor.vocab.num_motion:
                raise UserValueError(f"{f}: its motion ids have {ids.tokens_per_block} tokens per block and "
                                     f"{ids.vocab_size} ids, the VLA's motion vocabulary {tb} and "
                                     f"{processor.vocab.num_motion}; build the VLA with the tokenizer's layout")
            self.indexes.append(idx)
            self.ids.append(ids)
            for e, ref in enumerate(idx.refs):
                ent = ref.entry
                view = {"key": ent["key"], "source": ent["source"], "hands": ent["hands"], "duration": ent["duration"],
                        "text": idx.header(e)["text"]}
                have = {h: ids.get(ent["key"], h) for h in ent["hands"]}
                for s in instruction_samples(view, self.seed, opts):
                    if s["task"] not in config.tasks or not self._has_motion(s, have):
                        continue
                    items.append({"folder": k, "episode": e, "sample": s, "frames": bool(ent["has_frames"])})
        self.items = items
        self._cache: OrderedDict = OrderedDict()
        if config.max_tokens is not None:
            self.items = [self.items[i] for i in range(len(self.items)) if self.length(i) <= config.max_tokens]
        if not self.items:
            raise UserValueError(f"no instruction sample with motion ids in {', '.join(map(str, folders))} (tasks "
                                 f"{config.tasks}, motion_seconds {config.motion_seconds}); check `beingh0 data stats`")

    @staticmethod
    def _has_motion(s: dict, have: dict) -> bool:
        t0 = int(round(s["t0"]))
        for ref in _motion_refs(s):
            for sec, hand in motion_blocks(ref):
                a = have.get(hand)
                if a is None or t0 + sec >= a.shape[0] or bool((a[t0 + sec] < 0).any()):
                    return False
        return True

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_cache"] = OrderedDict()
        return d

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([_item_key(it["folder"], it["sample"]) for it in self.items]).encode())
        h.update(json.dumps([i.fingerprint for i in self.ids]).encode())
        return h.hexdigest()[:16]

    def episode_starts(self) -> np.ndarray:
        """Item ranges per run of equal (folder, episode): items are episode-major."""
        keys = np.array([it["folder"] * 10**9 + it["episode"] for it in self.items], np.int64)
        cut = np.flatnonzero(np.diff(keys)) + 1 if len(keys) else np.zeros(0, np.int64)
        return np.concatenate([[0], cut, [len(keys)]]).astype(np.int64)

    # -------------------------------------------------------------------------------- items
    def motion(self, it: dict) -> dict[str, torch.Tensor]:
        """``{hand: (seconds, tokens_per_block)}`` motion ids of an item, second 0 at its t0."""
        s = it["sample"]
        t0 = int(round(s["t0"]))
        ent = self.indexes[it["folder"]].refs[it["episode"]].entry
        hands = {h for r in _motion_refs(s) for _, h in motion_blocks(r)}
        return {h: self.ids[it["folder"]].get(ent["key"], h)[t0:t0 + s["duration"]] for h in sorted(hands)}

    def _episode(self, folder: int, e: int):
        key = (folder, e)
        ep = self._cache.get(key)
        if ep is None:
            ep = read_episode(self.indexes[folder].refs[e])
            self._cache[key] = ep
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return ep

    def image(self, it: dict):
        """(image uint8 (H, W, 3), pre (3, 3) or None, canvas (w, h) or None) of an item with frames."""
        from ..data.video import episode_frames

        ep = self._episode(it["folder"], it["episode"])
        f = int(min(ep.num_frames - 1, max(0, round(it["sample"]["image_time"] * ep.fps))))
        img = episode_frames(ep, [f], root=self.data_root)[0]
        if not self.cfg.align:
            return img, None, None
        from ..align.camera import OFFICIAL_TARGET, Intrinsics
        from ..align.geometry import frame_from_src_matrix

        fx, fy, cx, cy = (float(v) for v in ep.camera.intrinsics[f])
        src = Intrinsics(fx, fy, cx, cy, int(img.shape[1]), int(img.shape[0]))
        tgt = OFFICIAL_TARGET.frame
        return img, frame_from_src_matrix(src, tgt), (tgt.width, tgt.height)

    def uses_image(self, i: int, epoch: int = 0) -> bool:
        it = self.items[i]
        if not (self.cfg.images and it["frames"]):
            return False
        return not (self.cfg.text_only > 0 and hash_uniform(self.seed, epoch, [i])[0] < self.cfg.text_only)

    def build(self, i: int, epoch: int = 0, *, image: bool | None = None) -> dict:
        """The processor's sequence of item ``i`` (``image=False`` forces the image-less form)."""
        it = self.items[i]
        s = it["sample"]
        use = self.uses_image(i, epoch) if image is None else (image and self.cfg.images and it["frames"])
        motion = self.motion(it)
        if use:
            img, pre, canvas = self.image(it)
            out = self.proc.build(s, image=img, motion=motion, pre=pre, canvas_wh=canvas)
        else:
            out = self.proc.build(without_image(s), motion=motion)
        out["index"] = i
        return out

    def length(self, i: int) -> int:
        """Tokens of item ``i``'s sequence, at most (image tokens counted for the most tiles)."""
        n = int(self.build(i, image=False)["input_ids"].numel())
        if self.cfg.images and self.items[i]["frames"]:
            n += 2 + self.proc.tokens_per_tile * (self.proc.max_tiles + int(self.proc.thumbnail))
        return n

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, ids) -> list[dict]:
        N = len(self)
        return [self.build(int(i) % N, int(i) // N) for i in ids]


def target_counts(dataset: PretrainDataset, vocab_size: int, limit: int | None = None) -> torch.Tensor:
    """(vocab_size,) counts of every target token over the dataset's items (the first ``limit``;
    image-free builds: the targets do not depend on the image). Its entropy is the unigram baseline
    of the loss."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for i in range(len(dataset) if limit is None else min(limit, len(dataset))):
        lab = dataset.build(i, image=False)["labels"]
        t = lab[lab != IGNORE_INDEX]
        counts += torch.bincount(t, minlength=vocab_size).double()[:vocab_size]
    return counts


@dataclass
class PretrainCollator:
    """Items -> one micro-batch: padded (``input_ids``, ``attention_mask`` 2-D, ``labels``), or with
    ``pack`` rows of ``seq_len`` (``attention_mask`` the block-diagonal causal 4-D mask, ``position_ids``
    restarting per sample, ``sample_index``); ``pixel_values`` of all images in token order; ``index``
    (the items' indices, which the loader counts)."""

    processor: VLAProcessor
    pack: bool = False
    seq_len: int = 2048

    def __call__(self, items: Sequence[dict]) -> dict:
        index = torch.tensor([int(it["index"]) for it in items], dtype=torch.long)
        if not self.pack:
            out = self.processor.collate(items)
            out["index"] = index
            return out
        pb = pack_sequences([{"input_ids": it["input_ids"], "labels": it["labels"]} for it in items], self.seq_len,
                            self.processor.pad_token_id)
        order: list[int] = []  # samples in the order their tokens appear (rows, then positions)
        for row in pb.sample_index.tolist():
            for s in row:
                if s >= 0 and (not order or order[-1] != s) and s not in order:
                    order.append(s)
        pix = [items[s]["pixel_values"] for s in order if items[s].get("pixel_values") is not None]
        return {"input_ids": pb.input_ids, "labels": pb.labels, "attention_mask": pb.attention_mask_4d(),
                "position_ids": pb.position_ids, "sample_index": pb.sample_index,
                "pixel_values": torch.cat(pix) if pix else None, "index": index}
