"""Metrics of generated hand motion and of text-motion retrieval (paper section 6.2, Tables 2-4).

Motion errors are over the 21 MANO keypoints of each hand's own model (``beingh0.mano.hand_model``,
camera frame, Being-H0's wrist-``trans`` convention) in **millimetres**, pooled over valid frames:

- **MPJPE**: mean keypoint distance (includes the wrist position error);
- **MWTE**: mean wrist translation error, the distance between predicted and true ``trans``;
- **PA-MPJPE**: MPJPE after a per-frame similarity Procrustes alignment of the prediction onto the
  truth (``beingh0.tokenizer.evaluate.procrustes_align``): articulation only.

Retrieval (``recall_at_k``): rows of a similarity matrix are queries, columns candidates; query i's
correct candidates are those of the same group (``groups``, e.g. the same text: several motions share
one instruction), candidate i by default. ``pool`` splits the queries into fixed pools (Guo et al.'s
R-precision uses 32) searched separately; None searches all. ``chance_recall_at_k`` is the expected
value for random similarities under the same protocol.

FID (``frechet_distance``): Frechet distance between Gaussians fitted to two embedding sets, in
float64, with tr sqrt(S1 S2) computed as the sum of the square roots of the (clamped) eigenvalues of
the symmetric PSD matrix sqrt(S1) S2 sqrt(S1): no non-symmetric matrix square root, no complex parts.
"""
from __future__ import annotations

from math import comb

import numpy as np
import torch

from ..core.errors import UserValueError
from ..mano.model import hand_model
from ..tokenizer.evaluate import procrustes_align

__all__ = ["hand_keypoints", "motion_errors", "valid_rate", "recall_at_k", "chance_recall_at_k", "frechet_distance",
           "gaussian_stats", "fid"]


def _t(x) -> torch.Tensor:
    return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).double()


def hand_keypoints(params: dict, side: str = "right") -> torch.Tensor:
    """(..., T, 21, 3) float64 camera-frame keypoints of MANO parameters ``global_orient`` (..., T, 3),
    ``hand_pose`` (..., T, 45), ``trans`` (..., T, 3) and optional ``betas`` ((..., 10) or (..., T, 10);
    zeros when absent), through ``side``'s own hand model."""
    go, hp, tr = _t(params["global_orient"]), _t(params["hand_pose"]), _t(params["trans"])
    lead = go.shape[:-1]
    b = params.get("betas")
    b = torch.zeros(*lead, 10, dtype=torch.float64) if b is None else _t(b)
    if b.dim() == go.dim() - 1:
        b = b[..., None, :]
    b = b.expand(*lead, 10)
    kp = hand_model(side).keypoints(b.reshape(-1, 10), go.reshape(-1, 3), hp.reshape(-1, 45), tr.reshape(-1, 3))
    return kp.reshape(*lead, 21, 3)


def motion_errors(pred: dict, gt: dict, side: str = "right", mask=None) -> dict:
    """``{"mpjpe", "mwte", "pa_mpjpe"}`` in mm and ``"frames"`` between MANO parameter dicts (see
    :func:`hand_keypoints`) of the same shape; ``mask`` (..., T) bool keeps the frames that count.
    ``pred`` takes ``gt``'s betas when it has none (the shape is not what is generated)."""
    if "betas" not in pred and "betas" in gt:
        pred = {**pred, "betas": gt["betas"]}
    lead = _t(gt["trans"]).shape[:-1]
    if _t(pred["trans"]).shape[:-1] != lead:
        raise UserValueError(f"prediction and ground truth differ in shape: {tuple(_t(pred['trans']).shape)} vs "
                             f"{tuple(_t(gt['trans']).shape)}")
    m = torch.ones(lead, dtype=torch.bool) if mask is None else torch.as_tensor(np.asarray(mask)).bool()

    def masked(p):  # only the frames that count reach the hand model (others may be NaN: invalid blocks)
        out = {k: _t(p[k])[m] for k in ("global_orient", "hand_pose", "trans")}
        if p.get("betas") is not None:
            b = _t(p["betas"])
            out["betas"] = b[m] if b.dim() == len(lead) + 1 else b[..., None, :].expand(*lead, 10)[m]
        return out

    pred, gt = masked(pred), masked(gt)
    n = gt["trans"].shape[0]
    if n == 0:
        return {"mpjpe": float("nan"), "mwte": float("nan"), "pa_mpjpe": float("nan"), "frames": 0}
    kp_p, kp_g = hand_keypoints(pred, side), hand_keypoints(gt, side)
    tr_p, tr_g = pred["trans"], gt["trans"]
    return {"mpjpe": 1000 * float((kp_p - kp_g).norm(dim=-1).mean()),
            "mwte": 1000 * float((tr_p - tr_g).norm(dim=-1).mean()),
            "pa_mpjpe": 1000 * float((procrustes_align(kp_p, kp_g) - kp_g).norm(dim=-1).mean()),
            "frames": int(n)}


def valid_rate(valid) -> float:
    """Percentage of valid generations (motion blocks) in a bool array; NaN when empty."""
    v = np.asarray(valid, dtype=bool).ravel()
    return float(100.0 * v.mean()) if v.size else float("nan")


def _groups(n: int, groups) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise UserValueError(f"groups must have one entry per query ({n}), got shape {g.shape}")
    _, inv = np.unique(g, return_inverse=True)
    return inv


def _pools(n: int, pool: int | None, seed: int) -> list[np.ndarray]:
    if pool is None or pool >= n:
        return [np.arange(n)]
    if pool < 2:
        raise UserValueError(f"pool must be >= 2 (or None for all), got {pool}")
    perm = np.random.default_rng(seed).permutation(n)
    k = n // pool
    return [perm[i * pool:(i + 1) * pool] for i in range(k)] if k else [perm]


def recall_at_k(sim, k: int, groups=None, pool: int | None = None, seed: int = 0) -> float:
    """R@k in percent of a square similarity matrix (N queries x N candidates; query i matches
    candidate i and every candidate of its group). A tie with the best wrong candidate counts as a
    miss. With ``pool``, queries are split into random pools of that size (the rest dropped)."""
    s = _t(sim)
    if s.dim() != 2 or s.shape[0] != s.shape[1]:
        raise UserValueError(f"similarity must be a square (N, N) matrix, got {tuple(s.shape)}")
    if k < 1:
        raise UserValueError(f"k must be >= 1, got {k}")
    g = _groups(s.shape[0], groups)
    hits, total = 0, 0
    for idx in _pools(s.shape[0], pool, seed):
        sub = s[np.ix_(idx, idx)] if len(idx) < s.shape[0] else s
        gg = g[idx]
        same = torch.from_numpy(gg[:, None] == gg[None, :])
        best = sub.masked_fill(~same, -torch.inf).max(1).values                 # best correct candidate
        wrong_above = ((sub >= best[:, None]) & ~same).sum(1)                    # wrong ones ranked at or above it
        hits += int((wrong_above < k).sum())
        total += len(idx)
    return 100.0 * hits / total


def chance_recall_at_k(k: int, groups, pool: int | None = None, seed: int = 0) -> float:
    """Expected R@k (percent) of random similarities under :func:`recall_at_k`'s protocol: for a query
    with c correct among n candidates, 1 - C(n - c, k) / C(n, k)."""
    n_all = len(groups) if groups is not None else None
    if n_all is None:
        raise UserValueError("chance_recall_at_k needs groups (or a list of N distinct ids)")
    g = _groups(n_all, groups)
    vals = []
    for idx in _pools(n_all, pool, seed):
        gg, n = g[idx], len(idx)
        for q in range(n):
            c = int((gg == gg[q]).sum())
            vals.append(1.0 - comb(n - c, k) / comb(n, k) if k <= n else 1.0)
    return 100.0 * float(np.mean(vals))


def gaussian_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) in float64 of embeddings (N, D), N >= 2."""
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise UserValueError(f"need at least 2 embeddings (N, D) for FID, got shape {a.shape}")
    return a.mean(0), np.cov(a, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) in float64 (see the module docstring)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def fid(a, b) -> float:
    """Frechet distance between the Gaussians of embedding sets ``a`` (N, D) and ``b`` (M, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
