"""The motion tokenizer's training job: :func:`train_tokenizer` runs the tokenizer's pieces
(``beingh0.tokenizer.train``: loss, loader, codebook hook, validation, plots) through :func:`fit`,
the one training loop; :func:`train_command` and :func:`quickstart` are the library side of
``beingh0 tokenizer train`` and ``beingh0 demo``.

Output folder ``out``:
    tokenizer/            the trained tokenizer (``load_tokenizer`` / ``beingh0 tokenizer eval``)
    checkpoints/step-N/   fit's atomic checkpoint (model.pt, optimizer.pt, trainer.pt with the
                          scheduler, RNG states and loader position, history.json, meta.json with the
                          tokenizer's TrainConfig) plus tokenizer.json / tokenizer.safetensors, so that
                          the folder is itself a loadable tokenizer. ``resume=True`` continues the same
                          loss curve exactly; a crash at any moment, also while a checkpoint is
                          written, leaves the previous complete one (docs/train.md)
    losses.png            train/validation losses
    codebook_usage.png    per-layer codebook utilisation between evaluations
    history.json          the logged numbers
Resume takes the architecture, the normalisation and the training settings from the checkpoint;
only the ``RESUMABLE`` fields (run length, budgets, logging, device) come from the call.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

from ..core.errors import UserFileError, UserValueError
from ..tokenizer.config import PRESETS, TokenizerConfig
from ..tokenizer.io import load_tokenizer, save_tokenizer
from ..tokenizer.quickstart import report, synthetic_train, synthetic_val
from ..tokenizer.train import (RESUMABLE, TrainConfig, TrainResult, make_loader, new_tokenizer, open_training_data,
                               plot_history, tokenizer_loss, update_codebooks, usage_snapshot, validate,
                               validation_windows)
from .checkpoint import latest_checkpoint, read_meta
from .config import TrainConfig as FitConfig
from .distributed import init_distributed
from .loop import fit

__all__ = ["train_tokenizer", "fit_config", "train_command", "quickstart"]


def fit_config(tc: TrainConfig) -> FitConfig:
    """The :class:`beingh0.train.TrainConfig` of a tokenizer run: AdamW (betas 0.9/0.999, eps 1e-8,
    no clipping), linear warm-up then a constant learning rate, one checkpoint kept; fit's own
    loss.png is not drawn (the tokenizer draws losses.png and codebook_usage.png)."""
    return FitConfig(steps=tc.steps, lr=tc.lr, schedule="constant", warmup_steps=tc.warmup,
                     weight_decay=tc.weight_decay, betas=(0.9, 0.999), eps=1e-8, grad_clip=None, device=tc.device,
                     seed=tc.seed, ckpt_every=tc.ckpt_every, keep_checkpoints=1, eval_every=tc.eval_every,
                     max_seconds=tc.max_seconds, progress=tc.progress, plots=False, num_threads=tc.num_threads)


def _resumed(out: Path, config, train):
    """(tokenizer, TrainConfig) of the newest complete checkpoint under ``out``."""
    ck = latest_checkpoint(out)
    if ck is None:
        raise UserFileError(f"nothing to resume: no complete checkpoint under {out / 'checkpoints'}; "
                            "train without --resume first")
    tok = load_tokenizer(ck).train()
    if config is not None and config != tok.cfg:
        raise UserValueError(f"resume: the checkpoint's tokenizer config ({tok.cfg.name!r}) differs from the one "
                             "given; resume takes the architecture from the checkpoint (pass config=None)")
    tc = TrainConfig.from_dict(read_meta(ck)["meta"]["tokenizer_train"])
    if train is not None:
        tc = replace(tc, **{k: getattr(train, k) for k in RESUMABLE})
    return tok, tc


def train_tokenizer(out_dir, data, val_data=None, config: TokenizerConfig | None = None,
                    train: TrainConfig | None = None, resume: bool = False) -> TrainResult:
    """Train (or ``resume``) a tokenizer on the motion windows of the dataset folder(s) ``data``,
    validating on the held-out folder(s) ``val_data`` (first ``VAL_WINDOWS`` windows). See the
    module docstring for what lands in ``out_dir``. Under torchrun every rank runs it (the loader
    splits the data, the codebook statistics are all-reduced); rank 0 writes."""
    out = Path(out_dir)
    t_start = time.perf_counter()
    if resume:
        tok, tc = _resumed(out, config, train)
    else:
        tok, tc = None, train if train is not None else TrainConfig()
    info = init_distributed(tc.device)           # before the loader, which splits by rank
    if tok is None:
        config = config if config is not None else TokenizerConfig.preset("small")
        ds = open_training_data(data, config.features, tc)
        tok = new_tokenizer(config, ds, tc)
    else:
        ds = open_training_data(data, tok.spec, tc)
    val = validation_windows(val_data, tok.spec)

    def evaluate(model):
        return {**validate(model, val), "usage": usage_snapshot(model)}

    res = fit(tok, tokenizer_loss, make_loader(ds, tc), fit_config(tc), out, resume=bool(resume), evaluate=evaluate,
              meta={"tokenizer": tok.cfg.to_dict(), "tokenizer_train": asdict(tc)},
              on_checkpoint=lambda folder: save_tokenizer(tok, folder), after_step=update_codebooks)
    tok.eval()
    if info.is_main:
        save_tokenizer(tok, out / "tokenizer", extra={"steps": res.step})
        if tc.plots:
            plot_history(out, res.history)
    return TrainResult(tok, res.history, out, res.step, time.perf_counter() - t_start)


def quickstart(out_dir="out/tokenizer-quickstart", minutes_budget: float = 3.0, seed: int = 0,
               data_dir=None, verbose: bool = True, episodes: int = 48) -> dict:
    """Train the ``small`` tokenizer on ``episodes`` synthetic UniHand episodes (both hands; a
    motion-only dataset folder built into ``out_dir/data``) within ``minutes_budget`` minutes
    (training gets ~80 % of it), then print the reconstruction table (mm) for a held-out synthetic
    folder and the real sequence when ``data_dir`` (default ``../shared/data`` from the current
    directory) has it. Returns {"rows": [summary dicts], "steps", "seconds", "out_dir"}."""
    if isinstance(minutes_budget, bool) or not (isinstance(minutes_budget, (int, float)) and minutes_budget > 0):
        raise UserValueError(f"minutes_budget={minutes_budget!r} must be > 0")
    t0 = time.perf_counter()
    train, val = synthetic_train(out_dir, episodes, seed, verbose), synthetic_val(out_dir, seed)
    budget = 60.0 * minutes_budget * 0.8 - (time.perf_counter() - t0)
    tc = TrainConfig(steps=3000, eval_every=100, ckpt_every=500, seed=seed, max_seconds=max(budget, 1.0),
                     progress=verbose)
    res = train_tokenizer(out_dir, train, val, TokenizerConfig.preset("small"), tc)
    if verbose:
        print(f"trained {res.steps} steps in {res.seconds:.0f} s -> {Path(out_dir) / 'tokenizer'}")
    rows = report(res.tokenizer, val, data_dir, real=True)
    summary = {"rows": [r.summary() for r in rows], "steps": res.steps, "seconds": time.perf_counter() - t0,
               "out_dir": str(out_dir)}
    (Path(out_dir) / "report.json").write_text(json.dumps(summary, indent=1))
    return summary


TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))


def train_command(out_dir, data=None, *, val_data=None, config: str = "small", resume: bool = False,
                  minutes: float | None = None, episodes: int = 64, seed: int = 0, progress: bool = True,
                  **train_options) -> dict:
    """``beingh0 tokenizer train``: train on the dataset folder(s) ``data`` (default: a synthetic
    UniHand set of ``episodes`` episodes built into ``out_dir/data/train``), validate and report on
    ``val_data`` (default: a held-out synthetic folder, another seed), then print the table (mm).

    ``train_options``: any :class:`TrainConfig` field (``steps``, ``batch_size``, ``lr``, ``warmup``,
    ...); the dataclass holds the defaults (generate CLI flags from ``TrainConfig``'s fields).
    An option passed as None keeps the default (what an unset CLI flag gives). ``minutes`` sets
    ``max_seconds``; ``seed`` seeds the model, the loader and the synthetic sets.
    """
    train_options = {k: v for k, v in train_options.items() if v is not None}
    unknown = sorted(set(train_options) - set(TRAIN_FIELDS))
    if unknown:
        raise UserValueError(f"unknown training option(s) {unknown}; known: {list(TRAIN_FIELDS)}")
    if isinstance(config, str) and config not in PRESETS:
        raise UserValueError(f"unknown --config {config!r}; choose one of {list(PRESETS)}")
    if not isinstance(config, (str, TokenizerConfig)):
        raise UserValueError(f"config must be a preset name {list(PRESETS)} or a TokenizerConfig, got {type(config).__name__}")
    if minutes is not None:
        train_options["max_seconds"] = 60.0 * minutes
    tc = replace(TrainConfig(seed=seed, progress=progress), **train_options)
    syn = Path(out_dir) / "data"
    if resume:
        if latest_checkpoint(out_dir) is None:
            raise UserFileError(f"nothing to resume: no complete checkpoint under {Path(out_dir) / 'checkpoints'}; "
                                "train without --resume first")
        # resuming the synthetic default: the run's own folders, whatever --episodes says now
        if data is None and (syn / "train" / "index.json").is_file():
            data = [syn / "train"]
        if val_data is None and (syn / "val" / "index.json").is_file():
            val_data = [syn / "val"]
    if data is None:
        data = synthetic_train(out_dir, episodes, seed, progress)
    if val_data is None:
        val_data = synthetic_val(out_dir, seed)
    res = train_tokenizer(out_dir, data, val_data, None if resume else (TokenizerConfig.preset(config) if isinstance(config, str) else config), tc, resume=resume)
    print(f"trained to step {res.steps} ({res.seconds:.0f} s) -> {Path(out_dir) / 'tokenizer'}; plots: "
          f"{Path(out_dir) / 'losses.png'}, {Path(out_dir) / 'codebook_usage.png'}")
    rows = report(res.tokenizer, val_data, None, real=False)
    return {"rows": [r.summary() for r in rows], "steps": res.steps}
