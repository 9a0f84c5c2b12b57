"""The tiny preset's text tokenizer: a byte-level BPE trained on the data pipeline's own language.

A real InternVL3 checkpoint brings its Qwen2 tokenizer. The ``tiny`` preset has none (no downloads
here), so :func:`tiny_tokenizer` trains one with the ``tokenizers`` library on the instruction
templates (:data:`beingh0.data.instructions.TEMPLATES`) and the synthetic captions' phrase tables
(:mod:`beingh0.data.synth.language`), filled with the scene's colours and nouns, plus the chat
template's system prompts. Byte-level BPE (as Qwen2's) encodes any text, so words outside that
corpus still work, only with more tokens.

The result is a ``transformers.PreTrainedTokenizerFast``; saved with ``save_pretrained`` it loads
back with ``AutoTokenizer.from_pretrained(dir)`` like any checkpoint's tokenizer. Its special tokens
are :data:`.config.TINY_SPECIAL_TOKENS` at ids 0..5 (InternVL's strings: ``<|endoftext|>`` pad,
``<|im_start|>``, ``<|im_end|>`` end of turn and eos, ``<img>``, ``</img>``, ``<IMG_CONTEXT>``), and
it carries InternVL's tokenizer attributes ``start_image_token``, ``end_image_token``,
``context_image_token``. Training is deterministic (same corpus, same merges) and takes about a
second; the trained model is cached per process.
"""
from __future__ import annotations

import functools
import itertools

from transformers import PreTrainedTokenizerFast

from .config import TINY_SPECIAL_TOKENS, TINY_TEXT_VOCAB
from .template import SYSTEM_PROMPTS

__all__ = ["tiny_tokenizer", "training_corpus", "wrap_tokenizer"]

def training_corpus() -> list[str]:
    """The BPE's training text: every instruction template with its fields filled, every caption
    phrase with every colour + noun, and the system prompts (deterministic order)."""
    from ..data.instructions import TEMPLATES, duration_words, hand_words
    from ..data.synth.language import PHRASES
    from ..data.synth.scene import COLORS, NOUNS

    objects = [f"the {c} {n}" for c, n in itertools.product(COLORS, NOUNS + ("object",))]
    dirs = ("to the right", "to the left", "upward", "downward", "away from the camera", "toward the camera", "a little")
    phrases: list[str] = []
    for i, (imperative, descriptive) in enumerate(PHRASES.values()):
        for j, t in enumerate(imperative + descriptive):
            o, d = objects[(i * 7 + j) % len(objects)], objects[(i * 11 + 3 * j + 5) % len(objects)]
            for h in ("left", "right"):
                phrases.append(t.format(o=o, d=d, h=h, dir=dirs[(i + j) % len(dirs)]))
    out = list(SYSTEM_PROMPTS.values())
    k = 0
    for task, templates in TEMPLATES.items():
        for tid, t in enumerate(templates):
            for rep in range(4):
                k += 1
                ph = phrases[(k * 13) % len(phrases)]
                side = ("left", "right", "both")[(tid + rep) % 3]
                dur = duration_words(1 + (tid + rep) % 4)
                out.append(t.replace("<IMAGE>\n", "").format(instruction=ph, hand=hand_words(side), duration=dur, motion="", history="",
                                    history_duration=dur, future_duration=duration_words(1 + rep % 2)))
    # captions read "The left hand grasps the red cup." / "With the left hand, ...; with the right hand, ..."
    for i, ph in enumerate(phrases):
        hand = ("The left hand", "The right hand")[i % 2]
        out.append(f"{hand} {ph}." if i % 3 else f"With the {('left', 'right')[i % 2]} hand, {ph}.")
        out.append(ph[:1].upper() + ph[1:] + ".")
    return out


@functools.lru_cache(maxsize=1)
def _trained_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TINY_TEXT_VOCAB, special_tokens=list(TINY_SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer)
    if tok.get_vocab_size() != TINY_TEXT_VOCAB:  # the corpus is fixed in code: a bug, not a user error
        raise RuntimeError(f"the tiny BPE reached {tok.get_vocab_size()} tokens, expected {TINY_TEXT_VOCAB}; "
                           "the training corpus is too small for TINY_TEXT_VOCAB")
    return tok.to_str()


def wrap_tokenizer(tokenizer_object) -> PreTrainedTokenizerFast:
    """A ``tokenizers.Tokenizer`` with InternVL's special tokens as a transformers tokenizer."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object, pad_token="<|endoftext|>", eos_token="<|im_end|>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>"})


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh ``PreTrainedTokenizerFast`` of the tiny preset (trained once per process, then copied)."""
    from tokenizers import Tokenizer

    return wrap_tokenizer(Tokenizer.from_str(_trained_json()))
