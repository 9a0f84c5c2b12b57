"""Runs in other processes: kill -9 in the middle and resume; torchrun with 2 gloo ranks (DDP and
FSDP2) against one process with the same global batch. Each spawns Python (a few seconds)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from beingh0.train import fit
from beingh0.train.checkpoint import CHECKPOINT_DIR

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from train_toy import ToyLM, TokenStream, lm_loss, toy_config  # noqa: E402

TOY = str(HERE / "train_toy.py")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in json.loads((out / "history.json").read_text())["train"]]


def _reference(tmp_path, steps, batch, **kw):
    dropout, noise = kw.pop("dropout", 0.0), kw.pop("noise", False)
    torch.manual_seed(0)
    model = ToyLM(dropout=dropout)
    res = fit(model, lambda m, b: lm_loss(m, b, noise=noise), TokenStream(batch),
              toy_config(steps, **kw), tmp_path / "reference")
    return [r["loss"] for r in res.history["train"]]


@pytest.mark.slow
def test_kill_9_in_the_middle_then_resume_gives_the_same_loss_curve(tmp_path):
    steps = 24
    want = _reference(tmp_path, steps, 4, dropout=0.2, noise=True, ckpt_every=4)
    out = tmp_path / "killed"
    cmd = [sys.executable, TOY, "--out", str(out), "--steps", str(steps), "--batch", "4", "--dropout", "0.2",
           "--noise", "--ckpt-every", "4"]
    proc = subprocess.Popen(cmd + ["--sleep", "0.1"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:  # kill once the checkpoint of step 8 is sealed: mid-run, maybe mid-write of the next one
        deadline = time.monotonic() + 60
        while not (out / CHECKPOINT_DIR / "step-00000008").exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the training subprocess made no progress in 60 s"
            time.sleep(0.01)
        time.sleep(0.15)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "history.json").exists() and not (out / CHECKPOINT_DIR / f"step-{steps:08d}").exists()
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _losses(out) == want  # bit-exact: model, optimizer, scheduler, RNGs and data position restored


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_match_one_process_ddp_and_fsdp2(tmp_path):
    # global batch 8 = one process x 8, or 2 ranks x 2 samples x 2 accumulated micro-batches
    want = _reference(tmp_path, 12, 8, schedule="constant")  # constant: 8 steps, then resumed to 12
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", TOY,
           "--out", str(out), "--steps", "8", "--batch", "4", "--accumulate", "2", "--parallel", "ddp,fsdp",
           "--schedule", "constant"]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    def close(got):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert abs(a - b) <= 1e-6 * max(1.0, abs(b)), (mode, got, want)

    for mode in ("ddp", "fsdp"):
        close(_losses(out / mode)[:8] + want[8:])
        # rank 0 alone wrote: one checkpoint folder, no stray files of rank 1
        assert sorted(p.name for p in (out / mode / CHECKPOINT_DIR).iterdir()) == ["step-00000008"]
        # the 2-rank checkpoint (FSDP2 shards gathered) resumes in one plain process
        torch.manual_seed(1)
        with pytest.warns(UserWarning, match="2-rank checkpoint on 1 ranks"):
            res = fit(ToyLM(), lm_loss, TokenStream(4), toy_config(12, 2, parallel="none", schedule="constant"),
                      out / mode, resume=True)
        close([r["loss"] for r in res.history["train"]])
    shutil.rmtree(out)
