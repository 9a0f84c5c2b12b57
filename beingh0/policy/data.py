"""Robot demonstrations -> policy training batches (through the policy's one prompt builder).

:class:`PolicyDataset` wraps a map-style robot dataset whose items follow LeRobot's keys
(``beingh0.data.robot.RobotDataset``: ``observation.state`` (S,), ``observation.images.<cam>`` uint8
(H, W, 3), ``action`` (chunk, A), ``action_is_pad`` (chunk,), ``task``, ``episode_index``,
``frame_index``) and a subset of its items (an episode split). It is a valid dataset for
:class:`beingh0.data.loader.ResumableLoader` (``fingerprint``, ``episode_starts``, ids ``epoch * N + i``).
With the builder's ``state_history`` H > 1 an item's ``observation.state`` is the (H, S) history of
its episode (oldest first), taken from the source's ``state_table()`` (rows in frame order).
States and actions stay in the dataset's units: the policy normalises them in its forward (the same
:class:`~.normalize.Normalizer` as at inference).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.errors import UserValueError
from .prompt import PromptBuilder

if TYPE_CHECKING:
    from .model import PolicySpec

__all__ = ["PolicyCollator", "PolicyDataset", "item_episodes", "spec_from_robot", "split_episodes", "subset_episodes"]


def item_episodes(source) -> np.ndarray:
    """Episode index of every item of ``source`` (without decoding images where the dataset allows)."""
    for name in ("item_episodes", "episode_of_items"):
        fn = getattr(source, name, None)
        if fn is not None:
            return np.asarray(fn() if callable(fn) else fn, dtype=np.int64)
    starts = getattr(source, "episode_starts", None)
    if callable(starts):  # RobotDataset: (episodes + 1,) offsets
        st = np.asarray(starts(), dtype=np.int64)
        if len(st) >= 2 and st[0] == 0 and st[-1] == len(source):
            return np.repeat(np.arange(len(st) - 1), np.diff(st))
    idx = getattr(source, "index", None)
    if isinstance(idx, dict) and "episode_index" in idx:
        return np.asarray(idx["episode_index"], dtype=np.int64)
    return np.asarray([int(source[i]["episode_index"]) for i in range(len(source))], dtype=np.int64)


def split_episodes(episodes: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(train item ids, held-out item ids, train episodes, held-out episodes): the last
    ``ceil(val_fraction * E)`` episodes (in index order) are held out; with one episode, none is."""
    eps = sorted(set(episodes.tolist()))
    n_val = 0 if len(eps) < 2 or val_fraction <= 0 else min(len(eps) - 1, max(1, math.ceil(val_fraction * len(eps))))
    val_eps = eps[len(eps) - n_val:]
    train_eps = eps[: len(eps) - n_val]
    is_val = np.isin(episodes, val_eps)
    return np.where(~is_val)[0], np.where(is_val)[0], train_eps, val_eps


def subset_episodes(ids: np.ndarray, episodes: np.ndarray, fraction: float) -> tuple[np.ndarray, list]:
    """The items of the first ``round(fraction * E)`` (at least 1) episodes among ``ids`` (the data-efficiency study)."""
    if not 0 < fraction <= 1:
        raise UserValueError(f"data fraction must be in (0, 1], got {fraction}")
    eps = sorted(set(episodes[ids].tolist()))
    keep = eps[: max(1, round(fraction * len(eps)))]
    return ids[np.isin(episodes[ids], keep)], keep


class PolicyDataset(torch.utils.data.Dataset):
    """Items ``{"input_ids", "pixel_values", "observation.state", "action", "action_is_pad", "index"}``."""

    def __init__(self, source, builder: PromptBuilder, ids: Sequence[int] | None = None, *,
                 episodes: np.ndarray | None = None, instruction: str = "perform the task", seed: int = 0):
        self.source, self.builder, self.instruction, self.seed = source, builder, instruction, seed
        self.ids = np.arange(len(source)) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            raise UserValueError("the policy dataset has no items (no episodes selected, or episodes shorter than one step)")
        all_eps = item_episodes(source) if episodes is None else np.asarray(episodes)
        self.episodes = all_eps[self.ids]
        H = int(getattr(builder, "state_history", 1))
        self._history = None
        if H > 1:  # rows of each item's last H frames in the source (frame order within episodes)
            from .model import history_index

            self._history = history_index(len(all_eps), all_eps, H)
            tab = getattr(source, "state_table", None)
            tab = tab() if callable(tab) else None
            self._states = tab if tab is not None and len(tab) == len(all_eps) else None

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        src = getattr(self.source, "fingerprint", None)
        base = src() if callable(src) else f"{type(self.source).__name__}:{len(self.source)}"
        h = hashlib.sha1(f"{base}|{self.ids.tobytes().hex()}".encode()).hexdigest()[:16]
        return f"policy:{h}"

    def episode_starts(self) -> np.ndarray:
        """(runs + 1,) offsets of the runs of equal episodes (block shuffling keeps an episode's items together)."""
        change = np.flatnonzero(np.diff(self.episodes)) + 1
        return np.concatenate([[0], change, [len(self.episodes)]]).astype(np.int64)

    def item(self, i: int) -> dict:
        """The robot dataset's raw item ``i`` of this subset; with the builder's ``state_history`` H > 1 its
        ``observation.state`` is the (H, S) history, oldest first (LeRobot's ``n_obs_steps`` layout;
        the episode's first state repeats before its start)."""
        j = int(self.ids[i])
        it = self.source[j]
        if self._history is not None:
            rows = self._history[j]
            hist = (self._states[rows] if self._states is not None
                    else np.stack([np.asarray(self.source[int(r)]["observation.state"]) for r in rows]))
            it = dict(it)
            it["observation.state"] = np.asarray(hist, dtype=np.float32)
        return it

    def encode(self, it: dict) -> dict:
        enc = self.builder.encode(it, it.get("task") or self.instruction)
        out = {"input_ids": enc["input_ids"], "pixel_values": enc["pixel_values"],
               "observation.state": torch.as_tensor(np.asarray(it["observation.state"], dtype=np.float32)),
               "action": torch.as_tensor(np.asarray(it["action"], dtype=np.float32))}
        pad = it.get("action_is_pad")
        out["action_is_pad"] = (torch.zeros(out["action"].shape[0], dtype=torch.bool) if pad is None
                                else torch.as_tensor(np.asarray(pad), dtype=torch.bool))
        return out

    def __getitem__(self, i: int) -> dict:
        out = self.encode(self.item(int(i) % len(self)))
        out["index"] = int(i)
        return out


class PolicyCollator:
    """Items -> batch: the prompt builder's left-padded ids and tiles, stacked states/actions, ``index``."""

    def __init__(self, builder: PromptBuilder):
        self.builder = builder

    def __call__(self, items: Sequence[dict]) -> dict:
        out = self.builder.collate(items)
        for k in ("observation.state", "action", "action_is_pad"):
            out[k] = torch.stack([it[k] for it in items])
        out["index"] = torch.tensor([int(it.get("index", 0)) for it in items], dtype=torch.long)
        return out


def spec_from_robot(source, ids: np.ndarray, config) -> PolicySpec:
    """The policy spec of a ``RobotDataset``: names, cameras (short names), intrinsics of the cameras
    that record them in every episode (the constant ones, else the first episode's, with the image
    size), fps, and normalisation statistics from the rows ``ids`` (the training items only)."""
    from .model import PolicySpec

    meta = source.meta
    cams, intr = [], {}
    n_eps = len(source.episode_starts()) - 1
    for key in meta.cameras:
        cam = key.removeprefix("observation.images.")
        cams.append(cam)
        ks = [source.episode_intrinsics(k, key) for k in range(n_eps)]
        if ks and all(k is not None for k in ks):
            k4 = meta.intrinsics.get(key) if meta.intrinsics.get(key) is not None else ks[0]
            w, h = meta.image_sizes[key]
            intr[cam] = [float(x) for x in np.asarray(k4).reshape(-1)[:4]] + [int(w), int(h)]
    st, ac = source.state_table(), source.action_table()
    eps = item_episodes(source)
    if len(st) == len(source):
        st, ac, eps = st[ids], ac[ids], eps[ids]
    return PolicySpec.from_tables(st, ac, cams, config, state_names=list(meta.state_names),
                                  action_names=list(meta.action_names), intrinsics=intr, fps=float(meta.fps), episodes=eps)
