"""Token layout: (part, group, step, layer, code) <-> motion ids and their order inside a block.

One block holds one hand-second: P parts x G groups x S latent steps x L layers tokens
(Being-H0: 2 x 2 x 4 x 8 = 128). Positions are part-major, then group, then step, with the RVQ
layer innermost (coarse-to-fine codes of one latent vector stay together; the official release
flattens its (group, step, layer) codes the same way, "depth first"):

    position(part, group, step, layer) = ((part * G + group) * S + step) * L + layer

A motion id names (part, layer, code); the group is implied by the position:

    id(part, layer, code) = part * L * K + layer * K + code,   vocabulary = P * L * K

(Being-H0: 2 x 8 x 512 = 8192 ids, "part x layer x code".) The G groups of one (part, layer) use
separate codebooks but share their ids: the id space stays the paper's 8192 and decoding is still
exact, because a block's layout fixes the group of every position. Decoding checks that every id
sits at a position of its own part and layer, so a shifted or truncated block is an error, never
a silently wrong motion.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TokenLayout"]


@dataclass(frozen=True)
class TokenLayout:
    parts: int
    groups: int
    steps: int
    layers: int
    codes: int

    @classmethod
    def from_config(cls, cfg, window: int = 16) -> "TokenLayout":
        """The layout of a ``TokenizerConfig`` for ``window``-frame (padded) windows."""
        if window % cfg.downsample:
            raise ValueError(f"window {window} is not a multiple of the downsampling {cfg.downsample}")
        return cls(len(cfg.parts), cfg.groups, window // cfg.downsample, cfg.layers, cfg.codes)

    @property
    def tokens_per_block(self) -> int:
        return self.parts * self.groups * self.steps * self.layers

    @property
    def vocab_size(self) -> int:
        return self.parts * self.layers * self.codes

    def token_id(self, part, layer, code):
        """id of (part, layer, code) (ints or broadcastable tensors)."""
        return (part * self.layers + layer) * self.codes + code

    def split_id(self, ids: torch.Tensor):
        """ids -> (part, layer, code) tensors."""
        return ids // (self.layers * self.codes), (ids // self.codes) % self.layers, ids % self.codes

    def position(self, part: int, group: int, step: int, layer: int) -> int:
        return ((part * self.groups + group) * self.steps + step) * self.layers + layer

    def expected_part_layer(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(part, layer) of each of the ``tokens_per_block`` positions, as (n,) int64 tensors."""
        pos = torch.arange(self.tokens_per_block, device=device)
        return pos // (self.groups * self.steps * self.layers), pos % self.layers

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, P, G, S, L) in [0, K) -> ids (B, tokens_per_block) int64."""
        shape = (self.parts, self.groups, self.steps, self.layers)
        if codes.dim() != 5 or tuple(codes.shape[1:]) != shape:
            raise ValueError(f"codes must be (B, {', '.join(map(str, shape))}), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codes):
            raise ValueError(f"codes must lie in [0, {self.codes}), got [{int(codes.min())}, {int(codes.max())}]")
        part = torch.arange(self.parts, device=codes.device).reshape(1, -1, 1, 1, 1)
        layer = torch.arange(self.layers, device=codes.device).reshape(1, 1, 1, 1, -1)
        return self.token_id(part, layer, codes.long()).reshape(codes.shape[0], -1)

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, tokens_per_block) -> codes (B, P, G, S, L); malformed blocks raise ValueError."""
        n = self.tokens_per_block
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"ids must be a torch.Tensor of int64 motion ids, got {type(ids).__name__}")
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
        if ids.dim() == 1 and ids.numel() % n == 0 and ids.numel() > 0:
            ids = ids.reshape(-1, n)
        if ids.dim() != 2 or ids.shape[1] != n:
            raise ValueError(f"ids must be blocks of {n} tokens, shape (seconds, {n}), got {tuple(ids.shape)}; "
                             f"a block is one hand-second ({self.parts} parts x {self.groups} groups x "
                             f"{self.steps} steps x {self.layers} layers)")
        ids = ids.long()
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bool(bad.any()):
            b, p = bad.nonzero()[0].tolist()
            raise ValueError(f"motion id {int(ids[b, p])} at block {b}, position {p} is outside [0, {self.vocab_size}); "
                             "map language-model token ids back to motion ids (subtract the vocabulary offset) first")
        part, layer, code = self.split_id(ids)
        want_part, want_layer = self.expected_part_layer(ids.device)
        wrong = (part != want_part) | (layer != want_layer)
        if bool(wrong.any()):
            b, p = wrong.nonzero()[0].tolist()
            raise ValueError(f"malformed motion block {b}: position {p} expects an id of part {int(want_part[p])}, "
                             f"layer {int(want_layer[p])} (ids [{self.token_id(int(want_part[p]), int(want_layer[p]), 0)}, "
                             f"{self.token_id(int(want_part[p]), int(want_layer[p]), self.codes)})), got {int(ids[b, p])} "
                             f"(part {int(part[b, p])}, layer {int(layer[b, p])}); {int(wrong.sum())} positions are wrong")
        return code.reshape(-1, self.parts, self.groups, self.steps, self.layers)
