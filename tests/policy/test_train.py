"""Post-training through beingh0.train.fit: exact resume, the loss goes down, the open-loop evaluation."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from beingh0.policy.data import PolicyDataset
from beingh0.policy.evaluate import evaluate_open_loop, format_eval, plot_trajectories
from beingh0.policy.train import POSTTRAIN_TRAIN, train_policy

from .conftest import FakeRobot, make_policy

CFG = replace(POSTTRAIN_TRAIN, steps=4, warmup_steps=0, schedule="constant", ckpt_every=2, eval_every=None, progress=False, plots=False,
              device="cpu", num_threads=1)


def _run(out, steps, fake):
    pol = make_policy(fake)
    ds = PolicyDataset(fake, pol.builder)
    res = train_policy(pol, ds, None, replace(CFG, steps=steps), out, batch_size=4, eval_items=4)
    return pol, res


def test_resume_is_exact(tmp_path):
    fake = FakeRobot(episodes=2, length=6)
    full, r1 = _run(tmp_path / "a", 4, fake)
    _run(tmp_path / "b", 2, fake)
    resumed, r2 = _run(tmp_path / "b", 4, fake)  # same command, longer: continues from step 2
    assert r2.step == 4 and len(r2.history["train"]) == 4
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in r1.history["train"]] == [h["loss"] for h in r2.history["train"]]


def test_open_loop_eval_and_baseline(tmp_path):
    fake = FakeRobot(episodes=2, length=6)
    pol = make_policy(fake)
    ds = PolicyDataset(fake, pol.builder)
    r = evaluate_open_loop(pol, ds, stride=2, batch_size=4)
    assert r["items"] == 6 and r["episodes"] == [0, 1] and len(r["l1"]) == 4
    # reference for the baseline: |state - recorded action| over valid chunk steps, per dimension
    err, n = np.zeros(4), 0
    for i in range(0, 12, 2):
        it = fake[i]
        v = ~np.asarray(it["action_is_pad"])
        err += np.abs(np.asarray(it["action"], np.float64)[v] - np.asarray(it["observation.state"], np.float64)).sum(0)
        n += v.sum()
    np.testing.assert_allclose(r["baseline"], err / n, rtol=1e-6)
    assert "repeat state" in format_eval(r, "test")
    plot_trajectories(r, tmp_path / "t.png", 1)
    assert (tmp_path / "t.png").stat().st_size > 1000
