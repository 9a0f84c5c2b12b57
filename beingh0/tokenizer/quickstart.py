"""``quickstart``: synthesise clips, train the small tokenizer for a few minutes on a CPU, report mm.

Also the library side of ``beingh0 tokenizer train`` / ``eval`` (the CLI only parses and calls).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .config import PRESETS, TokenizerConfig
from .evaluate import evaluate_clips, format_table, format_usage, real_clip
from .io import load_tokenizer
from .data import synthetic_clips
from .train import TrainConfig, train_tokenizer

__all__ = ["quickstart", "train_command", "eval_command", "default_data_dir"]

#: seeds of the synthetic sets: training, validation (held out: never seen in training)
TRAIN_SEED, VAL_SEED = 1, 2


def default_data_dir() -> Path:
    """``../shared/data`` beside the checkout (where the real test sequence lives), if any."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _report(tok, val, data_dir, real: bool, verbose: bool = True) -> list:
    rows = [evaluate_clips(tok, val, "synthetic held-out")]
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
    """Train the ``small`` tokenizer on ``episodes`` synthetic UniHand episodes (both hands) within ``minutes_budget`` minutes
    (training gets ~80 % of it), then print the reconstruction table (mm) for held-out synthetic
    clips and the real sequence when ``data_dir`` (default ``../shared/data``) has it.
    Returns {"rows": [summary dicts], "steps", "seconds", "out_dir"}."""
    if not (isinstance(minutes_budget, (int, float)) and minutes_budget > 0):
        raise ValueError(f"minutes_budget={minutes_budget!r} must be > 0")
    t0 = time.perf_counter()
    train = synthetic_clips(episodes, seed=TRAIN_SEED + 100 * seed, progress=verbose)
    val = synthetic_clips(8, seed=VAL_SEED + 100 * seed)
    budget = 60.0 * minutes_budget * 0.8
    tc = TrainConfig(steps=3000, batch_size=128, lr=1e-3, warmup=20, eval_every=100, ckpt_every=500,
                     seed=seed, max_seconds=budget, progress=verbose)
    res = train_tokenizer(out_dir, train, val, TokenizerConfig.preset("small"), tc, verbose=verbose)
    if verbose:
        print(f"trained {res.steps} steps in {res.seconds:.0f} s -> {Path(out_dir) / 'tokenizer'}")
    rows = _report(res.tokenizer, val, data_dir, real=True, verbose=verbose)
    summary = {"rows": [r.summary() for r in rows], "steps": res.steps, "seconds": time.perf_counter() - t0,
               "out_dir": str(out_dir)}
    (Path(out_dir) / "report.json").write_text(json.dumps(summary, indent=1))
    return summary


def train_command(out_dir, config: str = "small", steps: int | None = None, resume: bool = False,
                  batch_size: int = 128, lr: float = 1e-3, minutes: float | None = None, clips: int = 64,
                  seed: int = 0, progress: bool = True) -> dict:
    """``beingh0 tokenizer train``: ``clips`` synthetic UniHand episodes (both hands), train, report."""
    if config not in PRESETS:
        raise ValueError(f"unknown --config {config!r}; choose one of {list(PRESETS)}")
    train = synthetic_clips(clips, seed=TRAIN_SEED + 100 * seed, progress=progress)
    val = synthetic_clips(8, seed=VAL_SEED + 100 * seed)
    tc = TrainConfig(steps=steps if steps is not None else 2000, batch_size=batch_size, lr=lr, warmup=20, seed=seed,
                     max_seconds=60.0 * minutes if minutes else None, progress=progress)
    res = train_tokenizer(out_dir, train, val, None if resume else TokenizerConfig.preset(config), tc, resume=resume)
    print(f"trained to step {res.steps} ({res.seconds:.0f} s) -> {Path(out_dir) / 'tokenizer'}; plots: "
          f"{Path(out_dir) / 'losses.png'}, {Path(out_dir) / 'codebook_usage.png'}")
    rows = _report(res.tokenizer, val, None, real=False)
    return {"rows": [r.summary() for r in rows], "steps": res.steps}


def eval_command(checkpoint, real: bool = False, clips: int = 8, seed: int = 0, data_dir=None) -> list:
    """``beingh0 tokenizer eval``: load a tokenizer folder (or a training output folder) and print
    the reconstruction table (mm) on held-out synthetic clips (+ the real sequence with ``real``)."""
    path = Path(checkpoint)
    if (path / "tokenizer" / "tokenizer.json").is_file():
        path = path / "tokenizer"
    tok = load_tokenizer(path)
    print(f"tokenizer {path}: config {tok.cfg.name!r}, {tok.cfg.features}, {len(tok.cfg.parts)} part(s), "
          f"{tok.layout.tokens_per_block} tokens per hand-second, {tok.layout.vocab_size} ids")
    with torch.no_grad():
        rows = _report(tok, synthetic_clips(clips, seed=VAL_SEED + 100 * seed), data_dir, real=real)
    return [r.summary() for r in rows]
