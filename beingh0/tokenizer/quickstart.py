"""The library side of ``beingh0 tokenizer train`` / ``eval`` / ``quickstart`` (the CLI only parses
and calls these).

Training reads dataset folders (``--data DIR ...``) through the data loader. Without ``--data``,
the synthetic UniHand source is built, motion-only, into ``OUT/data/train`` (and a held-out set
with another seed into ``OUT/data/val``): the synthetic default is one such folder. Paths are
taken as given, relative to the current directory (``../shared/data`` by default for the real
sequence), never to the installed package.
"""
from __future__ import annotations

import json
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from ..core.errors import UserFileError, UserValueError
from .config import PRESETS, TokenizerConfig
from .evaluate import evaluate_clips, evaluate_dataset, format_table, format_usage, real_clip
from .io import load_tokenizer
from .train import TrainConfig, train_tokenizer

__all__ = ["quickstart", "train_command", "eval_command", "default_data_dir", "synthetic_dataset",
           "TRAIN_SEED", "VAL_SEED"]

#: seeds of the synthetic sets: training, validation (held out: never seen in training)
TRAIN_SEED, VAL_SEED = 1, 2
#: length of each synthetic episode (s)
SYNTH_SECONDS = 6.0


def default_data_dir() -> Path:
    """``../shared/data`` relative to the current directory (where a developer checkout keeps the
    real test sequence); never relative to the installed package."""
    return Path.cwd() / ".." / "shared" / "data"


def synthetic_dataset(out, episodes: int, seed: int, seconds: float = SYNTH_SECONDS, progress: bool = False) -> Path:
    """A motion-only synthetic UniHand dataset folder at ``out`` (``beingh0 data synth --no-frames``):
    ``episodes`` bimanual episodes of ``seconds``, fixed by ``seed``; an existing folder built with the
    same options is reused (so ``--resume`` reads the very same samples)."""
    from ..data.synth import SynthConfig, synth_dataset

    synth_dataset(out, episodes, SynthConfig(seconds=seconds, frames=False), seed, progress=progress, reuse=True)
    return Path(out)


def _synthetic_train(out_dir, episodes: int, seed: int, progress: bool) -> list:
    return [synthetic_dataset(Path(out_dir) / "data" / "train", episodes, TRAIN_SEED + 100 * seed, progress=progress)]


def _synthetic_val(out_dir, seed: int, episodes: int = 8) -> list:
    return [synthetic_dataset(Path(out_dir) / "data" / "val", episodes, VAL_SEED + 100 * seed)]


def _report(tok, val, data_dir, real: bool, verbose: bool = True, name: str = "synthetic held-out") -> list:
    rows = [evaluate_dataset(tok, val, name)]
    if real:
        clip = real_clip(data_dir if data_dir is not None else default_data_dir(), verbose=verbose)
        if clip is not None:
            rows.append(evaluate_clips(tok, [clip], "real (fitted MediaPipe)"))
    if verbose:
        print(format_table(rows))
        print(format_usage(rows[0]))
    return rows


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
    train, val = _synthetic_train(out_dir, episodes, seed, verbose), _synthetic_val(out_dir, seed)
    budget = 60.0 * minutes_budget * 0.8 - (time.perf_counter() - t0)
    tc = TrainConfig(steps=3000, eval_every=100, ckpt_every=500, seed=seed, max_seconds=max(budget, 1.0),
                     progress=verbose)
    res = train_tokenizer(out_dir, train, val, TokenizerConfig.preset("small"), tc, verbose=verbose)
    if verbose:
        print(f"trained {res.steps} steps in {res.seconds:.0f} s -> {Path(out_dir) / 'tokenizer'}")
    rows = _report(res.tokenizer, val, data_dir, real=True, verbose=verbose)
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
        from .train import recover_checkpoint

        if recover_checkpoint(out_dir) is None:
            raise UserFileError(f"nothing to resume: no complete checkpoint in {out_dir}; train without --resume first")
        # resuming the synthetic default: the run's own folders, whatever --episodes says now
        if data is None and (syn / "train" / "index.json").is_file():
            data = [syn / "train"]
        if val_data is None and (syn / "val" / "index.json").is_file():
            val_data = [syn / "val"]
    if data is None:
        data = _synthetic_train(out_dir, episodes, seed, progress)
    if val_data is None:
        val_data = _synthetic_val(out_dir, seed)
    res = train_tokenizer(out_dir, data, val_data, None if resume else (TokenizerConfig.preset(config) if isinstance(config, str) else config), tc, resume=resume)
    print(f"trained to step {res.steps} ({res.seconds:.0f} s) -> {Path(out_dir) / 'tokenizer'}; plots: "
          f"{Path(out_dir) / 'losses.png'}, {Path(out_dir) / 'codebook_usage.png'}")
    rows = _report(res.tokenizer, val_data, None, real=False)
    return {"rows": [r.summary() for r in rows], "steps": res.steps}


def eval_command(checkpoint, data=None, *, real: bool = False, episodes: int = 8, seed: int = 0,
                 data_dir=None) -> list:
    """``beingh0 tokenizer eval``: load a tokenizer folder (or a training output folder) and print
    the reconstruction table (mm) on the dataset folder(s) ``data`` (default: the held-out synthetic
    folder of a training output folder, else one of ``episodes`` episodes built into a temporary
    folder), plus the real sequence with ``real`` (under ``data_dir``, default ``../shared/data``)."""
    import tempfile

    path = Path(checkpoint)
    out_dir = None
    if (path / "tokenizer" / "tokenizer.json").is_file():
        out_dir, path = path, path / "tokenizer"
    tok = load_tokenizer(path)
    print(f"tokenizer {path}: config {tok.cfg.name!r}, {tok.cfg.features}, {len(tok.cfg.parts)} part(s), "
          f"{tok.layout.tokens_per_block} tokens per hand-second, {tok.layout.vocab_size} ids")
    with torch.no_grad(), tempfile.TemporaryDirectory(prefix="beingh0-tok-eval-") as tmp:
        name = "held-out"
        if data is None:
            name = "synthetic held-out"
            from ..data.synth import SynthConfig
            from ..data.synth.dataset import built_with, synth_options

            # the training run's held-out folder when it was built with these settings, else a new one
            opts = synth_options(episodes, SynthConfig(seconds=SYNTH_SECONDS, frames=False), VAL_SEED + 100 * seed)
            have = out_dir / "data" / "val" if out_dir is not None else None
            if have is not None and built_with(have, opts):
                data = [have]
            else:
                data = [synthetic_dataset(Path(tmp) / "val", episodes, VAL_SEED + 100 * seed)]
        rows = _report(tok, data, data_dir, real=real, name=name)
    return [r.summary() for r in rows]
