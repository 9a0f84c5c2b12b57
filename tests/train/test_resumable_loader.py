"""The trainer with the real data loader (beingh0.data.loader.ResumableLoader): stopping at an
epoch boundary and in the middle of an epoch, then resuming, gives the uninterrupted loss curve."""
import pytest
import torch
from torch import nn

from beingh0.benchmark.data import random_source
from beingh0.data.build import build_dataset
from beingh0.data.loader import ResumableLoader, ShardDataset
from beingh0.train import TrainConfig, fit


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_loader") / "ds"
    build_dataset(random_source(), None, root, {"episodes": 3, "seconds": 2.0, "fps": 15.0, "frames": "none"},
                  episodes_per_shard=3, progress=False)
    return root


def masked_mse(model, batch):
    """Denoise D51 windows: mean squared error over valid frames (targets = valid frames)."""
    x, m = batch["features"], batch["mask"]
    noisy = x + 0.1 * torch.randn_like(x)  # torch RNG: restored on resume too
    err = ((model(noisy) - x) ** 2).mean(-1)
    n = int(m.sum())
    return (err * m).sum() / n, {"targets": n, "tokens": int(m.numel())}


def run(root, out, steps, resume):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(51, 32), nn.GELU(), nn.Linear(32, 51))
    # its own generator: a DataLoader otherwise draws its base seed from the global torch RNG at every
    # pass, and a resumed run starts one extra (empty) pass at an epoch end
    loader = ResumableLoader(ShardDataset(root, feature="D51", seed=1), batch_size=5, shuffle="global",
                             generator=torch.Generator())
    cfg = TrainConfig(steps=steps, lr=3e-3, schedule="constant", device="cpu", progress=False, plots=False,
                      num_threads=1, peak_flops=1e9)
    return fit(model, masked_mse, loader, cfg, out, resume=resume)


def test_resume_through_epoch_ends_equals_the_uninterrupted_run(ds_root, tmp_path):
    n = len(ShardDataset(ds_root, feature="D51"))
    assert n % 5 != 0 and n > 10  # epochs end inside a batch: the last batch of an epoch is short
    full = run(ds_root, tmp_path / "full", 9, resume=False)
    for steps in (3, 5, 9):  # stops after a whole epoch and mid-epoch (batches of 5)
        part = run(ds_root, tmp_path / "cut", steps, resume="auto")
        assert part.step == steps
    assert [r["loss"] for r in part.history["train"]] == [r["loss"] for r in full.history["train"]]
    assert [r["targets"] for r in part.history["train"]] == [r["targets"] for r in full.history["train"]]
