"""Balanced subsets across sources x task types (UniHand-2.5M style) and their report.

Target proportion of cell (source s, task t) = w_source[s] * w_task[t] (normalised; uniform by
default). :func:`balanced_subset` fills the cells by water-filling: a cell with fewer samples than
its share gives all it has and the remainder is shared among the other cells in proportion to
their targets, so the subset has exactly ``total`` samples whenever enough exist, and is as close
to the targets as the data allows. Sampling inside a cell is uniform without replacement from
``seed``.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def _weights(names: Sequence[str], given: Mapping[str, float] | None, what: str) -> dict[str, float]:
    if given is None:
        return {n: 1.0 for n in names}
    unknown = set(given) - set(names)
    if unknown:
        raise ValueError(f"{what} weights name {sorted(unknown)}, which have no samples; present: {sorted(names)}")
    bad = {k: v for k, v in given.items() if not (isinstance(v, (int, float)) and v >= 0)}
    if bad:
        raise ValueError(f"{what} weights must be >= 0, got {bad}")
    return {n: float(given.get(n, 0.0)) for n in names}


def cell_targets(available: Mapping[tuple[str, str], int], total: int, source_weights=None, task_weights=None) -> dict:
    """Samples to take per (source, task) cell (water-filling; sums to min(total, available))."""
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    sources = sorted({s for s, _ in available})
    tasks = sorted({t for _, t in available})
    ws, wt = _weights(sources, source_weights, "source"), _weights(tasks, task_weights, "task")
    p = {c: ws[c[0]] * wt[c[1]] for c in available if available[c] > 0}
    if not p or sum(p.values()) <= 0:
        raise ValueError("all target weights are zero")
    take = {c: 0 for c in available}
    budget = min(total, sum(available[c] for c in p if p[c] > 0))
    open_ = {c for c in p if p[c] > 0}
    while budget > 0 and open_:
        ps = sum(p[c] for c in open_)
        share = {c: budget * p[c] / ps for c in open_}
        full = {c for c in open_ if take[c] + share[c] >= available[c]}
        if full:
            for c in full:
                budget -= available[c] - take[c]
                take[c] = available[c]
            open_ -= full
            continue
        floors = {c: int(np.floor(share[c])) for c in open_}
        rest = budget - sum(floors.values())
        for c in sorted(open_, key=lambda c: (-(share[c] - floors[c]), c))[:rest]:  # largest remainders
            floors[c] += 1
        for c in open_:
            take[c] += floors[c]
        budget = 0
    return take


def balanced_subset(records: Sequence[Mapping[str, Any]], total: int, *, source_weights=None, task_weights=None,
                    seed: int = 0) -> np.ndarray:
    """Indices (sorted) of a balanced subset of ``records`` (each with ``source`` and ``task``)."""
    cells: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        cells.setdefault((r["source"], r["task"]), []).append(i)
    take = cell_targets({c: len(v) for c, v in cells.items()}, total, source_weights, task_weights)
    rng = np.random.default_rng(seed)
    out = []
    for c in sorted(cells):
        idx = np.asarray(cells[c])
        if take[c]:
            out.append(np.sort(rng.choice(idx, take[c], replace=False)))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def distribution(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    return dict(Counter((r["source"], r["task"]) for r in records))


def report_table(records: Sequence[Mapping[str, Any]], targets: Mapping[tuple[str, str], float] | None = None) -> str:
    """Text table: samples per source x task, with shares (and target shares when given)."""
    d = distribution(records)
    n = max(1, len(records))
    sources = sorted({s for s, _ in d} | ({s for s, _ in targets} if targets else set()))
    tasks = sorted({t for _, t in d} | ({t for _, t in targets} if targets else set()))
    w = max([len("source")] + [len(s) for s in sources])
    head = f"{'source':<{w}} " + " ".join(f"{t:>22s}" for t in tasks) + f" {'total':>10s}"
    lines = [head, "-" * len(head)]
    for s in sources:
        cells = []
        for t in tasks:
            c = d.get((s, t), 0)
            cell = f"{c} ({100 * c / n:.1f}%"
            if targets:
                cell += f" / {100 * targets.get((s, t), 0):.1f}%"
            cells.append(f"{cell + ')':>22s}")
        lines.append(f"{s:<{w}} " + " ".join(cells) + f" {sum(d.get((s, t), 0) for t in tasks):>10d}")
    lines.append(f"{'total':<{w}} " + " ".join(f"{sum(d.get((s, t), 0) for s in sources):>22d}" for t in tasks) + f" {len(records):>10d}")
    if targets:
        lines.append("(cells: count (share of samples / target share))")
    return "\n".join(lines)


def target_shares(sources: Sequence[str], tasks: Sequence[str], source_weights=None, task_weights=None) -> dict:
    ws, wt = _weights(sorted(sources), source_weights, "source"), _weights(sorted(tasks), task_weights, "task")
    tot = sum(ws.values()) * sum(wt.values())
    return {(s, t): ws[s] * wt[t] / tot for s in ws for t in wt}


def plot_distribution(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "samples per source and task",
                      targets: Mapping[tuple[str, str], float] | None = None) -> Path:
    """Grouped bar chart (PNG) of sample counts per source, one bar per task (targets as ticks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = distribution(records)
    sources = sorted({s for s, _ in d})
    tasks = sorted({t for _, t in d})
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(sources) + 2), 3.8), dpi=110)
    width = 0.8 / max(1, len(tasks))
    x = np.arange(len(sources))
    for k, t in enumerate(tasks):
        vals = [d.get((s, t), 0) for s in sources]
        ax.bar(x + k * width, vals, width, label=t)
        if targets:
            tv = [targets.get((s, t), 0) * len(records) for s in sources]
            ax.scatter(x + k * width, tv, marker="_", s=200, color="black", zorder=3, label="target" if k == 0 else None)
    ax.set_xticks(x + width * (len(tasks) - 1) / 2, sources, rotation=20, ha="right")
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
