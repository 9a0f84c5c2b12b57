"""Logits processors of the three decoding modes (paper section 4.1.5; ENGINEERING.md section 4).

All are ``transformers.LogitsProcessor`` subclasses: they work inside ``model.generate`` (pass them
in ``logits_processor=``) and in :func:`beingh0.vla.generate.generate`'s own step loop. Each call
costs O(batch x vocabulary) and does no Python work over the sequence: the position inside the
answer is the number of tokens generated so far (``input_ids.shape[1]`` minus the prompt length,
remembered at the first call), so a block position is one integer division.

* **free** decoding uses no processor; its blocks are parsed leniently afterwards
  (:func:`beingh0.vla.blocks.parse_blocks`, invalid blocks counted, never raised).
* **block-formatted**: :class:`BlockFormatLogitsProcessor` -- the answer is exactly ``num_blocks``
  blocks ``<MOT>`` + ``tokens_per_block`` motion ids + ``</MOT>`` and then the end token. At each
  position only the token ids the layout allows there keep their logit (``<MOT>``, the ids of the
  (part, layer) of the position -- :meth:`beingh0.vla.vocab.MotionVocab.allowed_ranges` -- or
  ``</MOT>``); every other logit is ``-inf``. No end token before the last block; after it only the
  end token. Every block is valid by construction.
* **soft-formatted**: the same constraint (:class:`BlockFormatLogitsProcessor`); the feedback of
  re-quantized blocks into the context is a loop feature (it rewrites the KV cache), done by
  :func:`beingh0.vla.generate.generate` with ``mode="soft"``, not by a logits processor.

The rows of a batch generate in lock-step (left padding), so the answer position is the same for
all rows; ``num_blocks`` may differ per row (a row past its blocks may only end).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from ..core.errors import UserValueError
from .vocab import MotionVocab

__all__ = ["BlockFormatLogitsProcessor", "block_allowed_reference"]


class BlockFormatLogitsProcessor(LogitsProcessor):
    """Force ``num_blocks`` well-formed motion blocks, then ``eos_token_id`` (see the module docstring).

    Args:
        vocab: the model's :class:`MotionVocab`.
        num_blocks: blocks to generate: an int for every row, or one per batch row.
        eos_token_id: the token that ends the answer (``<|im_end|>`` for our chat template).
        prompt_length: length of ``input_ids`` at the first generation step (None: taken from the first
            call, which is right for ``model.generate`` and for our loop).
    """

    def __init__(self, vocab: MotionVocab, num_blocks: int | Sequence[int] | torch.Tensor, eos_token_id: int,
                 prompt_length: int | None = None):
        self.vocab = vocab
        nb = torch.as_tensor(num_blocks, dtype=torch.long).reshape(-1)
        if nb.numel() == 0 or bool((nb < 0).any()):
            raise UserValueError(f"num_blocks must be >= 0 (one int, or one per row), got {nb.tolist()}")
        self.num_blocks = nb
        self.eos_token_id = int(eos_token_id)
        self.prompt_length = prompt_length
        self._ranges = vocab.allowed_ranges()   # (block_len, 2) [lo, hi)
        self._cache: dict = {}

    def reset(self) -> None:
        """Forget the prompt length (reuse the processor for another generation)."""
        self.prompt_length = None

    def step_of(self, input_ids: torch.Tensor) -> int:
        """Tokens generated so far for ``input_ids`` (the whole sequence so far)."""
        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        return int(input_ids.shape[1]) - self.prompt_length

    def bounds(self, step: int, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) (B,) token-id range allowed at answer position ``step`` for each row."""
        key = (device, batch)
        if key not in self._cache:
            nb = self.num_blocks.to(device)
            self._cache[key] = (self._ranges.to(device), nb.expand(batch) if nb.numel() == 1 else nb)
        ranges, nb = self._cache[key]
        if nb.shape[0] != batch:
            raise UserValueError(f"the processor was built for {nb.shape[0]} rows, got a batch of {batch}")
        L = self.vocab.block_len
        block, pos = divmod(step, L)
        inside = block < nb
        lo = torch.where(inside, ranges[pos, 0], self.eos_token_id)
        hi = torch.where(inside, ranges[pos, 1], self.eos_token_id + 1)
        return lo, hi

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        B, V = scores.shape
        lo, hi = self.bounds(self.step_of(input_ids), B, scores.device)
        ids = torch.arange(V, device=scores.device)
        allowed = (ids >= lo[:, None]) & (ids < hi[:, None])
        return scores.masked_fill(~allowed, float("-inf"))


def block_allowed_reference(vocab: MotionVocab, step: int, num_blocks: int, eos_token_id: int, vocab_size: int) -> list[int]:
    """The token ids a block-formatted decoder may emit at answer position ``step`` (plain Python,
    for tests): ``<MOT>``, the ids of the layout's (part, layer) at the position, ``</MOT>``, or the end
    token once the blocks are done."""
    L = vocab.block_len
    b, pos = divmod(step, L)
    if b >= num_blocks:
        return [eos_token_id]
    if pos == 0:
        return [vocab.mot_start]
    if pos == L - 1:
        return [vocab.mot_end]
    lay = vocab.layout
    p = pos - 1
    part = p // (lay.groups * lay.steps * lay.layers)
    layer = p % lay.layers
    first = vocab.offset + (part * lay.layers + layer) * lay.codes
    return [t for t in range(first, first + lay.codes) if t < vocab_size]
