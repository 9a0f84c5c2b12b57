"""Dataset statistics: counts, hours, per-source / per-hand / per-task distributions, PNG report."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..core.errors import UserError, UserValueError
from .integrity import check_episode
from .shards import INDEX_NAME, ShardIndex


def dataset_stats(root: str | Path, *, tasks: bool = True, seed: int = 0, verify: str = "size", check: bool = True,
                  max_errors: int = 5) -> dict[str, Any]:
    """Statistics of a dataset folder (``beingh0 data build``) or of a LeRobot dataset folder.

    Returns ``{"episodes", "frames", "hours", "shards", "bytes", "motion_windows", "sources": {name:
    {episodes, hours, frames, with_frames, windows: {left, right}}}, "hands": {"left", "right",
    "both", "none"} (episodes), "tasks": {(source, task): count}, "corrupt": {"checked", "corrupt",
    "errors"}}``. Motion windows are 1-second samples, so ``windows[side] / 3600`` is that hand's
    usable hours. ``check`` (default) reads every episode's header, arrays and motion sidecar (not
    the frames) and reports corrupt ones (count and the first ``max_errors`` messages) instead of
    failing; corrupt episodes count nowhere else but in the index-based totals. ``verify="sha256"``
    also hashes every shard against the index. A LeRobot folder (``meta/info.json``) gives
    :func:`lerobot_stats` instead.
    """
    root = Path(root)
    if (root / "meta" / "info.json").is_file() and not (root / INDEX_NAME).is_file():
        return lerobot_stats(root)
    idx = ShardIndex(root, verify=verify)
    src: dict[str, dict] = defaultdict(lambda: {"episodes": 0, "hours": 0.0, "frames": 0, "with_frames": 0,
                                                "windows": {"left": 0, "right": 0}})
    hands = {"left": 0, "right": 0, "both": 0, "none": 0}
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
        hands["both" if len(hs) == 2 else hs[0] if hs else "none"] += 1
    out = {
        "root": str(root), "format": "beingh0", "episodes": len(idx), "shards": len(idx.index["shards"]),
        "bytes": sum(sh["size"] for sh in idx.index["shards"]),
        "frames": sum(s["frames"] for s in src.values()), "hours": sum(s["hours"] for s in src.values()),
        "motion_windows": sum(sum(s["windows"].values()) for s in src.values()),
        "sources": {k: src[k] for k in sorted(src)}, "hands": hands, "skipped_items": len(idx.manifest.get("skipped", [])),
    }
    if check or tasks:
        from .instructions import InstructionOptions, instruction_samples

        samples, corrupt, errors = [], 0, []
        for i, ref in enumerate(idx.refs):
            e = ref.entry
            try:
                if check:
                    h = check_episode(idx, i)
                else:
                    h = idx.header(i)
            except UserError as err:  # reported, not raised: a stats run shows every problem at once
                corrupt += 1
                if len(errors) < max_errors:
                    errors.append(str(err))
                continue
            if tasks:
                view = {"key": e["key"], "source": e["source"], "hands": e["hands"], "duration": e["duration"],
                        "text": h["text"]}
                samples += instruction_samples(view, seed, InstructionOptions())
        out["corrupt"] = {"checked": len(idx) if check else 0, "corrupt": corrupt, "errors": errors}
        if tasks:
            from .balance import distribution

            out["tasks"] = distribution(samples)
    return out


def lerobot_stats(root: str | Path) -> dict[str, Any]:
    """Statistics of a LeRobot dataset folder (v2.x / v3.0) from its metadata: episodes listed and
    present, frames, hours, fps, features (state/action sizes), cameras and tasks."""
    from .lerobot import LeRobotDataset

    ds = LeRobotDataset(root)
    lengths = {i: int(ds._episodes[i]["length"]) for i in ds.episode_indices()}
    present = ds.available_episodes()
    frames = sum(lengths.values())
    feats = {k: list(v["shape"]) for k, v in ds.features.items() if v["dtype"] not in ("video", "image")}
    tasks = sorted(set(ds._tasks.values())) or sorted({t for r in ds._episodes.values() for t in (r.get("tasks") or [])})
    return {"root": str(root), "format": "lerobot", "version": ds.version, "fps": ds.fps, "episodes": len(lengths),
            "episodes_present": len(present), "frames": frames, "frames_present": sum(lengths[i] for i in present),
            "hours": frames / ds.fps / 3600.0, "features": feats, "videos": list(ds.video_keys), "tasks": tasks}


def _format_lerobot(st: dict[str, Any]) -> str:
    L = [f"LeRobot {st['version']} dataset {st['root']}: {st['episodes']} episodes listed ({st['episodes_present']} present), "
         f"{st['frames']} frames at {st['fps']:g} FPS, {st['hours']:.3f} h ({st['frames_present']} frames present)"]
    L.append("features: " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in st["features"].items()))
    L.append("cameras: " + (", ".join(st["videos"]) or "none"))
    L.append(f"tasks ({len(st['tasks'])}): " + "; ".join(st["tasks"][:5]) + (" ..." if len(st["tasks"]) > 5 else ""))
    return "\n".join(L)


def format_stats(st: dict[str, Any]) -> str:
    """Printable report of :func:`dataset_stats` (corrupt episodes listed last)."""
    if st.get("format") == "lerobot":
        return _format_lerobot(st)
    L = [f"dataset {st['root']}: {st['episodes']} episodes in {st['shards']} shards ({st['bytes'] / 2**20:.1f} MiB), "
         f"{st['frames']} frames, {st['hours']:.3f} h, {st['motion_windows']} one-second motion samples"
         + (f", {st['skipped_items']} skipped items" if st.get("skipped_items") else "")]
    w = max([6] + [len(s) for s in st["sources"]])
    L.append(f"{'source':<{w}} {'episodes':>9s} {'hours':>9s} {'frames':>10s} {'w/ video':>9s} {'left s':>8s} {'right s':>8s}")
    for name, s in st["sources"].items():
        L.append(f"{name:<{w}} {s['episodes']:>9d} {s['hours']:>9.3f} {s['frames']:>10d} {s['with_frames']:>9d} "
                 f"{s['windows']['left']:>8d} {s['windows']['right']:>8d}")
    h = st["hands"]
    L.append(f"hands per episode: left only {h['left']}, right only {h['right']}, both {h['both']}"
             + (f", none (robot) {h['none']}" if h.get("none") else ""))
    if "tasks" in st:
        tasks = sorted({t for _, t in st["tasks"]})
        L.append("instruction samples: " + (", ".join(f"{t} {sum(v for (s, tt), v in st['tasks'].items() if tt == t)}"
                                                   for t in tasks) or "none"))
    c = st.get("corrupt")
    if c and c["corrupt"]:
        L.append(f"CORRUPT: {c['corrupt']} of {c['checked'] or st['episodes']} episodes failed their checks "
                 f"(left out of the task counts); first errors:")
        L += [f"  {e}" for e in c["errors"]]
    elif c and c["checked"]:
        L.append(f"checked {c['checked']} episodes (headers, arrays, motion sidecars): no corruption found")
    return "\n".join(L)


def plot_stats(st: dict[str, Any], path: str | Path) -> Path:
    """PNG with hours per source, hand-seconds per source and hand, and instruction samples per task.

    Writes exactly ``path`` (PNG whatever the name, without adding a suffix); an existing folder
    gets ``<folder>/stats.png``. Returns the path written.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "stats.png"
    elif path.suffix and path.suffix.lower() != ".png":
        raise UserValueError(f"--png {path}: the report is a PNG image; give a path ending in .png (or a folder)")
    if st.get("format") == "lerobot":
        raise UserValueError(f"{st['root']} is a LeRobot dataset: the charts are for beingh0 dataset folders "
                             "(build one with `beingh0 data build lerobot ROOT --out DIR`)")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
