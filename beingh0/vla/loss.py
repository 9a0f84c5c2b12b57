"""The pretraining loss: next-token cross-entropy over target tokens, with Being-H0's two tricks.

* **Vocabulary-level logit masking** (paper section 4.1.5): at a position whose label is a motion
  id, with probability ``mask_prob``, every logit outside the motion ids is excluded (set to -inf)
  before the cross-entropy, so the gradient there only sorts motion ids among themselves.
* **Token-level loss filtering**: of the per-token losses (after masking) of a micro-batch, keep
  those between the ``filter_low`` and ``filter_high`` percentiles (``torch.quantile`` with
  ``interpolation="lower"`` / ``"higher"``: both thresholds are losses of real tokens, both ends
  inclusive, so at least one token is kept whenever low <= high) and average over the kept tokens only.

The mean is over kept **target** tokens (labels != -100 after the causal shift), never diluted by
ignored positions (the official release's bug). ``metrics["targets"]`` is that count, so
:func:`beingh0.train.fit` weights micro-batches and ranks by it.

Memory: the output head is the largest activation of this model (tokens x vocabulary logits).
:func:`pretrain_loss` never lets transformers build the full logits: it runs the inner model for
the last hidden states, keeps only the rows that have a target, and hands them with the head's
weight to the fused op ``beingh0.ops.fused_linear_cross_entropy`` (chunked: the (N, V) logits are
never materialised), then :func:`beingh0.ops.ce.masked_ce_loss` (token-level filtering, mean over
kept target tokens only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import validate_config
from ..ops.ce import IGNORE_INDEX, fused_linear_cross_entropy, masked_ce_loss, motion_restrict

__all__ = ["LossConfig", "pretrain_loss", "PretrainModel", "IGNORE_INDEX"]



@dataclass(frozen=True)
class LossConfig:
    """The pretraining loss's settings (the paper's values were lost in its text; these are ours)."""

    mask_prob: float = field(default=0.5, metadata={"ge": 0.0, "le": 1.0})
    """Vocabulary-level logit masking: probability that a motion-label position sees only the motion ids' logits."""
    filter_low: float = field(default=0.0, metadata={"ge": 0.0, "le": 100.0})
    """Token-level loss filtering: drop per-token losses below this percentile (0 = keep all)."""
    filter_high: float = field(default=100.0, metadata={"ge": 0.0, "le": 100.0})
    """Token-level loss filtering: drop per-token losses above this percentile (100 = keep all)."""

    def __post_init__(self):
        validate_config(self)
        if self.filter_low > self.filter_high:
            from ..core.errors import UserValueError

            raise UserValueError(f"filter_low={self.filter_low} must be <= filter_high={self.filter_high}")

    @property
    def filter(self) -> tuple[float, float] | None:
        return None if (self.filter_low, self.filter_high) == (0.0, 100.0) else (self.filter_low, self.filter_high)


# ------------------------------------------------------------------------------ the pieces
# The per-token loss, the masking draw and the filtered mean are the fused op's (beingh0.ops.ce):
# one implementation, whose reference materialises the logits and whose production path never does.


# ------------------------------------------------------------------------------ the loss
def _inner(model):
    """(backbone returning hidden states, output head) of an ``InternVLForConditionalGeneration``."""
    return model.model, model.lm_head


def pretrain_loss(model, batch: dict, cfg: LossConfig, *, motion_range: tuple[int, int],
                  generator: torch.Generator | None = None, train: bool | None = None) -> tuple[torch.Tensor, dict]:
    """Loss and metrics of one micro-batch for :func:`beingh0.train.fit` (see the module docstring).

    Args:
        model: an ``InternVLForConditionalGeneration`` (the bare module; under DDP/FSDP call this from
            a wrapper's forward: :class:`PretrainModel`).
        batch: ``input_ids``, ``labels`` (aligned with ``input_ids``: HF convention, shifted here),
            ``attention_mask`` (2-D padding mask, or 4-D for packed rows), optional ``pixel_values``,
            ``position_ids``.
        motion_range: ``[lo, hi)`` token ids of the motion ids (``MotionVocab.offset``, ``+ num_motion``).
        train: apply masking and filtering (default: ``model.training``); evaluation uses neither.

    Metrics: ``targets`` (kept target tokens: the loss's denominator), ``tokens`` (non-padding input
    tokens), ``label_tokens`` (targets before filtering), ``motion_targets`` and ``motion_acc``
    (argmax over the whole vocabulary equals the motion label; unmasked logits), ``masked`` (motion
    positions restricted this step).
    """
    train = model.training if train is None else train
    backbone, head = _inner(model)
    ids, labels = batch["input_ids"], batch["labels"]
    kw = {k: batch[k] for k in ("attention_mask", "pixel_values", "position_ids") if batch.get(k) is not None}
    hidden = backbone(input_ids=ids, use_cache=False, **kw).last_hidden_state      # (B, L, H), no logits
    targets = labels[:, 1:]
    rows = targets != IGNORE_INDEX
    h = hidden[:, :-1][rows]                                                        # (N, H): target rows only
    t = targets[rows]
    lo, hi = motion_range
    restrict = motion_restrict(t, motion_range, cfg.mask_prob, generator) if train and cfg.mask_prob > 0 else None
    per_token = fused_linear_cross_entropy(h, head.weight, t, restrict=restrict,
                                           restrict_range=(lo, hi) if restrict is not None else None)
    loss, n_kept = masked_ce_loss(per_token, t, cfg.filter if train else None)
    with torch.no_grad():
        is_motion = (t >= lo) & (t < hi)
        n_motion = int(is_motion.sum())
        acc = 0.0
        if n_motion:  # a no-grad pass of the head over the motion rows only, in chunks
            hits = 0
            hm, tm = h[is_motion], t[is_motion]
            for a in range(0, hm.shape[0], 1024):
                hits += int((F.linear(hm[a:a + 1024], head.weight).argmax(-1) == tm[a:a + 1024]).sum())
            acc = hits / n_motion
    if "attention_mask" in batch and batch["attention_mask"] is not None and batch["attention_mask"].dim() == 2:
        n_tokens = int(batch["attention_mask"].sum())
    elif "sample_index" in batch:
        n_tokens = int((batch["sample_index"] >= 0).sum())
    else:
        n_tokens = int(ids.numel())
    metrics = {"targets": int(n_kept), "tokens": n_tokens, "label_tokens": float(t.numel()),
               "motion_targets": float(n_motion), "motion_acc": float(acc),
               "masked": float(0 if restrict is None else int(restrict.sum()))}
    return loss, metrics


class PretrainModel(nn.Module):
    """What :func:`beingh0.train.fit` trains: the VLA's transformers model, with :func:`pretrain_loss`
    inside ``forward`` so that DDP's gradient hooks and FSDP2's parameter gathering see the head too.
    ``forward(batch) -> (loss, metrics)``; ``self.vla`` is the plain ``InternVLForConditionalGeneration``."""

    def __init__(self, vla_model: nn.Module, cfg: LossConfig, motion_range: tuple[int, int]):
        super().__init__()
        self.vla, self.cfg, self.motion_range = vla_model, cfg, tuple(int(v) for v in motion_range)

    def forward(self, batch: dict, train: bool | None = None):
        return pretrain_loss(self.vla, batch, self.cfg, motion_range=self.motion_range, train=train)

    def gradient_checkpointing_enable(self, **kw):
        self.vla.gradient_checkpointing_enable(**kw)


def fit_loss(model, batch):
    """The ``loss_fn`` for :func:`beingh0.train.fit` with a (possibly wrapped) :class:`PretrainModel`."""
    return model(batch)
