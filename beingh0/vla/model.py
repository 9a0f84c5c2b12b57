"""The VLA: transformers' ``InternVLForConditionalGeneration`` with the motion vocabulary.

:class:`VLA` holds the model, its text tokenizer (with the motion tokens) and the
:class:`.vocab.MotionVocab`; the model is the plain transformers module (``vla.model``), so a
trainer, ``generate`` and exporters use it as is.

* :meth:`VLA.from_preset` builds a randomly initialised model of a preset (:mod:`.config`); the
  ``tiny`` preset trains its own text tokenizer (:mod:`.text_tokenizer`), the others take a
  checkpoint's tokenizer, or none for speed runs.
* :meth:`VLA.from_pretrained` loads a local Hugging Face-format InternVL3 checkpoint (config.json,
  safetensors, tokenizer files) -- the ``-hf`` conversion or a folder this class saved. Every
  missing, unexpected or mis-shaped tensor is an error that names them; nothing is ever silently
  random-initialised. A checkpoint without motion tokens gets them added (:mod:`.vocab`).
* :meth:`VLA.save_pretrained` writes the model (safetensors), the tokenizer and ``beingh0_vla.json``
  (motion vocabulary, preset, image handling).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import InternVLConfig, InternVLForConditionalGeneration

from ..core.errors import UserFileError, UserValueError
from ..tokenizer.layout import TokenLayout
from .config import preset as get_preset
from .config import set_attention, vla_config
from .processor import VLAProcessor
from .vocab import MOT_START, MotionVocab, add_motion_tokens, paper_layout, resize_for_motion

__all__ = ["VLA", "META_FILE", "META_VERSION"]

META_FILE = "beingh0_vla.json"
META_VERSION = 1
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


@contextmanager
def _quiet_transformers():
    """transformers prints a load report and progress bars; our own error says what matters."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was:
            hf_logging.enable_progress_bar()


def _names(keys, limit: int = 6) -> str:
    keys = sorted(str(k if not isinstance(k, tuple) else k[0]) for k in keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class VLA:
    """Model + text tokenizer + motion vocabulary (+ the preset and image handling they came with)."""

    def __init__(self, model: InternVLForConditionalGeneration, tokenizer, vocab: MotionVocab, *,
                 preset: str | None = None, max_tiles: int = 12, thumbnail: bool = True):
        self.model, self.tokenizer, self.vocab = model, tokenizer, vocab
        self.preset, self.max_tiles, self.thumbnail = preset, max_tiles, thumbnail

    @property
    def config(self) -> InternVLConfig:
        return self.model.config

    def processor(self, **kw) -> VLAProcessor:
        """The :class:`.processor.VLAProcessor` of this model (keywords override its fields)."""
        if self.tokenizer is None:
            raise UserValueError("this VLA has no text tokenizer (built for a speed run); load one with a checkpoint")
        dtype = self.model.dtype if self.model.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        kw = {"max_tiles": self.max_tiles, "thumbnail": self.thumbnail, "out_dtype": dtype, **kw}
        return VLAProcessor.for_model(self.config, self.tokenizer, self.vocab, **kw)

    # ------------------------------------------------------------------------------ building
    @classmethod
    def from_preset(cls, name: str = "tiny", *, tokenizer=None, layout: TokenLayout | None = None, seed: int = 0,
                    dtype: torch.dtype = torch.float32, device=None, attn_implementation: str = "sdpa",
                    noise: float = 0.1) -> "VLA":
        """A randomly initialised model of preset ``name`` with the motion vocabulary.

        ``tokenizer``: the text tokenizer; ``tiny`` trains its own when None; for the InternVL3 sizes
        None builds a tokenizer-less model (motion tokens after the 151,674 text ids) for speed runs.
        ``device="meta"`` builds the structure without memory (parameter counts).
        """
        p = get_preset(name)
        cfg = vla_config(name, attn_implementation=attn_implementation)
        layout = layout or paper_layout()
        if tokenizer is None and name == "tiny":
            from .text_tokenizer import tiny_tokenizer

            tokenizer = tiny_tokenizer()
        if tokenizer is not None:
            has_motion = tokenizer.convert_tokens_to_ids(MOT_START) not in (None, tokenizer.unk_token_id)
            n_text = MotionVocab.from_tokenizer(tokenizer, layout).offset if has_motion else len(tokenizer)
            if n_text > cfg.text_config.vocab_size:
                raise UserValueError(f"the tokenizer has {n_text} text tokens but preset {name} only "
                                     f"{cfg.text_config.vocab_size} embedding rows; pass the checkpoint's own tokenizer")
            vocab = add_motion_tokens(tokenizer, layout)
        else:
            vocab = MotionVocab(layout, cfg.text_config.vocab_size)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(seed)
            with torch.device(device or "cpu"):
                model = InternVLForConditionalGeneration(cfg)
        model.to(dtype)
        resize_for_motion(model, vocab, noise=noise, seed=seed)
        return cls(model, tokenizer, vocab, preset=name, max_tiles=p.max_tiles, thumbnail=p.use_thumbnail)

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path, *, dtype: torch.dtype | str | None = None, device=None,
                        attn_implementation: str = "sdpa", layout: TokenLayout | None = None,
                        noise: float = 0.1, seed: int = 0) -> "VLA":
        """Load a local HF-format InternVL3 checkpoint (or a folder :meth:`save_pretrained` wrote).

        ``dtype``: None keeps the checkpoint's dtype. ``layout``: the motion tokenizer's layout when
        the checkpoint has no motion vocabulary yet (default: the paper's 8,192 ids). Raises
        ``UserFileError`` for a missing folder or file and ``UserValueError`` naming the tensors when
        any weight is missing, unexpected or of the wrong shape.
        """
        from transformers import AutoConfig, AutoTokenizer

        root = Path(path)
        if not root.is_dir():
            raise UserFileError(f"checkpoint folder {str(root)!r} does not exist; pass a local folder with config.json, "
                                "model.safetensors and the tokenizer files (no downloads)")
        if not (root / "config.json").is_file():
            raise UserFileError(f"{root} has no config.json; is it a Hugging Face-format checkpoint folder?")
        if not any((root / f).is_file() for f in _WEIGHT_FILES):
            bins = [f.name for f in root.glob("*.bin")]
            hint = f" (found {bins}: convert them to safetensors)" if bins else ""
            raise UserFileError(f"{root} has no model.safetensors or model.safetensors.index.json{hint}")
        if not any((root / f).is_file() for f in _TOKENIZER_FILES):
            raise UserFileError(f"{root} has no tokenizer (tokenizer.json, or vocab.json + merges.txt); copy the "
                                "checkpoint's tokenizer files into it")
        raw = json.loads((root / "config.json").read_text())
        if raw.get("model_type") == "internvl_chat":
            raise UserValueError(f"{root} is an original InternVL checkpoint (model_type internvl_chat, remote code); convert "
                                 "it with transformers' models/internvl/convert_internvl_weights_to_hf.py first")
        if raw.get("model_type") != "internvl":
            raise UserValueError(f"{root}: model_type {raw.get('model_type')!r} is not an InternVL checkpoint ('internvl')")
        meta = None
        if (root / META_FILE).is_file():
            meta = json.loads((root / META_FILE).read_text())
            if meta.get("version") != META_VERSION:
                raise UserValueError(f"{root / META_FILE}: version {meta.get('version')!r} is not {META_VERSION}")
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(root)
            set_attention(config, attn_implementation)
            model, info = InternVLForConditionalGeneration.from_pretrained(
                root, config=config, output_loading_info=True, ignore_mismatched_sizes=True,
                dtype=dtype if dtype is not None else "auto", attn_implementation=attn_implementation)
            tokenizer = AutoTokenizer.from_pretrained(root)
        problems = []
        if info.get("missing_keys"):
            problems.append(f"missing {_names(info['missing_keys'])}")
        if info.get("mismatched_keys"):
            mm = sorted(info["mismatched_keys"], key=lambda k: str(k))
            shapes = [f"{k[0]} {tuple(k[1])} vs model {tuple(k[2])}" if isinstance(k, tuple) and len(k) == 3 else str(k)
                      for k in mm[:4]]
            problems.append(f"wrong shape {'; '.join(shapes)}" + (f" and {len(mm) - 4} more" if len(mm) > 4 else ""))
        if info.get("unexpected_keys"):
            problems.append(f"unexpected {_names(info['unexpected_keys'])}")
        if info.get("error_msgs"):
            problems.append("; ".join(map(str, info["error_msgs"]))[:300])
        if problems:
            raise UserValueError(f"checkpoint {root} does not match its config.json: {' | '.join(problems)}; refusing to "
                                 "initialise those weights at random (fix or re-download the checkpoint)")
        if meta is not None:
            vocab = MotionVocab.from_dict(meta["motion_vocab"])
            got = MotionVocab.from_tokenizer(tokenizer, vocab.layout)
            if got != vocab:
                raise UserValueError(f"{root}: the tokenizer's motion tokens start at {got.offset} but {META_FILE} says "
                                     f"{vocab.offset}; the folder mixes files of two models")
            rows = model.get_input_embeddings().weight.shape[0]
            if rows < vocab.stop:
                raise UserValueError(f"{root}: the model has {rows} token rows but the motion vocabulary needs {vocab.stop}")
        else:
            ctx = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
            if ctx != config.image_token_id:
                raise UserValueError(f"{root}: the tokenizer's <IMG_CONTEXT> is id {ctx} but config.json says image_token_id "
                                     f"{config.image_token_id}")
            vocab = add_motion_tokens(tokenizer, layout or paper_layout())
            resize_for_motion(model, vocab, noise=noise, seed=seed)
        if device is not None:
            model.to(device)
        m = meta or {}
        return cls(model, tokenizer, vocab, preset=m.get("preset"), max_tiles=m.get("max_tiles", 12),
                   thumbnail=m.get("thumbnail", True))

    def save_pretrained(self, path) -> Path:
        """Write model (safetensors), tokenizer and ``beingh0_vla.json`` into folder ``path``."""
        if self.tokenizer is None:
            raise UserValueError("cannot save a VLA without a text tokenizer; it could not be loaded back")
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with _quiet_transformers():
            self.model.save_pretrained(root)
            self.tokenizer.save_pretrained(root)
        meta = {"version": META_VERSION, "preset": self.preset, "max_tiles": self.max_tiles, "thumbnail": self.thumbnail,
                "motion_vocab": self.vocab.to_dict(), "template": "internvl2_5",
                "new_rows_init": "per dimension: mean + 0.1 * std * N(0, 1) of the text rows (beingh0.vla.vocab)"}
        tmp = root / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, root / META_FILE)
        return root
