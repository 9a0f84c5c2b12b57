"""Sequence packing for causal language models, with attention that respects sample boundaries.

Packing puts several variable-length samples into one fixed-length row (no compute spent on
padding). Three things keep each sample's loss exactly what it would be alone:

1. ``position_ids`` restart at 0 for every sample (rotary / learned positions see the same values);
2. attention never crosses a boundary: a block-diagonal causal mask, as a 4-D tensor for SDPA /
   eager attention (:meth:`PackedBatch.attention_mask_4d`), or as ``cu_seqlens`` for flash-attn's
   varlen kernels on the flattened rows (:meth:`PackedBatch.cu_seqlens`, :meth:`PackedBatch.flash_kwargs`);
3. the label of each sample's first token is ``-100``: with the causal shift (position t predicts
   token t + 1) it would be predicted from the *previous* sample's last token.

Padding at the end of a row forms its own segment (it attends to itself only, so no attention row
is empty and no NaN appears) and carries label -100.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.errors import UserValueError

__all__ = ["PackedBatch", "pack_sequences", "per_sample_losses", "attention_implementation", "IGNORE_INDEX"]

IGNORE_INDEX = -100
"""Label value that the loss ignores (``F.cross_entropy``'s and transformers' default)."""


@dataclass
class PackedBatch:
    """Rows of packed samples. All tensors are ``(R, L)``: R rows of length L."""

    input_ids: torch.Tensor
    """Token ids (padding = ``pad_id``)."""
    labels: torch.Tensor
    """Targets aligned with ``input_ids`` (the model shifts them); -100 at padding and at every
    sample's first token."""
    position_ids: torch.Tensor
    """0, 1, ... restarting at every sample (and at the padding run)."""
    segment_ids: torch.Tensor
    """Run index within the row: 0 for the row's first sample, 1 for the next, ...; padding is the last run."""
    sample_index: torch.Tensor
    """Index of the sample in the list given to :func:`pack_sequences`; -1 at padding."""

    @property
    def num_samples(self) -> int:
        return int(self.sample_index.max()) + 1 if self.sample_index.numel() else 0

    def attention_mask_4d(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Block-diagonal causal mask ``(R, 1, L, L)``: query i sees key j iff both are in the same
        segment and j <= i. Boolean (True = attend; what SDPA takes) when ``dtype`` is None, else
        additive (0 where allowed, the dtype's minimum elsewhere; what eager attention adds).
        transformers models use a 4-D ``attention_mask`` as given."""
        L = self.input_ids.shape[1]
        same = self.segment_ids[:, :, None] == self.segment_ids[:, None, :]
        causal = torch.ones(L, L, dtype=torch.bool, device=same.device).tril()
        allowed = (same & causal)[:, None]
        if dtype is None:
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed,
                                                                                          torch.finfo(dtype).min)

    def cu_seqlens(self) -> tuple[torch.Tensor, int]:
        """``(cu_seqlens, max_seqlen)`` of the rows flattened to one sequence of R * L tokens:
        int32 offsets ``[0, len_0, len_0 + len_1, ...]`` of every segment (padding runs included),
        in the layout of flash-attn's ``flash_attn_varlen_func``."""
        seg = self.segment_ids
        new = torch.ones_like(seg, dtype=torch.bool)
        new[:, 1:] = seg[:, 1:] != seg[:, :-1]  # a segment starts at every row start and every change
        starts = torch.nonzero(new.flatten()).flatten()
        total = seg.numel()
        cu = torch.cat([starts, torch.tensor([total], device=seg.device)]).to(torch.int32)
        return cu, int((cu[1:] - cu[:-1]).max()) if total else 0

    def flash_kwargs(self) -> dict:
        """Keyword arguments for a transformers model run with ``attn_implementation="flash_attention_2"``
        on the flattened rows (``input_ids.view(1, -1)``, ``position_ids.view(1, -1)``)."""
        cu, m = self.cu_seqlens()
        return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": m, "max_length_k": m}


def pack_sequences(samples, seq_len: int, pad_id: int = 0) -> PackedBatch:
    """Pack ``samples`` into rows of ``seq_len`` tokens by first fit in the given order.

    Args:
        samples: list of 1-D token-id tensors, or of dicts with ``input_ids`` and optional
            ``labels`` (1-D, same length; -100 = no loss), e.g. from an instruction template.
        seq_len: row length L; every sample must fit (at most L tokens).
        pad_id: token id of the padding.
    """
    items = []
    for i, s in enumerate(samples):
        ids = s["input_ids"] if isinstance(s, dict) else s
        ids = torch.as_tensor(ids, dtype=torch.long)
        lab = torch.as_tensor(s["labels"], dtype=torch.long) if isinstance(s, dict) and "labels" in s else ids
        if ids.ndim != 1 or lab.shape != ids.shape:
            raise UserValueError(f"sample {i}: input_ids must be 1-D and labels the same shape, got "
                                 f"{tuple(ids.shape)} and {tuple(lab.shape)}")
        if not 1 <= len(ids) <= seq_len:
            raise UserValueError(f"sample {i} has {len(ids)} tokens; each must have 1..seq_len={seq_len} "
                                 "(truncate or split long samples, or raise seq_len)")
        items.append((ids, lab))
    rows: list[list[int]] = []  # sample indices per row
    free: list[int] = []
    for i, (ids, _) in enumerate(items):
        r = next((r for r, f in enumerate(free) if f >= len(ids)), None)
        if r is None:
            rows.append([]), free.append(seq_len)
            r = len(rows) - 1
        rows[r].append(i)
        free[r] -= len(ids)
    R = len(rows)
    input_ids = torch.full((R, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((R, seq_len), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((R, seq_len), dtype=torch.long)
    segment_ids = torch.zeros((R, seq_len), dtype=torch.long)
    sample_index = torch.full((R, seq_len), -1, dtype=torch.long)
    for r, members in enumerate(rows):
        t = 0
        for seg, i in enumerate(members):
            ids, lab = items[i]
            n = len(ids)
            input_ids[r, t:t + n] = ids
            labels[r, t + 1:t + n] = lab[1:]
            position_ids[r, t:t + n] = torch.arange(n)
            segment_ids[r, t:t + n] = seg
            sample_index[r, t:t + n] = i
            t += n
        position_ids[r, t:] = torch.arange(seq_len - t)
        segment_ids[r, t:] = len(members)
    return PackedBatch(input_ids, labels, position_ids, segment_ids, sample_index)


def per_sample_losses(logits: torch.Tensor, labels: torch.Tensor, sample_index: torch.Tensor,
                      num_samples: int) -> torch.Tensor:
    """Mean next-token cross-entropy of each sample, ``(num_samples,)``.

    ``logits`` ``(R, L, V)`` predict ``labels`` ``(R, L)`` shifted by one (position t predicts
    label t + 1, as in transformers' causal LMs); ``sample_index`` ``(R, L)`` names the sample of
    every position (-1 = none). Works for packed rows and for padded one-sample-per-row batches.
    """
    lg, lb, si = logits[:, :-1], labels[:, 1:], sample_index[:, 1:]
    tok = F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float() if lg.dtype in (torch.float16, torch.bfloat16)
                          else lg.reshape(-1, lg.shape[-1]), lb.reshape(-1), ignore_index=IGNORE_INDEX,
                          reduction="none")
    keep = (lb.reshape(-1) != IGNORE_INDEX) & (si.reshape(-1) >= 0)
    idx = si.reshape(-1)[keep]
    sums = torch.zeros(num_samples, dtype=tok.dtype, device=tok.device).index_add_(0, idx, tok[keep])
    counts = torch.zeros(num_samples, dtype=tok.dtype, device=tok.device).index_add_(0, idx, torch.ones_like(tok[keep]))
    return sums / counts


def attention_implementation(device: str | torch.device = "cuda") -> str:
    """The transformers ``attn_implementation`` to use: a flash-attention backend when it imports
    and the device is a GPU (``flash_attention_4`` on Hopper/Blackwell, else ``flash_attention_2``),
    otherwise torch ``"sdpa"`` (the default; flash-attn has no wheel for this torch)."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return "sdpa"
    try:
        from transformers.utils import import_utils as iu
    except ImportError:
        return "sdpa"
    if getattr(iu, "is_flash_attn_4_available", lambda: False)() and torch.cuda.get_device_capability()[0] >= 9:
        return "flash_attention_4"
    if iu.is_flash_attn_2_available():
        return "flash_attention_2"
    return "sdpa"
