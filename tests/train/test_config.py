"""TrainConfig validation, the learning-rate schedule and the AdamW parameter groups."""

import pytest
import torch
from torch import nn

from beingh0.core.errors import UserValueError
from beingh0.train import TrainConfig, lr_factor, param_groups
from beingh0.train.distributed import resolve_device
from beingh0.train.optim import make_optimizer, make_scheduler


def test_config_collects_every_problem_and_rejects_unknown_keys():
    with pytest.raises(UserValueError) as e:
        TrainConfig(steps=0, lr=-1, precision="fp16", betas=(0.9, 1.5))
    msg = str(e.value)
    assert all(k in msg for k in ("steps=0", "lr=-1", "precision='fp16'", "betas=")) and "\n" not in msg
    with pytest.raises(UserValueError, match="unknown keys \\['stepz'\\]"):
        TrainConfig.from_dict({"stepz": 3})
    c = TrainConfig(steps=7, betas=[0.8, 0.9])
    assert TrainConfig.from_dict(c.to_dict()) == c and c.betas == (0.8, 0.9)


def test_resume_mismatch_allows_only_run_length_and_logging_changes():
    a = TrainConfig(steps=10, lr=1e-3)
    assert a.resume_mismatch(TrainConfig(steps=99, lr=1e-3, max_seconds=5, progress=False)) == []
    assert a.resume_mismatch(TrainConfig(steps=10, lr=2e-3, accumulate=2)) == ["accumulate", "lr"]


def test_lr_schedule_warmup_then_cosine_to_min():
    c = TrainConfig(steps=110, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert [lr_factor(s, c) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert lr_factor(10, c) == 1.0
    assert lr_factor(60, c) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert lr_factor(110, c) == pytest.approx(0.1) and lr_factor(500, c) == pytest.approx(0.1)
    assert lr_factor(50, TrainConfig(steps=110, schedule="constant")) == 1.0
    # the scheduler applies it to the optimizer: lr of step s is lr * factor(s)
    m = nn.Linear(2, 2)
    opt = make_optimizer(m, c)
    sch = make_scheduler(opt, c)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step(), sch.step()
    assert seen == pytest.approx([lr_factor(s, c) for s in range(12)])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.lin = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.emb.weight  # tied: an embedding, so no decay, counted once
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_param_groups_decay_only_matrices():
    m = Net()
    decay, no_decay = param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}
    assert ids(decay["params"]) == {id(m.lin.weight)}
    assert ids(no_decay["params"]) == {id(m.emb.weight), id(m.lin.bias), id(m.norm.weight), id(m.norm.bias)}
    opt = make_optimizer(m, TrainConfig(weight_decay=0.1, betas=(0.9, 0.95)))
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)
    # decay acts on the matrix only: zero gradients, one step
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"lin.weight"}


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserValueError, match="no CUDA"):
            resolve_device("cuda")


def test_measured_peak_times_at_least_one_call_even_when_the_budget_is_spent():
    from beingh0.train.metrics import _MEASURED, measure_peak_flops

    _MEASURED.pop(("cpu", torch.float32, 8), None)
    assert measure_peak_flops(torch.device("cpu"), n=8, seconds=0.0) > 0   # was 0.0: the loop never ran
