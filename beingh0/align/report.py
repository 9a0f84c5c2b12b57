"""What balancing does to a data set: hand positions per group before and after, as numbers and a PNG.

``balance_report(datasets, png)`` reads the wrist positions of every episode's valid frames (one
per hand and second, camera frame) from one or more dataset folders (``beingh0.data`` shards),
groups them by source (or a ``meta`` key such as the synthetic source's ``camera_kind``), fits a
:class:`~beingh0.align.sampler.BalanceSampler`, draws one balancing move per sample and plots the
distributions before and after with their total-variation distance to the common target.
"""
from __future__ import annotations

from ..core.errors import UserValueError

from pathlib import Path
from typing import Iterable

import numpy as np

from .balance import BalanceConfig, wrist_features
from .camera import OFFICIAL_TARGET
from .sampler import BalanceSampler, plot_balance


def dataset_wrists(datasets: Iterable[str | Path], group_by: str = "source", per_second: bool = True):
    """Wrist positions (N, 3) in metres (camera frame) and their group labels from dataset folders."""
    from ..data.shards import load_index

    trans, groups = [], []
    for root in datasets:
        index = load_index(root)
        for i in range(len(index)):
            ep = index.read(i)
            if group_by == "source":
                g = ep.source
            elif group_by.startswith("meta."):
                g = f"{ep.source}:{ep.meta.get(group_by[5:], '?')}"
            else:
                raise UserValueError(f"group_by must be 'source' or 'meta.<key>', got {group_by!r}")
            step = max(1, int(round(ep.fps))) if per_second else 1
            for h in ep.hands.values():
                t = h.trans[::step][h.valid[::step]].astype(np.float64)
                t = t[np.isfinite(t).all(1) & (t[:, 2] > 0)]
                trans.append(t)
                groups += [g] * len(t)
    if not groups:
        raise ValueError("no valid wrist positions in front of the camera in these datasets")
    return np.concatenate(trans), np.asarray(groups)


def balance_report(datasets, png: str | Path, *, group_by: str = "source", config: BalanceConfig | None = None,
                   seed: int = 0, verbose: bool = True) -> dict:
    """Fit the sampler on the datasets' wrists, balance every sample once, plot before/after.

    Returns ``{"groups": {name: {"n", "tv_before", "tv_after"}}, "png": path}``.
    """
    trans, groups = dataset_wrists(datasets, group_by)
    sampler = BalanceSampler(config or BalanceConfig(), OFFICIAL_TARGET, seed=seed).fit(trans, groups)
    _, after = sampler.balance(trans, groups, np.random.default_rng(seed + 1))
    before = wrist_features(trans, None, OFFICIAL_TARGET)
    tv_b, tv_a = sampler.distances(before, groups), sampler.distances(after, groups)
    path = plot_balance(before, after, groups, png, sampler=sampler, title="wrist positions per group (model input)")
    out = {"groups": {g: {"n": int((groups == g).sum()), "tv_before": tv_b[g], "tv_after": tv_a[g]} for g in sorted(tv_b)},
           "png": str(path)}
    if verbose:
        print(f"{'group':<28} {'samples':>8} {'TV to target before':>20} {'after':>8}")
        for g, r in out["groups"].items():
            print(f"{g:<28} {r['n']:>8} {r['tv_before']:>20.3f} {r['tv_after']:>8.3f}")
        print(f"plot: {path}")
    return out
