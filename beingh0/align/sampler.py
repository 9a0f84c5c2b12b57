"""Even out where hands sit (image position and depth) across data sources by choosing balancing moves.

Paper section 4.2.2 wants small sources augmented so that no camera set-up dominates the 3D
perception of the model. ``BalanceSampler`` does it by importance resampling over a grid:

1. Features of a wrist: normalised model-input position u, v in [0, 1] and depth z (metres),
   binned on a ``bins`` grid (u x v x z; values outside are clipped to the edge bins).
2. For each source k, ``fit`` estimates by Monte Carlo the distribution ``a_k`` of features its
   wrists reach under the proposal (``BalanceConfig``'s ranges, wrist-level rules applied).
3. The common target ``t`` is the equal-weight mixture of the sources' reachable distributions
   (``target="pooled"``) or uniform over every reachable bin (``target="uniform"``).
4. Per-source bin weights ``w_k = t / a_k``. A draw gathers ``candidates`` valid moves and keeps
   one with probability proportional to ``w_k`` at its resulting bin: with many candidates the
   outcome is distributed as ``a_k * w_k``, i.e. as ``t`` on what source k can reach.
5. With few candidates the pick is only partly reweighted; ``iterations`` rounds of simulate-and-
   correct (w_k *= t / achieved_k, damped) close most of that gap on the fitting data.

Hands of one sample are weighted by the geometric mean of their weights (both must agree).
Distances reported are total variation (half the L1 distance between histograms, in [0, 1]).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .balance import BalanceConfig, BalanceDraw, BalanceParams, HandState, draw_balance, wrist_features
from .camera import OFFICIAL_TARGET, TargetCamera

__all__ = ["BalanceSampler", "plot_balance", "histogram", "total_variation"]


def histogram(features: np.ndarray, bins: tuple[int, int, int], depth_range: tuple[float, float],
              weights: np.ndarray | None = None) -> np.ndarray:
    """Normalised (u, v, z) histogram on the grid (values outside clipped to the edge bins)."""
    idx = _bin_index(features, bins, depth_range)
    h = np.bincount(idx.reshape(-1), weights=None if weights is None else weights.reshape(-1), minlength=int(np.prod(bins)))
    return h / max(h.sum(), 1e-300)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance between two normalised histograms, in [0, 1]."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def _bin_index(features: np.ndarray, bins, depth_range) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    nu, nv, nz = bins
    z0, z1 = depth_range
    iu = np.clip(np.floor(f[..., 0] * nu), 0, nu - 1).astype(np.int64)
    iv = np.clip(np.floor(f[..., 1] * nv), 0, nv - 1).astype(np.int64)
    iz = np.clip(np.floor((f[..., 2] - z0) / (z1 - z0) * nz), 0, nz - 1).astype(np.int64)
    return (iu * nv + iv) * nz + iz


class BalanceSampler:
    """Draws balancing moves that pull each source's hand-position distribution towards a common target.

    ``fit(trans, sources)`` with one wrist position (3,) per sample (camera frame, metres; use the
    clip's middle frame and the right hand, or the mean of both) and a label per sample; then
    ``draw(rng, hands, source)`` for one sample, or ``balance(trans, sources, rng)`` for a whole
    set (what the tests and ``plot_balance`` use).
    """

    def __init__(self, config: BalanceConfig = BalanceConfig(), target: TargetCamera = OFFICIAL_TARGET, *,
                 bins: tuple[int, int, int] = (8, 8, 6), target_dist: str = "pooled", proposals: int = 64,
                 candidates: int = 16, iterations: int = 3, seed: int = 0):
        if target_dist not in ("pooled", "uniform"):
            raise ValueError(f"target_dist must be 'pooled' or 'uniform', got {target_dist!r}")
        if len(bins) != 3 or min(bins) < 1:
            raise ValueError(f"bins must be three positive counts (u, v, z), got {bins}")
        if proposals < 1 or candidates < 1 or iterations < 0:
            raise ValueError(f"need proposals >= 1, candidates >= 1, iterations >= 0; got {proposals}, {candidates}, {iterations}")
        self.config, self.target, self.bins = config, target, tuple(int(b) for b in bins)
        self.target_dist, self.proposals, self.candidates, self.iterations = target_dist, proposals, candidates, iterations
        self.seed = seed
        self.depth_range = config.depth_range
        self.sources: list = []
        self.weights: dict = {}
        self.target_hist: np.ndarray | None = None
        self.reach: dict = {}

    # -- fitting --------------------------------------------------------------------------------
    def _draw_many(self, rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.log(self.config.scale_range)
        s = np.exp(rng.uniform(lo, hi, (n, m)))
        a = rng.uniform(*self.config.angle_range, (n, m))
        return s, a

    def _features_many(self, trans: np.ndarray, s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, M, 3) of every wrist under every drawn move, and which moves pass the wrist-level rules."""
        t = trans[:, None, :]
        c, sn = np.cos(a), np.sin(a)
        moved = np.stack([c * t[..., 0] - sn * t[..., 1], sn * t[..., 0] + c * t[..., 1], s * t[..., 2]], -1)
        f = wrist_features(moved, None, self.target)
        ok = (f[..., 2] >= self.depth_range[0]) & (f[..., 2] <= self.depth_range[1])
        ok &= (f[..., 0] > 0) & (f[..., 0] < 1) & (f[..., 1] > 0) & (f[..., 1] < 1)
        return f, ok

    def fit(self, trans, sources) -> "BalanceSampler":
        """Estimate each source's reachable distribution, the common target and the per-source weights."""
        trans = np.asarray(trans, dtype=np.float64)
        sources = np.asarray(sources)
        if trans.ndim != 2 or trans.shape[1] != 3 or len(sources) != len(trans):
            raise ValueError(f"fit needs trans (N, 3) and N source labels, got {trans.shape} and {len(sources)} labels")
        if not np.all(np.isfinite(trans)) or np.any(trans[:, 2] <= 0):
            raise ValueError("wrist positions must be finite and in front of the camera (z > 0); drop or fix bad samples")
        rng = np.random.default_rng(self.seed)
        self.sources = sorted(set(sources.tolist()))
        nb = int(np.prod(self.bins))
        reach = {}
        for k in self.sources:
            tk = trans[sources == k]
            s, a = self._draw_many(rng, len(tk), self.proposals)
            f, ok = self._features_many(tk, s, a)
            reach[k] = histogram(f[ok], self.bins, self.depth_range) if ok.any() else np.zeros(nb)
        self.reach = reach
        if self.target_dist == "pooled":
            t = np.mean([reach[k] for k in self.sources], 0)
        else:
            t = (np.sum([reach[k] for k in self.sources], 0) > 0).astype(np.float64)
        self.target_hist = t / t.sum()
        self.weights = {k: np.where(reach[k] > 0, self.target_hist / np.maximum(reach[k], 1e-12), 0.0) for k in self.sources}
        for _ in range(self.iterations):  # simulate-and-correct: the finite-candidate pick is only partly reweighted
            for k in self.sources:
                ach = histogram(self._simulate(trans[sources == k], k, rng), self.bins, self.depth_range)
                corr = np.where(ach > 0, np.sqrt(self.target_hist / np.maximum(ach, 1e-12)), 1.0)
                self.weights[k] = self.weights[k] * corr
                self.weights[k] /= max(self.weights[k].max(), 1e-300)
        return self

    def _simulate(self, trans: np.ndarray, source, rng: np.random.Generator) -> np.ndarray:
        """Features after one vectorised balancing pass (wrist-level rules only)."""
        s, a = self._draw_many(rng, len(trans), self.candidates)
        f, ok = self._features_many(trans, s, a)
        w = self.weights[source][_bin_index(f, self.bins, self.depth_range)] * ok
        none = w.sum(1) <= 0
        w[none] = ok[none] + 1e-12  # no weighted candidate: any valid one (or the first)
        cdf = np.cumsum(w / w.sum(1, keepdims=True), 1)
        pick = np.minimum((cdf < rng.random((len(trans), 1))).sum(1), self.candidates - 1)
        out = f[np.arange(len(trans)), pick]
        bad = ~ok[np.arange(len(trans)), pick]
        out[bad] = wrist_features(trans[bad], None, self.target)  # identity fallback
        return out

    # -- drawing ------------------------------------------------------------------------------
    def _check_fitted(self, source):
        if self.target_hist is None:
            raise RuntimeError("BalanceSampler is not fitted; call sampler.fit(trans, sources) first")
        if source not in self.weights:
            raise ValueError(f"unknown source {source!r}; the sampler was fitted on {self.sources}")

    def weight(self, source, wrists: np.ndarray):
        """Callable ``params -> weight`` for one sample whose hands' wrists are ``wrists`` (H, 3)."""
        self._check_fitted(source)
        wr = np.asarray(wrists, dtype=np.float64).reshape(-1, 3)
        w = self.weights[source]

        def fn(p: BalanceParams) -> float:
            idx = _bin_index(wrist_features(wr, p, self.target), self.bins, self.depth_range)
            return float(np.exp(np.mean(np.log(np.maximum(w[idx], 1e-300)))))

        return fn

    def draw(self, rng: np.random.Generator, hands: list[HandState], source) -> BalanceDraw:
        """A balancing move for one sample (all rules of ``BalanceConfig``), weighted towards the target."""
        if not hands:
            return draw_balance(rng, hands, self.config, self.target)
        wrists = np.stack([np.asarray(h.trans, dtype=np.float64)[len(h.trans) // 2] for h in hands])
        return draw_balance(rng, hands, self.config, self.target, candidates=self.candidates,
                            weight_fn=self.weight(source, wrists))

    def balance(self, trans, sources, rng: np.random.Generator | None = None) -> tuple[list[BalanceParams], np.ndarray]:
        """Draw a move for every sample (wrist-only hands): the moves and the features after them (N, 3)."""
        rng = rng if rng is not None else np.random.default_rng(self.seed + 1)
        trans = np.asarray(trans, dtype=np.float64)
        params, feats = [], []
        for t, k in zip(trans, np.asarray(sources).tolist()):
            p = self.draw(rng, [HandState(t[None])], k).params
            params.append(p)
            feats.append(wrist_features(t, p, self.target))
        return params, np.stack(feats) if feats else np.zeros((0, 3))

    def distances(self, features: np.ndarray, sources, *, reachable: bool = False) -> dict:
        """Total variation between each source's feature histogram and the target.

        ``reachable``: compare with the target restricted to the bins that source can reach under the
        configured ranges (renormalised): the best any draw could do.
        """
        self._check_fitted(self.sources[0] if self.sources else None)
        sources = np.asarray(sources)
        out = {}
        for k in self.sources:
            t = self.target_hist * (self.reach[k] > 0) if reachable else self.target_hist
            out[k] = total_variation(histogram(features[sources == k], self.bins, self.depth_range), t / max(t.sum(), 1e-300))
        return out


def plot_balance(before: np.ndarray, after: np.ndarray, sources, path, *, sampler: BalanceSampler | None = None,
                 depth_range: tuple[float, float] | None = None, title: str = "hand positions per source") -> Path:
    """PNG: per source (rows), image-position heat maps before and after, and depth histograms.

    ``before``/``after``: features (N, 3) from ``wrist_features`` (u, v in [0, 1]; z metres).
    With ``sampler``, each row states its total-variation distance to the target before -> after.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = np.asarray(sources)
    names = sorted(set(sources.tolist()))
    zr = depth_range or (sampler.depth_range if sampler is not None else (0.0, float(max(before[:, 2].max(), after[:, 2].max()))))
    tv_b = sampler.distances(before, sources) if sampler is not None else {}
    tv_a = sampler.distances(after, sources) if sampler is not None else {}
    fig, axes = plt.subplots(len(names), 3, figsize=(11, 3.2 * len(names)), squeeze=False)
    for r, k in enumerate(names):
        sel = sources == k
        for c, (f, lab) in enumerate(((before[sel], "before"), (after[sel], "after"))):
            ax = axes[r, c]
            ax.hist2d(f[:, 0], f[:, 1], bins=24, range=[[0, 1], [0, 1]], cmap="magma")
            ax.set_xlim(0, 1)
            ax.set_ylim(1, 0)  # image convention: v grows downwards
            ax.set_aspect("equal")
            tv = f" (TV to target {tv_b[k] if c == 0 else tv_a[k]:.2f})" if sampler is not None else ""
            ax.set_title(f"{k}: {lab}{tv}", fontsize=9)
            ax.set_xlabel("u (model input, normalised)")
            ax.set_ylabel("v")
        ax = axes[r, 2]
        edges = np.linspace(zr[0], zr[1], 30)
        ax.hist(before[sel, 2], edges, alpha=0.5, label="before", density=True)
        ax.hist(after[sel, 2], edges, alpha=0.5, label="after", density=True)
        ax.set_xlabel("wrist depth z (m)")
        ax.set_title(f"{k}: depth", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
