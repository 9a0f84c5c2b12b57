"""Save and load a trained tokenizer: ``<dir>/tokenizer.safetensors`` (weights, codebooks, EMA
buffers, normalisation) + ``<dir>/tokenizer.json`` (format, format version, config, normalisation
statistics). Loading checks all of it and never falls back to random weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..motion import NormStats
from .config import TokenizerConfig
from .model import MotionTokenizer

__all__ = ["save_tokenizer", "load_tokenizer", "FORMAT", "FORMAT_VERSION"]

FORMAT = "beingh0-motion-tokenizer"
FORMAT_VERSION = 1
WEIGHTS, META = "tokenizer.safetensors", "tokenizer.json"


def save_tokenizer(tok: MotionTokenizer, path, extra: dict | None = None) -> Path:
    """Write ``tok`` into the folder ``path`` (created); returns the folder."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in tok.state_dict().items()}
    save_file(state, str(path / WEIGHTS), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": tok.cfg.to_dict(),
            "norm": tok.norm.to_dict(), "layout": {"tokens_per_block": tok.layout.tokens_per_block,
                                                   "vocab_size": tok.layout.vocab_size}}
    if extra:
        meta["extra"] = extra
    (path / META).write_text(json.dumps(meta, indent=1))
    return path


def _resolve(path) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, META):
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer folder {path} not found; pass the folder written by save_tokenizer "
                                f"or `beingh0 tokenizer train --out DIR` (it holds {META} and {WEIGHTS})")
    for name in (META, WEIGHTS):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} has no {name}; is this a tokenizer folder (written by save_tokenizer)?")
    return path


def load_tokenizer(path, device="cpu") -> MotionTokenizer:
    """Load a folder written by ``save_tokenizer``; a mismatched or corrupt file raises ValueError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _resolve(path)
    try:
        meta = json.loads((path / META).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path / META} is not valid JSON ({e}); the file is corrupt, re-save the tokenizer") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path / META} is not a beingh0 motion tokenizer (format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path / META} has format version {meta.get('format_version')!r}; this beingh0 reads "
                         f"version {FORMAT_VERSION}. Upgrade beingh0 or re-train the tokenizer")
    cfg = TokenizerConfig.from_dict(meta["config"])
    norm = NormStats.from_dict(meta["norm"])
    tok = MotionTokenizer(cfg, norm)
    try:
        state = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path / WEIGHTS} could not be read ({e}); the file is corrupt or truncated") from None
    own = tok.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{path / WEIGHTS} does not match its config {cfg.name!r}: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, wrong shapes {wrong[:4]}. The weights and "
                         f"{META} come from different tokenizers; re-save them together")
    tok.load_state_dict(state)
    if not torch.allclose(tok.norm_mean, norm.mean) or not torch.allclose(tok.norm_std, norm.std):
        raise ValueError(f"normalisation statistics in {WEIGHTS} and {META} differ; the files come from different saves")
    return tok.to(device).eval()
