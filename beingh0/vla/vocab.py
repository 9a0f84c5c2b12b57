"""The motion vocabulary: motion ids as language-model tokens, in one place.

Layout of the language model's vocabulary (``V`` text tokens, ``N`` motion ids, 8,192 for the
paper's tokenizer: :class:`beingh0.tokenizer.TokenLayout`, part x layer x code)::

    token id      0 .. V-1          text (the checkpoint's tokenizer, image tokens included)
    token id      V + k             motion id k, k in [0, N)          string "<motion_id_k>"
    token id      V + N             <MOT>   opens a block
    token id      V + N + 1         </MOT>  closes a block

``offset = V`` is normally ``len(tokenizer)`` when the motion tokens are added. One block holds one
(second, hand): ``<MOT>`` + ``tokens_per_block`` (128) motion tokens in the layout's position order
+ ``</MOT>``; blocks follow second-major, left before right (ENGINEERING.md section 4).

:class:`MotionVocab` is the only mapping between token ids and motion ids (vectorised both ways,
errors name the first offending position); :meth:`MotionVocab.allowed_ranges` gives, for each
position of a block, the token ids a block-formatted decoder may emit there.

New embedding rows (:func:`init_new_rows`): every new row of the input embedding and of the
(untied) output head is drawn per dimension as ``mean_d + noise * std_d * N(0, 1)`` with the mean
and standard deviation of the existing text rows (``noise = 0.1`` by default). Why:

* the mean puts each new token's logit at the average logit of the pretrained vocabulary, so
  adding 8,194 rows does not swing a pretrained model's predictions (a default random row has
  another scale than trained rows and can grab or lose arbitrary probability mass);
* noise scaled to each dimension's spread keeps the rows inside the distribution the pretrained
  layers have seen;
* the noise breaks the symmetry between the new tokens so that they are told apart from the first
  step (transformers' ``mean_resizing`` draws from N(mean, 1e-9 x covariance): its rows differ by
  about 3e-5 of the text rows' spread, practically one vector 8,194 times).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import UserValueError
from ..tokenizer.config import TokenizerConfig
from ..tokenizer.layout import TokenLayout

__all__ = ["MotionVocab", "MOT_START", "MOT_END", "motion_token", "paper_layout", "add_motion_tokens",
           "resize_for_motion", "init_new_rows", "VOCAB_VERSION"]

MOT_START, MOT_END = "<MOT>", "</MOT>"
VOCAB_VERSION = 1


def motion_token(k: int) -> str:
    """The token string of motion id ``k``."""
    return f"<motion_id_{k}>"


def paper_layout() -> TokenLayout:
    """Being-H0's token layout: 2 parts x 2 groups x 4 steps x 8 layers, 512 codes (8,192 ids)."""
    return TokenLayout.from_config(TokenizerConfig.preset("paper"))


def _as_long(name: str, x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be integer ids, got dtype {t.dtype}")
    return t.long()


@dataclass(frozen=True)
class MotionVocab:
    """Where the motion tokens sit in the language model's vocabulary."""

    layout: TokenLayout
    offset: int
    """Token id of motion id 0 (the size of the text vocabulary before the motion tokens)."""

    @property
    def num_motion(self) -> int:
        return self.layout.vocab_size

    @property
    def mot_start(self) -> int:
        return self.offset + self.num_motion

    @property
    def mot_end(self) -> int:
        return self.offset + self.num_motion + 1

    @property
    def stop(self) -> int:
        """One past the last token id of the motion vocabulary (the vocabulary size it needs)."""
        return self.offset + self.num_motion + 2

    @property
    def block_len(self) -> int:
        """Tokens of one block, ``<MOT>`` and ``</MOT>`` included (130)."""
        return self.layout.tokens_per_block + 2

    def tokens(self) -> list[str]:
        """The token strings in id order: the motion ids, then ``<MOT>``, ``</MOT>``."""
        return [motion_token(k) for k in range(self.num_motion)] + [MOT_START, MOT_END]

    # ---------------------------------------------------------------------------- id mapping
    def is_motion(self, token_ids) -> torch.Tensor:
        """Bool tensor: which token ids are motion ids (not ``<MOT>``/``</MOT>``)."""
        t = _as_long("token_ids", token_ids)
        return (t >= self.offset) & (t < self.offset + self.num_motion)

    def to_llm(self, motion_ids) -> torch.Tensor:
        """Motion ids (any shape) -> token ids (int64)."""
        m = _as_long("motion_ids", motion_ids)
        bad = (m < 0) | (m >= self.num_motion)
        if bool(bad.any()):
            i = bad.flatten().nonzero()[0].item()
            raise UserValueError(f"motion id {int(m.flatten()[i])} at flat index {i} is outside [0, {self.num_motion}); "
                                 "pass the motion tokenizer's ids, not language-model token ids")
        return m + self.offset

    def to_motion(self, token_ids) -> torch.Tensor:
        """Token ids (any shape) that are all motion tokens -> motion ids (int64)."""
        t = _as_long("token_ids", token_ids)
        bad = ~self.is_motion(t)
        if bool(bad.any()):
            i = bad.flatten().nonzero()[0].item()
            raise UserValueError(f"token id {int(t.flatten()[i])} at flat index {i} is not a motion token (motion tokens are "
                                 f"[{self.offset}, {self.offset + self.num_motion})); strip <MOT>/</MOT> and text first")
        return t - self.offset

    # ---------------------------------------------------------------------------- blocks
    def encode_blocks(self, blocks) -> torch.Tensor:
        """(n, tokens_per_block) motion ids, one block per (second, hand) -> (n, block_len) token ids
        ``<MOT> ids </MOT>``. A block that does not follow the layout (an id of the wrong part or
        layer at a position) is an error."""
        b = _as_long("blocks", blocks)
        if b.dim() == 1:
            b = b.reshape(-1, self.layout.tokens_per_block) if b.numel() % self.layout.tokens_per_block == 0 else b[None]
        try:
            self.layout.ids_to_codes(b)  # validates shape, range and (part, layer) per position
        except ValueError as e:
            raise UserValueError(str(e)) from None
        n = b.shape[0]
        return torch.cat([torch.full((n, 1), self.mot_start), b + self.offset, torch.full((n, 1), self.mot_end)], 1)

    def decode_blocks(self, token_ids) -> torch.Tensor:
        """Token ids of whole blocks ((n * block_len,) or (n, block_len)) -> (n, tokens_per_block) motion ids."""
        t = _as_long("token_ids", token_ids)
        if t.numel() % self.block_len:
            raise UserValueError(f"{t.numel()} tokens are not whole blocks of {self.block_len} (<MOT> + "
                                 f"{self.layout.tokens_per_block} motion tokens + </MOT>)")
        t = t.reshape(-1, self.block_len)
        framing = (t[:, 0] != self.mot_start) | (t[:, -1] != self.mot_end)
        if bool(framing.any()):
            i = int(framing.nonzero()[0])
            raise UserValueError(f"block {i} is not framed by <MOT> ({self.mot_start}) ... </MOT> ({self.mot_end}): "
                                 f"starts with {int(t[i, 0])}, ends with {int(t[i, -1])}")
        ids = self.to_motion(t[:, 1:-1])
        try:
            self.layout.ids_to_codes(ids)
        except ValueError as e:
            raise UserValueError(str(e)) from None
        return ids

    def allowed_ranges(self, device=None) -> torch.Tensor:
        """(block_len, 2) int64 ``[lo, hi)`` token ids allowed at each position of a block: ``<MOT>``
        at 0, then the ids of the (part, layer) the layout puts at each position, ``</MOT>`` last."""
        part, layer = self.layout.expected_part_layer(device)
        lo = self.offset + self.layout.token_id(part, layer, 0)
        inner = torch.stack([lo, lo + self.layout.codes], 1)
        first = torch.tensor([[self.mot_start, self.mot_start + 1]], device=device)
        last = torch.tensor([[self.mot_end, self.mot_end + 1]], device=device)
        return torch.cat([first, inner, last]).long()

    def allowed_mask(self, positions, vocab_size: int) -> torch.Tensor:
        """Bool ``(len(positions), vocab_size)``: the tokens allowed at these block positions."""
        pos = _as_long("positions", positions).reshape(-1)
        if pos.numel() and (int(pos.min()) < 0 or int(pos.max()) >= self.block_len):
            raise UserValueError(f"block positions must lie in [0, {self.block_len}), got {pos.tolist()[:8]}")
        if vocab_size < self.stop:
            raise UserValueError(f"vocab_size {vocab_size} is smaller than the motion vocabulary's end {self.stop}")
        r = self.allowed_ranges(pos.device)[pos]
        ids = torch.arange(vocab_size, device=pos.device)
        return (ids >= r[:, :1]) & (ids < r[:, 1:])

    # ---------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        L = self.layout
        return {"version": VOCAB_VERSION, "offset": self.offset, "mot_start": self.mot_start, "mot_end": self.mot_end,
                "layout": {"parts": L.parts, "groups": L.groups, "steps": L.steps, "layers": L.layers, "codes": L.codes},
                "token_format": motion_token(0).replace("0", "{k}"), "block": f"{MOT_START} + {L.tokens_per_block} ids + {MOT_END}"}

    @classmethod
    def from_dict(cls, d: dict) -> "MotionVocab":
        if d.get("version") != VOCAB_VERSION:
            raise UserValueError(f"motion vocabulary version {d.get('version')!r} is not {VOCAB_VERSION}; re-save the model "
                                 "with this beingh0 version")
        return cls(TokenLayout(**d["layout"]), int(d["offset"]))

    @classmethod
    def from_tokenizer(cls, tokenizer, layout: TokenLayout) -> "MotionVocab":
        """The vocabulary of a tokenizer that already holds the motion tokens (checks they are contiguous)."""
        offset = tokenizer.convert_tokens_to_ids(motion_token(0))
        if not isinstance(offset, int) or offset == tokenizer.unk_token_id:
            raise UserValueError(f"the tokenizer has no motion tokens ({motion_token(0)!r}); add them with add_motion_tokens")
        vocab = cls(layout, offset)
        got = torch.tensor([-1 if i is None else i for i in tokenizer.convert_tokens_to_ids(vocab.tokens())])
        want = torch.arange(vocab.offset, vocab.stop)
        if not torch.equal(got, want):
            i = int((got != want).nonzero()[0])
            raise UserValueError(f"the tokenizer's motion tokens are not contiguous: {vocab.tokens()[i]!r} has id {int(got[i])}, "
                                 f"expected {int(want[i])}; the tokenizer does not match a {layout.vocab_size}-id motion layout")
        return vocab


def add_motion_tokens(tokenizer, layout: TokenLayout | None = None) -> MotionVocab:
    """Add the motion tokens, ``<MOT>`` and ``</MOT>`` to ``tokenizer`` (in place, as special tokens, at
    ids ``len(tokenizer)`` ...) unless it has them already; return their :class:`MotionVocab`."""
    from tokenizers import AddedToken

    layout = layout or paper_layout()
    if tokenizer.convert_tokens_to_ids(MOT_START) not in (None, tokenizer.unk_token_id):
        return MotionVocab.from_tokenizer(tokenizer, layout)
    vocab = MotionVocab(layout, len(tokenizer))
    tokenizer.add_tokens([AddedToken(s, special=True, normalized=False) for s in vocab.tokens()], special_tokens=True)
    return MotionVocab.from_tokenizer(tokenizer, layout)


@torch.no_grad()
def _row_stats(weight: torch.Tensor, n: int, chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (float64) of rows [0, n), in chunks (no float64 copy of the matrix)."""
    s = torch.zeros(weight.shape[1], dtype=torch.float64, device=weight.device)
    s2 = torch.zeros_like(s)
    for a in range(0, n, chunk):
        x = weight[a:min(n, a + chunk)].to(torch.float64)
        s += x.sum(0)
        s2 += (x * x).sum(0)
    mean = s / n
    var = (s2 / n - mean * mean).clamp_min(0) * (n / max(n - 1, 1))
    return mean, var.sqrt()


@torch.no_grad()
def init_new_rows(weight: torch.Tensor, n_ref: int, rows: slice, noise: float = 0.1,
                  generator: torch.Generator | None = None) -> None:
    """Set ``weight[rows]`` to ``mean + noise * std * N(0, 1)`` per dimension, with the mean and std of
    ``weight[:n_ref]`` (the module docstring says why). Meta tensors are left alone."""
    if weight.device.type == "meta":
        return
    if n_ref < 2:
        raise ValueError(f"need at least two reference rows, got {n_ref}")
    mean, std = _row_stats(weight, n_ref)
    n = len(range(*rows.indices(weight.shape[0])))
    eps = torch.randn(n, weight.shape[1], dtype=torch.float64, generator=generator).to(weight.device)
    weight[rows] = (mean + noise * std * eps).to(weight.dtype)


def resize_for_motion(model, vocab: MotionVocab, noise: float = 0.1, seed: int = 0) -> None:
    """Grow the input embedding and the untied output head of ``model`` (a transformers model) to hold
    ``vocab`` and initialise the motion rows by :func:`init_new_rows` from the text rows."""
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < vocab.stop:
        model.resize_token_embeddings(vocab.stop, mean_resizing=False)
    # Rows past the text vocabulary (a checkpoint's padding rows) become motion rows. Text tokens the
    # checkpoint had no row for (a tokenizer longer than the embedding) get the same rule.
    n_ref = min(rows, vocab.offset)
    g = torch.Generator().manual_seed(seed)
    new = slice(n_ref, vocab.stop)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    init_new_rows(emb.weight, n_ref, new, noise, g)
    if head is not None and head.weight is not emb.weight:
        init_new_rows(head.weight, n_ref, new, noise, g)
