"""The training loop: :func:`fit` (setup, train steps, evaluation, checkpoints, logs).

The loop knows nothing about the model. It takes

* ``model``: an ``nn.Module`` (built by the caller, on any device; fit moves it);
* ``loss_fn(model, batch) -> (loss, metrics)``: ``loss`` is a scalar *mean* over the
  ``metrics["targets"]`` items it averages (tokens with a label, windows, ...; default 1) and
  ``metrics["tokens"]`` counts the tokens the model processed (for tokens/s and MFU; optional);
  other metrics (floats) are logged as target-weighted means;
* ``data``: an iterable of micro-batches already split by rank (build it after
  :func:`init_distributed`), with ``state_dict()`` / ``load_state_dict()`` for exact resume
  (``beingh0.data.loader.ResumableLoader`` is one); exhausted, it is iterated again (next epoch);
* a :class:`TrainConfig`.

Gradient accumulation and data parallelism weight every micro-batch by its ``targets``: the update
is the gradient of (sum of per-target losses) / (targets in the global batch), the same as one big
batch on one process, whatever the split (each micro-batch's backward is of ``loss * targets``; the
summed gradients are divided by the global target count before clipping).

Run it the same way on 1 process or many: ``torchrun --nproc_per_node N script.py`` (see
``docs/train.md``).
"""
from __future__ import annotations

import contextlib
import inspect
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..core.errors import UserFileError, UserValueError
from .checkpoint import latest_checkpoint, load_checkpoint, read_meta, save_checkpoint, seed_everything
from .config import RESUME_MAY_CHANGE, TrainConfig
from .distributed import DistInfo, all_gather_objects, all_reduce_sum, barrier, broadcast_module, init_distributed, wrap_model
from .metrics import flops_per_token_6n, peak_flops, plot_history, write_json_atomic
from .optim import make_optimizer, make_scheduler

__all__ = ["fit", "FitResult", "LossFn"]

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict]"]


@dataclass
class FitResult:
    """What :func:`fit` leaves: the history, the step reached and why it stopped."""

    history: dict
    """``{"train": [per-step records], "eval": [records of evaluate()]}`` (also ``OUT/history.json``)."""
    step: int
    """Optimizer steps done (counting those before a resume)."""
    stopped: str
    """``"done"`` (reached ``steps``) or ``"time"`` (``max_seconds`` ran out; resume to continue)."""
    seconds: float
    """Wall-clock seconds of this call."""
    checkpoint: Path | None
    """The newest complete checkpoint folder."""
    info: DistInfo
    """This process's rank, world size and device."""


def to_device(batch, device: torch.device):
    """``batch`` with every tensor (in dicts, lists, tuples) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _enable_gradient_checkpointing(model: nn.Module) -> None:
    fn = getattr(model, "gradient_checkpointing_enable", None)
    if fn is None:
        raise UserValueError(f"gradient_checkpointing=True but {type(model).__name__} has no "
                             "gradient_checkpointing_enable(); add one or set gradient_checkpointing=False")
    if "gradient_checkpointing_kwargs" in inspect.signature(fn).parameters:  # transformers models
        fn(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        fn()


def _grad_sync(train_model: nn.Module, sync: bool):
    """Skip the gradient all-reduce / reduce-scatter on all but the last micro-batch of a step."""
    if hasattr(train_model, "no_sync"):  # DDP
        return contextlib.nullcontext() if sync else train_model.no_sync()
    if hasattr(train_model, "set_requires_gradient_sync"):  # FSDP2
        train_model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


class _Batches:
    """Endless micro-batches from ``data``: a new pass (epoch) when one ends."""

    def __init__(self, data):
        self.data, self.it = data, None

    def next(self):
        if self.it is not None:
            try:
                return next(self.it)
            except StopIteration:
                pass
        # a resumed loader may sit at the very end of an epoch: its first pass is empty, the next is not
        for _ in range(2):
            self.it = iter(self.data)
            try:
                return next(self.it)
            except StopIteration:
                pass
        raise UserValueError("the data iterator yields no batches (empty, or a one-shot iterator that ran out); "
                             "pass a re-iterable loader or an endless iterator")


def _train_step(train_model, model, loss_fn, batches, optimizer, scheduler, cfg: TrainConfig, info: DistInfo) -> dict:
    """One optimizer step over ``cfg.accumulate`` micro-batches. Returns the step's log record."""
    optimizer.zero_grad(set_to_none=True)
    autocast = torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    sums: dict[str, torch.Tensor | float] = {"loss": 0.0, "targets": 0.0, "tokens": 0.0}
    for micro in range(cfg.accumulate):
        batch = to_device(batches.next(), info.device)
        with _grad_sync(train_model, micro == cfg.accumulate - 1):
            with autocast:
                loss, metrics = loss_fn(train_model, batch)
            n = float(metrics.get("targets", 1))
            (loss * n).backward()
        # sums stay on the device (no host sync per micro-batch); metrics are weighted by targets
        sums["loss"] = sums["loss"] + loss.detach().double() * n
        sums["targets"] += n
        sums["tokens"] += float(metrics.get("tokens", 0))
        for k, v in metrics.items():
            if k not in ("loss", "targets", "tokens"):  # the loss is logged already
                v = v.detach().double() if isinstance(v, torch.Tensor) else float(v)
                sums[k] = sums.get(k, 0.0) + v * n
    keys = list(sums)  # same keys on every rank (the loss_fn's contract)
    totals = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64, device=info.device).reshape(())
                          for k in keys])
    totals = dict(zip(keys, all_reduce_sum(totals, info.device)))
    loss_sum, targets = totals.pop("loss"), totals.pop("targets")
    if targets <= 0:
        raise RuntimeError("the global batch has no targets (every micro-batch reported targets=0); check the data")
    if not math.isfinite(loss_sum):
        raise RuntimeError(f"the loss became {loss_sum} at step {scheduler.last_epoch + 1}; lower the learning "
                           f"rate (lr={cfg.lr}) or check the data")
    # DDP and FSDP2 average gradients over ranks: times world / global targets gives
    # grad(sum of per-target losses) / global targets
    scale = info.world_size / targets
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(scale)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # a DTensor under FSDP2
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    tokens = totals.pop("tokens")
    rec = {"loss": loss_sum / targets, "lr": lr, "grad_norm": float(norm), "targets": targets}
    if tokens:
        rec["tokens"] = tokens
    rec.update({k: v / targets for k, v in totals.items()})
    return rec


def fit(model: nn.Module, loss_fn: LossFn, data, config: TrainConfig | None = None, out_dir="run", *,
        resume: bool | str = "auto", evaluate: Callable[[nn.Module], dict] | None = None,
        flops_per_token: float | Callable[[nn.Module], float] | None = None,
        meta: dict | None = None, on_checkpoint: Callable[[Path], None] | None = None,
        after_step: Callable[[nn.Module, int], None] | None = None) -> FitResult:
    """Train ``model`` with ``loss_fn`` on ``data`` (see the module docstring) into ``out_dir``.

    Args:
        resume: ``"auto"`` continues from the newest complete checkpoint under ``out_dir`` if there
            is one, ``True`` requires one, ``False`` starts afresh (older checkpoints are replaced).
        evaluate: ``evaluate(model) -> {name: number or JSON-able value}``, called on every rank (under no_grad, eval
            mode, the run's autocast) every ``eval_every`` steps and at the end; rank 0's result is logged.
        flops_per_token: model training FLOPs per token for MFU (a number or ``f(model)``); default 6 N.
        meta: JSON-able dict saved in every checkpoint's ``meta.json`` (e.g. the model's config,
            so that a resume can rebuild the architecture: ``read_meta(latest_checkpoint(out))``).
        on_checkpoint: ``f(folder)`` called on rank 0 to add files to a checkpoint before it is sealed.
        after_step: ``f(model, step)`` called on every rank after each optimizer step (``step`` = steps
            done, 1-based), under no_grad with the unwrapped model, before evaluation and checkpoint:
            for state updates that are not gradient steps (EMA codebooks, k-means, dead-code restart,
            an EMA of the weights). Whatever it changes in the model's buffers is checkpointed.

    Writes (rank 0 only): ``out_dir/checkpoints/step-N/``, ``history.json``, ``loss.png``.
    """
    cfg = config if config is not None else TrainConfig()
    info = init_distributed(cfg.device)
    threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _fit(model, loss_fn, data, cfg, Path(out_dir), info, resume, evaluate, flops_per_token, meta,
                    on_checkpoint, after_step)
    finally:
        torch.set_num_threads(threads)


def _setup(model, data, cfg, out, info, resume):
    """Checkpoint choice, seeds, device, wrapping, optimizer; the state of a resumed run."""
    if resume not in (True, False, "auto"):
        raise UserValueError(f"resume={resume!r} must be True, False or 'auto'")
    ck = all_gather_objects(latest_checkpoint(out) if resume else None)[0]  # rank 0 decides
    if resume is True and ck is None:
        raise UserFileError(f"nothing to resume: no complete checkpoint under {out / 'checkpoints'}; "
                            "run without resume first")
    if ck is not None:
        saved = TrainConfig.from_dict(read_meta(ck)["config"])
        bad = cfg.resume_mismatch(saved)
        if bad:
            raise UserValueError(f"resume: the config differs from the checkpoint's in {bad} (only "
                                 f"{sorted(RESUME_MAY_CHANGE)} may change); pass the same settings or a new out_dir")
    seed_everything(cfg.seed + info.rank)
    model.to(info.device)
    if cfg.gradient_checkpointing:
        _enable_gradient_checkpointing(model)
    broadcast_module(model)
    train_model = wrap_model(model, cfg.parallel, info)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    step, history = 0, {"train": [], "eval": []}
    if ck is not None:
        step, history = load_checkpoint(ck, model, optimizer, scheduler, data, info)
    return train_model, optimizer, scheduler, step, history, ck


def _fit(model, loss_fn, data, cfg, out, info, resume, evaluate, flops_per_token, meta, on_checkpoint,
         after_step) -> FitResult:
    t_call = time.perf_counter()
    fpt = flops_per_token(model) if callable(flops_per_token) else flops_per_token
    fpt = flops_per_token_6n(model) if fpt is None else float(fpt)  # counted before FSDP shards the model
    train_model, optimizer, scheduler, step, history, ck = _setup(model, data, cfg, out, info, resume)
    peak = cfg.peak_flops  # measured on first use: a loss_fn that reports no tokens needs none
    bar = None
    if info.is_main and cfg.progress and step < cfg.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    batches, stopped, t_loop = _Batches(data), "done", time.perf_counter()
    model.train()
    while step < cfg.steps:
        t_step = time.perf_counter()
        rec = _train_step(train_model, model, loss_fn, batches, optimizer, scheduler, cfg, info)
        if after_step is not None:
            with torch.no_grad():
                after_step(model, step + 1)
        if info.device.type == "cuda":
            torch.cuda.synchronize(info.device)
        rec["step_s"] = time.perf_counter() - t_step
        if "tokens" in rec:
            rec["tokens_per_s"] = rec["tokens"] / rec["step_s"]
            peak = peak or peak_flops(info.device, cfg.precision)[0]
            rec["mfu"] = fpt * rec["tokens_per_s"] / (peak * info.world_size)
        step += 1
        history["train"].append({"step": step, **rec})
        out_of_time = False
        if cfg.max_seconds is not None:  # one decision for all ranks
            over = time.perf_counter() - t_loop > cfg.max_seconds
            out_of_time = all_reduce_sum([float(over)], info.device)[0] > 0
        last = step == cfg.steps or out_of_time
        if evaluate is not None and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
            history["eval"].append({"step": step, **_evaluate(evaluate, model, cfg, info)})
        if step % cfg.ckpt_every == 0 or last:
            ck = save_checkpoint(out, step, model, optimizer, scheduler, data, history, cfg.to_dict(), info,
                                 cfg.keep_checkpoints, meta, on_checkpoint)
        if bar is not None:
            bar.update(1)
            post = {"loss": f"{rec['loss']:.4f}", "lr": f"{rec['lr']:.2e}"}
            if "tokens_per_s" in rec:
                post.update({"tok/s": f"{rec['tokens_per_s']:.3g}", "mfu": f"{100 * rec['mfu']:.1f}%"})
            bar.set_postfix(post, refresh=False)
        if out_of_time:
            stopped = "time"
            if info.is_main:
                msg = f"time budget of {cfg.max_seconds:g} s reached after step {step}; checkpoint written, resume to go on"
                (bar.write if bar is not None else print)(msg)
            break
    if bar is not None:
        bar.close()
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "history.json", history)
        if cfg.plots:
            plot_history(history, out / "loss.png")
    barrier()
    return FitResult(history, step, stopped, time.perf_counter() - t_call, ck, info)


@torch.no_grad()
def _evaluate(evaluate, model, cfg, info) -> dict:
    model.eval()
    try:
        with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            res = evaluate(model)
    finally:
        model.train()
    # numbers become floats; anything else (e.g. a tokenizer's codebook-usage table) must be JSON-able
    return {k: float(v) if isinstance(v, (int, float, torch.Tensor)) else v for k, v in (res or {}).items()}
