"""Grouped residual vector quantization (GRQ) with EMA codebooks, k-means init and dead-code restart.

Shapes: a latent batch x is (N, G * Dg): N vectors, G channel groups of Dg channels. Codebooks are
(G, L, K, Dg): one codebook of K codes per (group, layer). Group g's slice is quantized by an
L-layer residual VQ (paper eq. 3-4):

    r_0 = x_g;  c_l = argmin_k ||r_l - C[g, l, k]||^2;  r_{l+1} = r_l - C[g, l, c_l];
    q_g = sum_l C[g, l, c_l]

The code search (encode -> indices) is the single function ``quantize_indices``, which runs the
fused ``beingh0.ops.grq.grq_encode`` op (C++ on CPU, CUDA/Triton on GPU, never an N x K distance
matrix); training uses it too and only adds the EMA statistics, k-means init and restart on top
(in torch: per step they cost O(N G L Dg), against the search's O(N G L K Dg)).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.grq import GRQCodebooks, grq_encode, prepare_codebooks

__all__ = ["quantize_indices", "lookup_codes", "code_stats", "GroupedResidualVQ"]


def _check_quantize_args(x, codebooks) -> None:
    """What ``quantize_indices`` asks beyond ``grq_encode``'s own checks: one (N, G*Dg) batch and one
    dtype for x and the codebooks (types, non-empty codebooks and devices: ``grq_encode``)."""
    if not (isinstance(x, torch.Tensor) and isinstance(codebooks, torch.Tensor) and codebooks.dim() == 4):
        return
    D = codebooks.shape[0] * codebooks.shape[3]
    if x.dim() != 2 or x.shape[1] != D:
        raise ValueError(f"x must be (N, G*Dg) = (N, {D}) for codebooks {tuple(codebooks.shape)}, got {tuple(x.shape)}")
    if x.dtype != codebooks.dtype:
        raise TypeError(f"x and codebooks must share one floating dtype, got {x.dtype} and {codebooks.dtype}")


def quantize_indices(x: torch.Tensor, codebooks: torch.Tensor, backend=None) -> torch.Tensor:
    """Grouped residual VQ code search: x (N, G*Dg), codebooks (G, L, K, Dg) -> codes (N, G, L) int64.

    Nearest code by squared L2 distance (ties go to the lowest index), then the chosen code is
    subtracted from the residual before the next layer. No gradient flows. Runs the fused
    ``beingh0.ops.grq.grq_encode`` kernel for the device (C++ on CPU, CUDA/Triton on GPU; float64
    inputs use its plain-torch reference); ``backend`` (or ``$BEINGH0_BACKEND``) forces one.
    """
    _check_quantize_args(x, codebooks)
    return grq_encode(x, codebooks, backend=backend).codes


def lookup_codes(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Per-layer code vectors: codes (N, G, L) -> (N, G, L, Dg). Sum over L and flatten G for q."""
    G, L, K, Dg = codebooks.shape
    if codes.dim() != 3 or tuple(codes.shape[1:]) != (G, L):
        raise ValueError(f"codes must be (N, {G}, {L}) for codebooks {tuple(codebooks.shape)}, got {tuple(codes.shape)}")
    if codes.dtype != torch.int64:
        raise TypeError(f"codes must be int64, got {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= K):
        raise ValueError(f"codes must lie in [0, {K}), got range [{int(codes.min())}, {int(codes.max())}]")
    g = torch.arange(G, device=codes.device)[None, :, None]
    l = torch.arange(L, device=codes.device)[None, None, :]
    return codebooks[g, l, codes]


def code_stats(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Usage counts (..., K) -> (utilisation (...,) = fraction of codes used at least once,
    perplexity (...,) = exp(entropy of the usage distribution), between 1 and K)."""
    counts = counts.double()
    total = counts.sum(-1, keepdim=True)
    p = counts / total.clamp_min(1.0)
    ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
    util = (counts > 0).double().mean(-1)
    return util, ent.exp()


def _kmeans(x: torch.Tensor, k: int, iters: int) -> torch.Tensor:
    """Lloyd's k-means on x (N, D) -> (k, D) centres; seeds drawn with torch's global RNG.

    With fewer points than codes the seeds are drawn with replacement (plus tiny noise so that
    duplicated codes part ways); empty clusters keep their previous centre.
    """
    N = x.shape[0]
    if N >= k:
        centres = x[torch.randperm(N, device=x.device)[:k]].clone()
    else:
        centres = x[torch.randint(0, N, (k,), device=x.device)].clone()
        centres += 1e-3 * x.std().clamp_min(1e-6) * torch.randn_like(centres)
    for _ in range(iters):
        idx = quantize_indices(x, centres[None, None])[:, 0, 0]
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        cnt = torch.bincount(idx, minlength=k).to(x.dtype)
        centres = torch.where(cnt[:, None] > 0, sums / cnt.clamp_min(1)[:, None], centres)
    return centres


class GroupedResidualVQ(nn.Module):
    """GRQ with EMA codebooks (no gradient to the codebooks; the encoder gets the straight-through
    gradient and the commitment loss).

    A training step is ``forward`` (records code counts and residual sums) then, after the optimizer
    step, :meth:`update` (EMA, usage, restart). Buffers (all saved, so a checkpoint resumes exactly): ``codebooks`` (G, L, K, Dg), ``ema_count``
    (G, L, K), ``ema_sum`` (G, L, K, Dg), ``last_used`` (G, L, K) step of last use, ``usage``
    (G, L, K) code counts since ``reset_usage()``, ``restarts`` (G, L) codes restarted since
    ``reset_usage()``, ``step`` and ``initialized``.
    """

    def __init__(self, groups: int, layers: int, codes: int, group_dim: int, *, ema_decay: float = 0.99,
                 kmeans_init: bool = True, kmeans_iters: int = 10, restart_after: int = 50, eps: float = 1e-5):
        super().__init__()
        self.groups, self.layers, self.codes, self.group_dim = groups, layers, codes, group_dim
        self.ema_decay, self.kmeans_init, self.kmeans_iters = float(ema_decay), kmeans_init, kmeans_iters
        self.restart_after, self.eps = restart_after, eps
        shape = (groups, layers, codes)
        self.register_buffer("codebooks", torch.randn(*shape, group_dim) * (1.0 / math.sqrt(group_dim)))
        self.register_buffer("ema_count", torch.ones(shape))
        self.register_buffer("ema_sum", self.codebooks.clone())
        self.register_buffer("last_used", torch.zeros(shape, dtype=torch.int64))
        self.register_buffer("usage", torch.zeros(shape, dtype=torch.int64))
        self.register_buffer("restarts", torch.zeros(groups, layers, dtype=torch.int64))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self._pending = None    # statistics of the training forwards since the last update()

    @property
    def dim(self) -> int:
        return self.groups * self.group_dim

    def prepared(self) -> GRQCodebooks:
        """The codebooks prepared for ``grq_encode`` (float32 copy, norms, CPU packing), cached until
        they change (training updates them in place, ``.to()`` replaces them)."""
        p = getattr(self, "_prepared", None)
        if p is None or p.source is not self.codebooks or p.version != self.codebooks._version:
            p = prepare_codebooks(self.codebooks)
            self._prepared = p
        return p

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, G*Dg) -> codes (N, G, L) int64 (the inference path; codebooks prepared once)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"quantizer input must be (N, {self.dim}), got {tuple(x.shape)}")
        return grq_encode(x.detach(), self.prepared()).codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (N, G, L) -> quantized latents (N, G*Dg)."""
        return lookup_codes(codes, self.codebooks).sum(2).reshape(codes.shape[0], self.dim)

    def reset_usage(self) -> None:
        self.usage.zero_()
        self.restarts.zero_()

    def usage_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(utilisation, perplexity), each (G, L), of the codes counted since ``reset_usage()``."""
        return code_stats(self.usage)

    # -- training ------------------------------------------------------------------------------
    @torch.no_grad()
    def _init_kmeans(self, x: torch.Tensor) -> None:
        N = x.shape[0]
        r = x.reshape(N, self.groups, self.group_dim).float()
        for g in range(self.groups):
            res = r[:, g]
            for layer in range(self.layers):
                c = _kmeans(res, self.codes, self.kmeans_iters)
                self.codebooks[g, layer] = c
                idx = quantize_indices(res, c[None, None])[:, 0, 0]
                res = res - c[idx]
        self.ema_sum.copy_(self.codebooks)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _record(self, residuals: torch.Tensor, codes: torch.Tensor) -> None:
        """Add a training batch's code counts and residual sums to the pending statistics that
        :meth:`update` applies. residuals (N, G, L, Dg): the input each layer quantized; codes (N, G, L)."""
        G, L, K, Dg = self.codebooks.shape
        flat = (torch.arange(G * L, device=codes.device).reshape(1, G, L) * K + codes).reshape(-1)
        counts = torch.bincount(flat, minlength=G * L * K).reshape(G, L, K).to(self.ema_count.dtype)
        sums = torch.zeros(G * L * K, Dg, dtype=self.ema_sum.dtype, device=codes.device)
        sums.index_add_(0, flat, residuals.reshape(-1, Dg).to(sums.dtype))
        p = self._pending
        if p is None:
            self._pending = {"counts": counts, "sums": sums.reshape(G, L, K, Dg), "residuals": [residuals]}
        else:
            p["counts"] += counts
            p["sums"] += sums.reshape(G, L, K, Dg)
            p["residuals"].append(residuals)

    @torch.no_grad()
    def update(self) -> bool:
        """Apply the statistics recorded by the training forward passes since the last call (one
        optimizer step's micro-batches): EMA update of the codebooks, usage counts, dead-code restart.
        Not a gradient step: call it after each optimizer step (``beingh0.train.fit``'s ``after_step``).

        Under ``torch.distributed`` the counts and sums are summed over ranks first (so the EMA sees
        the global batch) and rank 0's codebook state is broadcast afterwards (restarts draw from
        each rank's own residuals). Returns False when nothing was recorded."""
        p, self._pending = self._pending, None
        if p is None:
            return False
        counts, sums = p["counts"], p["sums"]
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if distributed:
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        K = self.codes
        self.step += 1
        d = self.ema_decay
        self.ema_count.mul_(d).add_(counts, alpha=1 - d)
        self.ema_sum.mul_(d).add_(sums, alpha=1 - d)
        n = self.ema_count.sum(-1, keepdim=True)                      # Laplace smoothing of the counts
        smoothed = (self.ema_count + self.eps) / (n + K * self.eps) * n
        self.codebooks.copy_(self.ema_sum / smoothed[..., None])
        used = counts > 0
        self.last_used[used] = self.step
        self.usage.add_(counts.long())
        if self.restart_after > 0:
            res = p["residuals"]
            self._restart_dead(res[0] if len(res) == 1 else torch.cat(res))
        if distributed:
            for b in (self.codebooks, self.ema_sum, self.ema_count, self.last_used, self.restarts):
                dist.broadcast(b, 0)
        return True

    @torch.no_grad()
    def _restart_dead(self, residuals: torch.Tensor) -> None:
        dead = (self.step - self.last_used) >= self.restart_after          # (G, L, K)
        if not bool(dead.any()):
            return
        N = residuals.shape[0]
        for g, layer in dead.any(-1).nonzero().tolist():
            ids = dead[g, layer].nonzero()[:, 0]
            pick = torch.randint(0, N, (ids.numel(),), device=residuals.device)
            new = residuals[pick, g, layer].to(self.codebooks.dtype)
            self.codebooks[g, layer, ids] = new
            self.ema_sum[g, layer, ids] = new
            self.ema_count[g, layer, ids] = 1.0
            self.last_used[g, layer, ids] = self.step
            self.restarts[g, layer] += ids.numel()

    def forward(self, x: torch.Tensor):
        """x (N, G*Dg) -> (quantized with straight-through gradient (N, G*Dg), codes (N, G, L),
        commitment loss mean((x - sg(q))^2)). In training mode the first call initialises the
        codebooks by k-means and every call records the statistics that :meth:`update` applies
        (EMA, dead-code restart) after the optimizer step."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"quantizer input must be (N, {self.dim}), got {tuple(x.shape)}")
        if self.training and not bool(self.initialized):
            self._init_kmeans(x.detach())
        xd = x.detach()
        codes = quantize_indices(xd, self.codebooks.to(x.dtype)) if self.training else self.encode(xd)
        per_layer = lookup_codes(codes, self.codebooks.to(x.dtype))      # (N, G, L, Dg)
        q = per_layer.sum(2).reshape_as(x)
        if self.training:
            before = torch.cumsum(per_layer, 2) - per_layer                 # codes used before layer l
            residuals = xd.reshape(-1, self.groups, 1, self.group_dim) - before
            self._record(residuals, codes)
        commit = torch.mean((x - q.detach()) ** 2)
        return x + (q - x).detach(), codes, commit
