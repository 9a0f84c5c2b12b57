"""Dataset statistics: counts, hours, per-source / per-hand / per-task distributions, PNG report."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .shards import ShardIndex


def dataset_stats(root: str | Path, *, tasks: bool = True, seed: int = 0, verify: str = "size") -> dict[str, Any]:
    """Statistics of a dataset folder from its index (and episode headers when ``tasks``).

    Returns ``{"episodes", "frames", "hours", "shards", "bytes", "motion_windows", "sources": {name:
    {episodes, hours, frames, with_frames, windows: {left, right}}}, "hands": {"left", "right",
    "both"} (episodes), "tasks": {(source, task): count}}``. Motion windows are 1-second samples, so
    ``windows[side] / 3600`` is that hand's usable hours.
    """
    idx = ShardIndex(root, verify=verify)
    src: dict[str, dict] = defaultdict(lambda: {"episodes": 0, "hours": 0.0, "frames": 0, "with_frames": 0,
                                                "windows": {"left": 0, "right": 0}})
    hands = {"left": 0, "right": 0, "both": 0}
    for ref in idx.refs:
        e = ref.entry
        s = src[e["source"]]
        s["episodes"] += 1
        s["hours"] += e["duration"] / 3600.0
        s["frames"] += e["num_frames"]
        s["with_frames"] += int(e["has_frames"])
        for side, runs in e.get("motion", {}).get("windows", {}).items():
            s["windows"][side] += sum(b - a for a, b in runs)
        hs = e["hands"]
        hands["both" if len(hs) == 2 else hs[0]] += 1
    out = {
        "root": str(root), "episodes": len(idx), "shards": len(idx.index["shards"]),
        "bytes": sum(sh["size"] for sh in idx.index["shards"]),
        "frames": sum(s["frames"] for s in src.values()), "hours": sum(s["hours"] for s in src.values()),
        "motion_windows": sum(sum(s["windows"].values()) for s in src.values()),
        "sources": {k: src[k] for k in sorted(src)}, "hands": hands, "skipped_items": len(idx.manifest.get("skipped", [])),
    }
    if tasks:
        from .balance import distribution
        from .instructions import dataset_instruction_samples

        out["tasks"] = distribution(dataset_instruction_samples(root, seed))
    return out


def format_stats(st: dict[str, Any]) -> str:
    """Printable report of :func:`dataset_stats`."""
    L = [f"dataset {st['root']}: {st['episodes']} episodes in {st['shards']} shards ({st['bytes'] / 2**20:.1f} MiB), "
         f"{st['frames']} frames, {st['hours']:.3f} h, {st['motion_windows']} one-second motion samples"
         + (f", {st['skipped_items']} skipped items" if st.get("skipped_items") else "")]
    w = max([6] + [len(s) for s in st["sources"]])
    L.append(f"{'source':<{w}} {'episodes':>9s} {'hours':>9s} {'frames':>10s} {'w/ video':>9s} {'left s':>8s} {'right s':>8s}")
    for name, s in st["sources"].items():
        L.append(f"{name:<{w}} {s['episodes']:>9d} {s['hours']:>9.3f} {s['frames']:>10d} {s['with_frames']:>9d} "
                 f"{s['windows']['left']:>8d} {s['windows']['right']:>8d}")
    h = st["hands"]
    L.append(f"hands per episode: left only {h['left']}, right only {h['right']}, both {h['both']}")
    if "tasks" in st:
        tasks = sorted({t for _, t in st["tasks"]})
        L.append("instruction samples: " + ", ".join(f"{t} {sum(v for (s, tt), v in st['tasks'].items() if tt == t)}" for t in tasks))
    return "\n".join(L)


def plot_stats(st: dict[str, Any], path: str | Path) -> Path:
    """PNG with hours per source, hand-seconds per source and hand, and instruction samples per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(st["sources"])
    n_ax = 3 if "tasks" in st else 2
    fig, axes = plt.subplots(1, n_ax, figsize=(4.2 * n_ax, 3.6), dpi=110)
    x = np.arange(len(names))
    axes[0].bar(x, [st["sources"][n]["hours"] for n in names], color="tab:blue")
    axes[0].set_title("hours per source")
    axes[0].set_ylabel("hours")
    for side, off, col in (("left", -0.2, "tab:orange"), ("right", 0.2, "tab:green")):
        axes[1].bar(x + off, [st["sources"][n]["windows"][side] / 3600 for n in names], 0.4, label=side, color=col)
    axes[1].set_title("usable hand-hours (1 s windows)")
    axes[1].legend(fontsize=8)
    for ax in axes[:2]:
        ax.set_xticks(x, names, rotation=20, ha="right")
    if "tasks" in st:
        tasks = sorted({t for _, t in st["tasks"]})
        width = 0.8 / max(1, len(tasks))
        for k, t in enumerate(tasks):
            axes[2].bar(x + k * width, [st["tasks"].get((n, t), 0) for n in names], width, label=t)
        axes[2].set_xticks(x + width * (len(tasks) - 1) / 2, names, rotation=20, ha="right")
        axes[2].set_title("instruction samples per task")
        axes[2].legend(fontsize=8)
    fig.suptitle(f"{st['episodes']} episodes, {st['hours']:.2f} h")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
