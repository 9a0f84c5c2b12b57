"""A tiny causal transformer, a rank-split resumable token stream and a loss for the trainer tests.

Imported by the tests (``sys.path`` holds this folder) and run as a script, also under torchrun:
``python tests/train/train_toy.py --out DIR --steps 20 ...`` trains with ``beingh0.train.fit``.
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

VOCAB, SEQ = 17, 12


class Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D)
        x = x + self.drop(self.proj(a))
        return x + self.drop(self.mlp(self.ln2(x)))


class ToyLM(nn.Module):
    """Embedding, ``layers`` pre-norm blocks (in an ``nn.ModuleList``: FSDP2 shards each), tied head."""

    def __init__(self, d: int = 16, layers: int = 2, heads: int = 2, dropout: float = 0.0):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.zeros(SEQ, d))
        self.blocks = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.checkpointing = False

    def gradient_checkpointing_enable(self):
        self.checkpointing = True

    def forward(self, ids):
        x = self.emb(ids) + self.pos[: ids.shape[1]]
        for b in self.blocks:
            x = checkpoint(b, x, use_reentrant=False) if self.checkpointing and self.training else b(x)
        return self.ln(x) @ self.emb.weight.T


def sample(seed: int, i: int) -> torch.Tensor:
    """Sample ``i``: a counting sequence mod VOCAB from a random start, random length 4..SEQ."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + i)
    n = int(torch.randint(4, SEQ + 1, (1,), generator=g))
    start = int(torch.randint(0, VOCAB, (1,), generator=g))
    return (start + torch.arange(n) * (1 + i % 3)) % VOCAB


class TokenStream:
    """Endless batches of ``batch`` padded samples for rank ``rank`` of ``world``: at global position
    P a step reads samples P + rank + world * j (j < batch), like ``ResumableLoader``; resumable."""

    def __init__(self, batch: int, rank: int = 0, world: int = 1, seed: int = 0):
        self.batch, self.rank, self.world, self.seed, self.position = batch, rank, world, seed, 0

    def __iter__(self):
        while True:
            ids = [sample(self.seed, self.position + self.rank + self.world * j) for j in range(self.batch)]
            self.position += self.batch * self.world
            x = torch.zeros(self.batch, SEQ, dtype=torch.long)
            y = torch.full((self.batch, SEQ), -100, dtype=torch.long)
            for j, s in enumerate(ids):
                x[j, : len(s)] = s
                y[j, : len(s) - 1] = s[1:]
            yield {"ids": x, "labels": y}

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, s):
        self.position = s["position"]


def lm_loss(model, batch, sleep: float = 0.0, noise: bool = False):
    """Mean cross-entropy over labelled tokens; ``noise`` scales it by draws from python's and
    numpy's global RNGs (so that a resume must restore them); ``sleep`` slows a step down."""
    if sleep:
        time.sleep(sleep)
    logits = model(batch["ids"])
    logits = logits.float() if logits.dtype == torch.bfloat16 else logits
    loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    if noise:
        loss = loss * (1 + 0.01 * (random.random() + float(np.random.rand())))
    n = int((batch["labels"] != -100).sum())
    return loss, {"targets": n, "tokens": batch["ids"].numel(), "acc": float((logits.argmax(-1) == batch["labels"]).sum()) / n}


def toy_config(steps=20, accumulate=1, lr=1e-2, parallel="auto", **kw):
    from beingh0.train import TrainConfig

    kw = {"warmup_steps": 3, "device": "cpu", "progress": False, "plots": False, "num_threads": 1,
          "peak_flops": 1e9, **kw}
    return TrainConfig(steps=steps, accumulate=accumulate, lr=lr, parallel=parallel, **kw)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8, help="global micro-batch (split over ranks)")
    p.add_argument("--accumulate", type=int, default=1)
    p.add_argument("--parallel", default="auto", help="comma-separated: one run per mode, into OUT/MODE")
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--noise", action="store_true")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--schedule", default="cosine")
    a = p.parse_args(argv)
    from beingh0.train import fit, init_distributed

    info = init_distributed("cpu")
    modes = a.parallel.split(",")
    for mode in modes:
        torch.manual_seed(0)
        model = ToyLM(dropout=a.dropout)
        data = TokenStream(a.batch // info.world_size, info.rank, info.world_size)
        fit(model, lambda m, b: lm_loss(m, b, a.sleep, a.noise), data, toy_config(a.steps, a.accumulate, a.lr, mode,
            ckpt_every=a.ckpt_every, schedule=a.schedule), a.out if len(modes) == 1 else f"{a.out}/{mode}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
