"""In-memory robot demonstrations in the robot dataset's item format (LeRobot keys), for fast policy tests."""
from __future__ import annotations

import numpy as np
import pytest


class FakeRobot:
    """``episodes`` episodes of ``length`` frames: state (S,), action chunks (chunk, A) with padding at the end,
    one camera 'front' of 24x32 uint8 images, a task string."""

    def __init__(self, episodes=3, length=10, S=4, A=4, chunk=4, seed=0, tasks=("pick the cube", "open the lid")):
        rng = np.random.default_rng(seed)
        self.chunk, self.items = chunk, []
        self.states, self.actions = [], []
        for e in range(episodes):
            st = np.cumsum(rng.normal(scale=0.1, size=(length, S)), 0).astype(np.float32) + 2.0
            ac = (st[:, :A] * 3.0 + 50.0).astype(np.float32)
            imgs = rng.integers(0, 255, size=(length, 24, 32, 3), dtype=np.uint8)
            for t in range(length):
                idx = np.minimum(np.arange(t, t + chunk), length - 1)
                self.items.append({"observation.state": st[t], "observation.images.front": imgs[t], "action": ac[idx],
                                   "action_is_pad": np.arange(t, t + chunk) >= length, "task": tasks[e % len(tasks)],
                                   "episode_index": e, "frame_index": t, "timestamp": t / 10})
            self.states.append(st)
            self.actions.append(ac)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def state_table(self):
        return np.concatenate(self.states)

    def action_table(self):
        return np.concatenate(self.actions)

    def fingerprint(self):
        return f"fake:{len(self)}"


@pytest.fixture
def fake():
    return FakeRobot()


_VLA = []


def tiny_vla_copy():
    """A fresh copy of one tiny VLA per session (building one costs seconds on a busy CPU)."""
    import copy

    from beingh0.vla import VLA

    if not _VLA:
        _VLA.append(VLA.from_preset("tiny"))
    v = _VLA[0]
    return VLA(copy.deepcopy(v.model), copy.deepcopy(v.tokenizer), v.vocab, preset=v.preset, max_tiles=v.max_tiles,
               thumbnail=v.thumbnail)


def make_policy(source=None, **cfg):
    from beingh0.policy.config import PolicyConfig
    from beingh0.policy.data import item_episodes
    from beingh0.policy.model import BeingH0Policy, PolicySpec

    source = source or FakeRobot()
    config = PolicyConfig(**{"chunk": 4, "num_queries": 4, "n_action_steps": 3, **cfg})
    spec = PolicySpec.from_tables(source.state_table(), source.action_table(), ["front"], config,
                                  episodes=item_episodes(source))  # as posttrain's spec_from_robot
    return BeingH0Policy(tiny_vla_copy(), config, spec)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model runs fastest on one thread (and does not fight other processes for the cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def policy(fake):
    return make_policy(fake)
