"""CLI verbs of the data layer: ``beingh0 data build``, ``beingh0 data stats``, ``beingh0 bench data``.

Other data modules add verbs to the same ``data`` group through ``subgroup``.
"""
from __future__ import annotations

import json

from .main import subgroup


def parse_options(pairs) -> dict:
    """``k=v`` strings -> dict; values parse as JSON when they can (numbers, booleans, lists)."""
    out = {}
    for p in pairs or ():
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise ValueError(f"--option expects key=value, got {p!r}")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _build(a):
    from ..data.build import build_dataset
    from ..data.samples import MotionOptions

    m = build_dataset(a.source, a.root, a.out, parse_options(a.option), episodes_per_shard=a.episodes_per_shard,
                      workers=a.workers, backend="ray" if a.ray else "process", skip_errors=a.skip_errors,
                      motion=MotionOptions(min_valid=a.min_valid, hand_model=a.hand_model), overwrite=a.overwrite,
                      progress=not a.quiet, max_items=a.max_items)
    c = m["counts"]
    print(f"{a.out}: {c['episodes']} episodes in {c['shards']} shards, {c['hours']:.3f} h, "
          f"{c['motion_windows']} one-second motion samples, {c['skipped_items']} skipped items")
    for s in m["skipped"]:
        print(f"  skipped {s['error']}")


def _stats(a):
    from ..data.stats import dataset_stats, format_stats, plot_stats

    st = dataset_stats(a.dir, tasks=not a.no_tasks, verify="sha256" if a.verify else "size")
    print(format_stats(st))
    if a.png:
        print(f"wrote {plot_stats(st, a.png)}")


def _bench_data(a):
    from ..benchmark.data import run_data_bench

    run_data_bench(episodes=a.episodes, seconds=a.seconds, workers=a.workers, kinds=a.kinds, batch=a.batch,
                   min_time_s=a.min_time, repeats=a.repeats, json_path=a.json)


def register(sub, bench) -> None:
    data = subgroup(sub, "data", "UniHand data: build shards from sources, statistics, synthetic data, viewers")

    s = data.add_parser("build", help="build a dataset folder (tar shards + index + manifest) from a source")
    s.add_argument("source", help="registered source name (an unknown name lists the available ones)")
    s.add_argument("root", nargs="?", default=None, help="the source's raw data folder (omit for generated sources)")
    s.add_argument("--out", required=True, help="output dataset folder")
    s.add_argument("--episodes-per-shard", type=int, default=64, help="source items per shard (default: 64)")
    s.add_argument("--workers", type=int, default=1, help="parallel shard jobs (default: 1)")
    s.add_argument("--ray", action="store_true", help="run the shard jobs on Ray (pip install 'beingh0[ray]')")
    s.add_argument("--option", action="append", metavar="K=V", help="source option (repeatable); values parse as JSON")
    s.add_argument("--skip-errors", action="store_true", help="leave failing items out and record them in manifest.json")
    s.add_argument("--min-valid", type=float, default=0.5, help="fraction of valid frames a 1 s window needs (default: 0.5)")
    s.add_argument("--hand-model", default=None, help="folder with MANO_RIGHT/LEFT files for the joints (default: embedded hand)")
    s.add_argument("--max-items", type=int, default=None, help="only the first N source items")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_build)

    s = data.add_parser("stats", help="counts, hours, per-source/hand/task distribution of a dataset folder (+ PNG)")
    s.add_argument("dir", help="dataset folder")
    s.add_argument("--png", default=None, help="write the distribution charts to this PNG")
    s.add_argument("--no-tasks", action="store_true", help="skip the instruction-task counts (reads every episode header)")
    s.add_argument("--verify", action="store_true", help="hash every shard against the index (reads everything)")
    s.set_defaults(fn=_stats)

    s = bench.add_parser("data", help="data loader samples/s (motion-only and image samples, 0/1/2 workers)")
    s.add_argument("--episodes", type=int, default=48, help="random episodes in the temporary dataset (default: 48)")
    s.add_argument("--seconds", type=float, default=10.0, help="seconds per episode (default: 10)")
    s.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers (default: 0 1 2)")
    s.add_argument("--kinds", nargs="+", choices=["motion", "image"], default=["motion", "image"])
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--min-time", type=float, default=3.0, help="seconds per timed run (default: 3)")
    s.add_argument("--repeats", type=int, default=3, help="timed runs per case; the median is reported (default: 3)")
    s.add_argument("--json", default=None, help="write the records (ENGINEERING.md section 5) to this JSON file")
    s.set_defaults(fn=_bench_data)
