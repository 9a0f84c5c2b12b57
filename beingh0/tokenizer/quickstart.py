"""The library side of ``beingh0 tokenizer eval`` and the data / report pieces of ``tokenizer train``
and ``demo`` (those two train, so they live a layer up: ``beingh0.train.tokenizer``).

Training reads dataset folders (``--data DIR ...``) through the data loader. Without ``--data``,
the synthetic UniHand source is built, motion-only, into ``OUT/data/train`` (and a held-out set
with another seed into ``OUT/data/val``): the synthetic default is one such folder. Paths are
taken as given, relative to the current directory (``../shared/data`` by default for the real
sequence), never to the installed package.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .evaluate import evaluate_clips, evaluate_dataset, format_table, format_usage, real_clip
from .io import load_tokenizer

__all__ = ["eval_command", "default_data_dir", "synthetic_dataset", "synthetic_train", "synthetic_val", "report",
           "TRAIN_SEED", "VAL_SEED", "SYNTH_SECONDS"]

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


def synthetic_train(out_dir, episodes: int, seed: int, progress: bool) -> list:
    """The synthetic training folder of a run: ``OUT/data/train`` (reused when already built)."""
    return [synthetic_dataset(Path(out_dir) / "data" / "train", episodes, TRAIN_SEED + 100 * seed, progress=progress)]


def synthetic_val(out_dir, seed: int, episodes: int = 8) -> list:
    """The held-out synthetic folder of a run: ``OUT/data/val`` (another seed)."""
    return [synthetic_dataset(Path(out_dir) / "data" / "val", episodes, VAL_SEED + 100 * seed)]


def report(tok, val, data_dir, real: bool, verbose: bool = True, name: str = "synthetic held-out") -> list:
    """Evaluate ``tok`` on the folder(s) ``val`` (and the real sequence under ``data_dir`` with
    ``real``); print the table (mm) and the codebook usage when ``verbose``. Returns the rows."""
    rows = [evaluate_dataset(tok, val, name)]
    if real:
        clip = real_clip(data_dir if data_dir is not None else default_data_dir(), verbose=verbose)
        if clip is not None:
            rows.append(evaluate_clips(tok, [clip], "real (fitted MediaPipe)"))
    if verbose:
        print(format_table(rows))
        print(format_usage(rows[0]))
    return rows


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
        rows = report(tok, data, data_dir, real=real, name=name)
    return [r.summary() for r in rows]
