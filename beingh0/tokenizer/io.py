"""Save and load a trained tokenizer: ``<dir>/tokenizer.safetensors`` (weights, codebooks, EMA
buffers, normalisation) + ``<dir>/tokenizer.json`` (format, format version, config, normalisation
statistics). Loading checks all of it and never falls back to random weights.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..core.errors import UserFileError, UserValueError
from ..motion import FeatureSpec, NormStats
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


#: Largest tokenizer load_tokenizer builds (elements over all weights and buffers; the paper's
#: part-level model has ~30 M): a config beyond it is refused before anything is allocated.
MAX_ELEMENTS = 2_000_000_000
#: Largest tokenizer.json read (the paper model's is ~20 KB).
MAX_META_BYTES = 16 << 20


def _resolve(path) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, META):
        path = path.parent
    if not path.is_dir():
        raise UserFileError(f"tokenizer folder {path} not found; pass the folder written by save_tokenizer "
                            f"or `beingh0 tokenizer train --out DIR` (it holds {META} and {WEIGHTS})")
    for name in (META, WEIGHTS):
        if not (path / name).is_file():
            raise UserFileError(f"{path} has no {name}; is this a tokenizer folder (written by save_tokenizer)?")
    return path


def _read_meta(path: Path) -> tuple[TokenizerConfig, NormStats]:
    f = path / META
    if f.stat().st_size > MAX_META_BYTES:
        raise UserValueError(f"{f} is {f.stat().st_size} bytes, far more than a tokenizer config; the file is corrupt")
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserValueError(f"{f} is not valid JSON ({e}); the file is corrupt, re-save the tokenizer") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserValueError(f"{f} is not a beingh0 motion tokenizer (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserValueError(f"{f} has format version {meta.get('format_version')!r}; this beingh0 reads "
                             f"version {FORMAT_VERSION}. Upgrade beingh0 or re-train the tokenizer")
    for key in ("config", "norm"):
        if not isinstance(meta.get(key), dict):
            raise UserValueError(f"{f}: field {key!r} must be an object, got {type(meta.get(key)).__name__}")
    try:
        cfg = TokenizerConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise UserValueError(f"{f}: field 'config': {e}") from None
    n = meta["norm"]
    D = FeatureSpec(cfg.features).dim
    for key in ("mean", "std"):
        v = n.get(key)
        if not (isinstance(v, list) and len(v) == D and
                all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            raise UserValueError(f"{f}: field 'norm.{key}' must be a list of {D} numbers ({cfg.features})")
    try:
        norm = NormStats.from_dict(n)
    except (TypeError, ValueError) as e:
        raise UserValueError(f"{f}: field 'norm': {e}") from None
    return cfg, norm


def _expected_state(cfg: TokenizerConfig, norm: NormStats, where: Path) -> dict:
    """Names -> (shape, dtype) of the model's state, from a model built on the meta device (no memory)."""
    with torch.device("meta"):
        tok = MotionTokenizer(cfg, norm)
    state = {k: (tuple(v.shape), v.dtype) for k, v in tok.state_dict().items()}
    total = sum(math.prod(s) for s, _ in state.values())
    if total > MAX_ELEMENTS:
        raise UserValueError(f"{where}: field 'config' describes a tokenizer of {total:,} elements (limit "
                             f"{MAX_ELEMENTS:,}); the file is corrupt or not meant for this loader")
    return state


def load_tokenizer(path, device="cpu") -> MotionTokenizer:
    """Load a folder written by ``save_tokenizer``. The JSON config is validated first (types,
    ranges, sizes), then the weight file's header is checked against the shapes and dtypes the
    config implies (before any tensor is read or any model allocated), then every float tensor is
    checked for NaN/Inf. A mismatched or corrupt file raises a ``UserValueError`` naming the file
    and the tensor; never falls back to random weights."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = _resolve(path)
    cfg, norm = _read_meta(path)
    want = _expected_state(cfg, norm, path / META)
    wf = path / WEIGHTS
    try:
        with safe_open(str(wf), framework="pt") as fh:
            have = {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserValueError(f"{wf} could not be read ({e}); the file is corrupt or truncated") from None
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = [f"{k}: file {have[k][0]} vs config {want[k][0]}" for k in want if k in have and have[k][0] != want[k][0]]
    if missing or unexpected or wrong:
        raise UserValueError(f"{wf} does not match its config {cfg.name!r} in {META}: missing {missing[:4]}, "
                             f"unexpected {unexpected[:4]}, wrong shapes {wrong[:4]}. The weights and "
                             f"{META} come from different tokenizers; re-save them together")
    names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
             torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    for k, (_, dt) in want.items():
        if have[k][1] != names.get(dt, str(dt)):
            raise UserValueError(f"{wf}: tensor {k!r} has dtype {have[k][1]}, expected {names.get(dt, dt)}; the file "
                                 "is corrupt or was not written by save_tokenizer")
    try:
        state = load_file(str(wf))
    except (SafetensorError, OSError) as e:
        raise UserValueError(f"{wf} could not be read ({e}); the file is corrupt or truncated") from None
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise UserValueError(f"{wf}: tensor {k!r} contains NaN or Inf; the checkpoint is corrupt (or training "
                                 "diverged): use an earlier one")
    tok = MotionTokenizer(cfg, norm)
    tok.load_state_dict(state)
    if not torch.allclose(tok.norm_mean, norm.mean) or not torch.allclose(tok.norm_std, norm.std):
        raise UserValueError(f"normalisation statistics in {WEIGHTS} and {META} of {path} differ; the files come "
                             "from different saves")
    return tok.to(device).eval()
