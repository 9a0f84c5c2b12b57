"""The training loop in one process: accumulation, clipping, bf16, checkpointing hook, budgets,
exact resume, checkpoint files and logs (tiny transformer from train_toy.py)."""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from beingh0.core.errors import UserFileError, UserValueError
from beingh0.train import fit, latest_checkpoint, read_meta
from beingh0.train.checkpoint import CHECKPOINT_DIR
from beingh0.train.metrics import measure_peak_flops

sys.path.insert(0, str(Path(__file__).parent))
from train_toy import ToyLM, TokenStream, lm_loss, toy_config  # noqa: E402


def toy(dropout=0.0, dtype=torch.float32):
    torch.manual_seed(0)
    return ToyLM(dropout=dropout).to(dtype)


def losses(res):
    return [r["loss"] for r in res.history["train"]]


def test_accumulated_micro_batches_give_the_one_big_batch_update(tmp_path):
    # micro-batches of 2 padded samples carry different numbers of labelled tokens: the update
    # must still be that of one batch of 8 (sum of token losses / all tokens), in float64
    big, small = toy(dtype=torch.float64), toy(dtype=torch.float64)
    r1 = fit(big, lm_loss, TokenStream(8), toy_config(6), tmp_path / "a")
    r4 = fit(small, lm_loss, TokenStream(2), toy_config(6, accumulate=4), tmp_path / "b")
    assert losses(r4) == pytest.approx(losses(r1), rel=1e-12, abs=0)
    assert [r["targets"] for r in r4.history["train"]] == [r["targets"] for r in r1.history["train"]]
    for p, q in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-10)  # Adam amplifies 1e-16 rounding a little
    # plain "divide by accumulate" would differ: the token counts are unequal
    assert len({r["targets"] for r in r1.history["train"]}) > 1


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping(tmp_path, clip):
    m = toy(dtype=torch.float64)
    res = fit(m, lm_loss, TokenStream(4), toy_config(1, grad_clip=clip), tmp_path)
    raw = res.history["train"][0]["grad_norm"]
    after = torch.sqrt(sum((p.grad ** 2).sum() for p in m.parameters())).item()  # grads of the last step
    assert raw > 1e-2
    assert after == pytest.approx(raw if clip is None else clip * raw / (raw + 1e-6), rel=1e-9)  # torch adds 1e-6


def test_bf16_autocast_on_cpu_keeps_float32_master_weights(tmp_path):
    dtypes = []

    def loss_fn(model, batch):
        dtypes.append(model(batch["ids"]).dtype)
        return lm_loss(model, batch)

    m = toy()
    res = fit(m, loss_fn, TokenStream(4), toy_config(3, precision="bf16"), tmp_path)
    assert dtypes == [torch.bfloat16] * 3
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert res.history["train"][-1]["loss"] < res.history["train"][0]["loss"]


def test_gradient_checkpointing_is_enabled_and_changes_nothing(tmp_path):
    plain, ckpt = toy(dtype=torch.float64), toy(dtype=torch.float64)
    r0 = fit(plain, lm_loss, TokenStream(4), toy_config(3), tmp_path / "a")
    r1 = fit(ckpt, lm_loss, TokenStream(4), toy_config(3, gradient_checkpointing=True), tmp_path / "b")
    assert ckpt.checkpointing and not plain.checkpointing
    assert losses(r1) == pytest.approx(losses(r0), rel=1e-12)
    with pytest.raises(UserValueError, match="gradient_checkpointing_enable"):
        fit(torch.nn.Linear(2, 2), lm_loss, TokenStream(4), toy_config(1, gradient_checkpointing=True), tmp_path / "c")


def test_logs_history_plot_progress_bar_tokens_and_mfu(tmp_path, capsys):
    res = fit(toy(), lm_loss, TokenStream(4), toy_config(4, plots=True, progress=True, peak_flops=2e9), tmp_path)
    rec = res.history["train"][-1]
    assert {"loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu", "acc", "step_s"} <= set(rec)
    n = sum(p.numel() for p in toy().parameters())
    assert rec["tokens"] == 4 * 12 and rec["tokens_per_s"] == pytest.approx(48 / rec["step_s"])
    assert rec["mfu"] == pytest.approx(6 * n * rec["tokens_per_s"] / 2e9)
    assert json.loads((tmp_path / "history.json").read_text()) == res.history
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert "4/4" in capsys.readouterr().err  # tqdm on rank 0
    assert measure_peak_flops(torch.device("cpu"), n=64, seconds=0.02) > 1e6


def test_evaluate_meta_and_extra_checkpoint_files(tmp_path):
    calls = []

    def evaluate(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"val": torch.tensor(1.5), "usage": [1, 2]}

    def add_file(folder):
        (folder / "model_config.json").write_text("{}")

    fit(toy(), lm_loss, TokenStream(4), toy_config(5, eval_every=2), tmp_path, evaluate=evaluate,
        meta={"arch": "toy"}, on_checkpoint=add_file)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["eval"] == [{"step": s, "val": 1.5, "usage": [1, 2]} for s in (2, 4, 5)]
    assert calls == [(False, False)] * 3  # eval mode, no grad
    ck = latest_checkpoint(tmp_path)
    meta = read_meta(ck)
    assert meta["meta"] == {"arch": "toy"} and meta["step"] == 5 and "model_config.json" in meta["files"]


def test_after_step_hook_updates_buffers_once_per_step_and_they_resume(tmp_path):
    # after_step(model, step): once per optimizer step (not per micro-batch), after the update,
    # under no_grad, on the unwrapped model, before evaluation and checkpoint; its buffer changes
    # are checkpointed, so a resumed run continues them exactly
    seen = []

    def after_step(model, step):
        seen.append((step, torch.is_grad_enabled(), type(model).__name__, model.ema.clone()))
        model.ema.mul_(0.5).add_(0.5 * model.emb.weight.detach().mean())

    def with_ema():
        m = toy()
        m.register_buffer("ema", torch.zeros(()))
        return m

    full = with_ema()
    res = fit(full, lm_loss, TokenStream(2), toy_config(4, accumulate=2, eval_every=2), tmp_path / "a",
              after_step=after_step, evaluate=lambda m: {"ema": m.ema.clone()})
    assert [s[:3] for s in seen] == [(s, False, "ToyLM") for s in (1, 2, 3, 4)]
    assert [e["ema"] for e in res.history["eval"]] == [float(seen[2][3]), float(full.ema)]
    seen.clear()
    fit(with_ema(), lm_loss, TokenStream(2), toy_config(4, accumulate=2, eval_every=2, max_seconds=1e-9),
        tmp_path / "b", after_step=after_step)                      # stops (and checkpoints) after step 1
    resumed = with_ema()
    fit(resumed, lm_loss, TokenStream(2), toy_config(4, accumulate=2, eval_every=2), tmp_path / "b",
        after_step=after_step)
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    assert torch.equal(resumed.ema, full.ema) and float(full.ema) != 0


def test_non_finite_loss_stops_with_a_hint(tmp_path):
    def bad(model, batch):
        loss, m = lm_loss(model, batch)
        return loss * float("nan"), m

    with pytest.raises(RuntimeError, match="lower the learning rate"):
        fit(toy(), bad, TokenStream(4), toy_config(2), tmp_path)

    def empty(model, batch):
        loss, m = lm_loss(model, batch)
        return 0 * loss, dict(m, targets=0)

    with pytest.raises(RuntimeError, match="no targets"):
        fit(toy(), empty, TokenStream(4), toy_config(2), tmp_path / "b")


def test_exact_resume_after_time_budget_with_dropout_and_rngs(tmp_path):
    # dropout (torch RNG) and the noise of lm_loss (python + numpy RNGs) make the curve depend on
    # every restored generator; the data position comes from TokenStream.state_dict()
    loss = lambda m, b: lm_loss(m, b, noise=True)
    full = fit(toy(0.2), loss, TokenStream(4), toy_config(10), tmp_path / "full")
    slow = lambda m, b: lm_loss(m, b, sleep=0.05, noise=True)
    part = fit(toy(0.2), slow, TokenStream(4), toy_config(10, max_seconds=0.08, ckpt_every=100), tmp_path / "cut")
    assert part.stopped == "time" and 1 <= part.step < 10
    assert read_meta(latest_checkpoint(tmp_path / "cut"))["step"] == part.step
    # a different model init and a fresh data stream: everything must come from the checkpoint
    torch.manual_seed(123)
    rest = fit(ToyLM(dropout=0.2), loss, TokenStream(4), toy_config(10, ckpt_every=100), tmp_path / "cut", resume=True)
    assert rest.stopped == "done" and rest.step == 10
    assert losses(rest) == losses(full)  # bit-exact


def test_resume_errors(tmp_path):
    with pytest.raises(UserFileError, match="nothing to resume"):
        fit(toy(), lm_loss, TokenStream(4), toy_config(2), tmp_path, resume=True)
    fit(toy(), lm_loss, TokenStream(4), toy_config(2), tmp_path)
    with pytest.raises(UserValueError, match=r"differs from the checkpoint's in \['lr'\]"):
        fit(toy(), lm_loss, TokenStream(4), toy_config(4, lr=0.5), tmp_path)
    res = fit(toy(), lm_loss, TokenStream(4), toy_config(2, lr=0.5), tmp_path, resume=False)  # starts afresh
    assert res.step == 2 and res.history["train"][0]["step"] == 1


def test_checkpoints_are_atomic_and_a_broken_one_is_skipped(tmp_path):
    fit(toy(), lm_loss, TokenStream(4), toy_config(6, ckpt_every=2, keep_checkpoints=2), tmp_path)
    root = tmp_path / CHECKPOINT_DIR
    assert sorted(p.name for p in root.iterdir()) == ["step-00000004", "step-00000006"]
    assert {p.name for p in (root / "step-00000006").iterdir()} == \
        {"model.pt", "optimizer.pt", "trainer.pt", "history.json", "meta.json"}
    # a crash mid-write leaves a .tmp folder (ignored) or, on a lying file system, a short file
    shutil.copytree(root / "step-00000006", root / ".step-00000008.tmp")
    with open(root / "step-00000006" / "model.pt", "r+b") as f:
        f.truncate(100)
    assert latest_checkpoint(tmp_path) == root / "step-00000004"
    res = fit(toy(), lm_loss, TokenStream(4), toy_config(6, ckpt_every=2, keep_checkpoints=2), tmp_path)
    assert res.history["train"][-1]["step"] == 6 and len(res.history["train"]) == 6
    assert latest_checkpoint(tmp_path) == root / "step-00000006"
    assert not list(root.glob(".*.tmp"))


def test_one_shot_data_runs_out_with_a_clear_error(tmp_path):
    class Once(TokenStream):
        def __iter__(self):
            return iter([])

    with pytest.raises(UserValueError, match="yields no batches"):
        fit(toy(), lm_loss, Once(4), toy_config(2), tmp_path)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_run(tmp_path):
    m = toy()
    res = fit(m, lm_loss, TokenStream(8), toy_config(20, device="auto", precision="bf16", peak_flops=None), tmp_path)
    assert res.info.device.type == "cuda" and next(m.parameters()).is_cuda
    assert res.history["train"][-1]["loss"] < 0.5 * res.history["train"][0]["loss"]
    assert 0 < res.history["train"][-1]["mfu"] < 1


def test_measuring_the_peak_leaves_the_global_rng_alone():
    from beingh0.train.metrics import measure_peak_flops

    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    assert measure_peak_flops(torch.device("cpu"), n=48, seconds=0.0) > 0  # timed at least 3 times, even with no time
    assert torch.equal(torch.rand(3), want)
