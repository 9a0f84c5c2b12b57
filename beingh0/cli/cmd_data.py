"""``beingh0 data {build,stats,synth,synth-robot,show,tokenize,balance}``: UniHand data (beingh0.data, balancing from beingh0.align)."""
from __future__ import annotations

import dataclasses

from .common import parse_options, parse_size, user_path

HELP = "UniHand data: build shards from sources, statistics, synthetic data, viewers, balancing"


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

    st = dataset_stats(a.dir, tasks=not a.no_tasks, verify="sha256" if a.verify else "size", check=not a.no_check)
    print(format_stats(st))
    if a.png:
        print(f"wrote {plot_stats(st, a.png)}")
    bad = (st.get("corrupt") or {}).get("corrupt", 0)
    if bad:
        raise SystemExit(f"beingh0: error: {bad} corrupt episode(s) in {a.dir} (listed above); rebuild those shards "
                         "or check them with --verify")


def _synth(a):
    from ..core.config import config_from_args
    from ..data.synth import SynthConfig

    size = {"size": parse_size(a.size)} if a.size is not None else {}
    cfg = config_from_args(SynthConfig, a, **size)
    from ..data.synth import synth_dataset

    st = synth_dataset(a.out, a.episodes, cfg, a.seed, a.workers, progress=not a.quiet,
                   episodes_per_shard=a.episodes_per_shard, overwrite=a.overwrite)
    kind = f"{cfg.size[0]}x{cfg.size[1]} {cfg.image_format}" if cfg.frames else "motion-only"
    print(f"wrote {st['episodes']} synthetic episodes ({kind}, {st['frames']} frames) to {st['out']} "
          f"in {st['seconds']} s: {st['frames_per_s']} frames/s")


def _synth_robot(a):
    from ..data.synth.robot import robot_demos

    size = parse_size(a.size)
    out = robot_demos(a.out, a.episodes, a.seconds, a.fps, size, a.seed, lookahead=a.lookahead, overwrite=a.overwrite,
                      progress=not a.quiet)
    print(f"wrote {a.episodes} synthetic robot episodes (LeRobot v2.1, Inspire hands + wrist poses, "
          f"{size[0]}x{size[1]} at {a.fps:g} fps) to {out}")


def _show(a):
    from ..core.errors import UserValueError
    from ..data.show import show

    frames = None
    if a.frames:
        try:
            frames = [int(x) for x in a.frames.replace(",", " ").split()]
        except ValueError:
            raise UserValueError(f"--frames takes frame numbers such as '0,5,10', got {a.frames!r}") from None
    print(show(a.episode, a.out, key=a.key, frames=frames, root=a.root, model_dir=a.model_dir, cols=a.cols))


def _tokenize(a):
    from ..data.tokenize import tokenize_dataset
    from ..tokenizer.io import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    for d in a.dirs:
        r = tokenize_dataset(d, tok, batch_size=a.batch_size, progress=not a.quiet, force=a.force)
        print(f"{d}: motion ids of {r['windows']} windows in {r['folder']} (tokenizer {r['fingerprint']}; "
              f"{r['encoded']} shard(s) encoded, {r['skipped']} already done)")


def _balance(a):
    from ..align.report import balance_report

    balance_report(a.datasets, a.png, group_by=a.group_by, seed=a.seed)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..data.synth import SynthConfig

    data = sub.add_parser("data", help=HELP, description=HELP).add_subparsers(dest="data_verb", required=True, metavar="TOOL")

    s = data.add_parser("build", help="build a dataset folder (tar shards + index + manifest) from a source",
                        description="Convert a source's raw data into a dataset folder: tar shards of unified "
                                    "episodes, index.json for seeking, manifest.json for provenance, and 1-second "
                                    "motion sidecars. One job per shard.")
    s.add_argument("source", help="registered source name (an unknown name lists the available ones)")
    s.add_argument("root", nargs="?", type=user_path, default=None, help="the source's raw data folder (omit for generated sources)")
    s.add_argument("--out", type=user_path, required=True, help="output dataset folder")
    s.add_argument("--episodes-per-shard", type=int, default=64, help="source items per shard (default: 64)")
    s.add_argument("--workers", type=int, default=1, help="parallel shard jobs (default: 1)")
    s.add_argument("--ray", action="store_true", help="run the shard jobs on Ray (pip install 'beingh0[ray]')")
    s.add_argument("--option", action="append", metavar="K=V", help="source option (repeatable); values parse as JSON")
    s.add_argument("--skip-errors", action="store_true", help="leave failing items out and record them in manifest.json")
    s.add_argument("--min-valid", type=float, default=0.5, help="fraction of valid frames a 1 s window needs (default: 0.5)")
    s.add_argument("--hand-model", type=user_path, default=None, help="folder with MANO_RIGHT/LEFT files for the joints (default: embedded hand)")
    s.add_argument("--max-items", type=int, default=None, help="only the first N source items")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_build)

    s = data.add_parser("stats", help="counts, hours, per-source/hand/task distribution of a dataset folder (+ PNG)")
    s.add_argument("dir", type=user_path, help="dataset folder (data build / data synth) or a LeRobot dataset folder")
    s.add_argument("--png", type=user_path, default=None, help="write the distribution charts to this PNG")
    s.add_argument("--no-tasks", action="store_true", help="skip the instruction-task counts (reads every episode header)")
    s.add_argument("--verify", action="store_true", help="hash every shard against the index (reads everything)")
    s.add_argument("--no-check", action="store_true",
                   help="skip the per-episode integrity check (headers, arrays, motion sidecars; never the frames)")
    s.set_defaults(fn=_stats)

    s = data.add_parser("synth", help="generate synthetic bimanual hand-object episodes (rendered on the CPU, CC0)",
                        description="Procedural hands reaching, grasping, moving, placing, pouring, pressing and opening "
                                    "objects on a table, rendered headless with MANO-layout hands, with per-second "
                                    "instructions and captions. Deterministic from --seed.")
    s.add_argument("--out", type=user_path, required=True, help="output dataset folder (tar shards + index.json + manifest.json)")
    s.add_argument("--episodes", type=int, default=64, help="number of episodes (default: 64)")
    s.add_argument("--seed", type=int, default=0, help="collection seed; episode i is fixed by (seed, i) (default: 0)")
    s.add_argument("--workers", type=int, default=1, help="worker processes, one shard job each (default: 1)")
    s.add_argument("--episodes-per-shard", type=int, default=16, help="episodes per tar shard (default: 16)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    g = add_config_args(s, SynthConfig, exclude=("size",), title="episode options (beingh0.data.synth.SynthConfig)")
    w, h = next(f.default for f in dataclasses.fields(SynthConfig) if f.name == "size")
    # WIDTHxHEIGHT like every other size flag (bench warp --size, align --target); default from SynthConfig
    g.add_argument("--size", default=None, metavar="WxH", help=f"frame size in pixels (default: {w}x{h})")
    s.set_defaults(fn=_synth)

    s = data.add_parser("synth-robot", help="synthetic robot demonstrations (Inspire hands + wrists) as a LeRobot v2.1 dataset",
                        description="The synthetic episodes of `data synth` retargeted to two Inspire hands (6 joints each, "
                                    "Unitree's normalised units) plus wrist poses, written as a LeRobot v2.1 folder with "
                                    "camera intrinsics (beingh0.data.synth.robot; docs/robot-data.md).")
    s.add_argument("--out", type=user_path, required=True, help="output LeRobot dataset folder")
    s.add_argument("--episodes", type=int, default=16, help="number of episodes (default: 16)")
    s.add_argument("--seconds", type=float, default=4.0, help="episode length in seconds (default: 4)")
    s.add_argument("--fps", type=float, default=15.0, choices=(15.0, 30.0), help="frame rate (default: 15)")
    s.add_argument("--size", default="96x96", metavar="WxH", help="video frame size, even numbers (default: 96x96)")
    s.add_argument("--seed", type=int, default=0, help="collection seed (default: 0)")
    s.add_argument("--lookahead", type=int, default=1, help="action = state this many frames later (default: 1)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing folder in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_synth_robot)

    s = data.add_parser("show", help="render an episode's frames with projected hand keypoints and captions (PNG grid or mp4)")
    s.add_argument("episode", type=user_path, help="a dataset folder (data synth / data build), a LeRobot dataset folder or a single episode .tar")
    s.add_argument("--key", default=None, help="episode key or position in the dataset's index, or a LeRobot episode index (default: the first)")
    s.add_argument("--out", type=user_path, default=None, help="output .png (grid) or .mp4 (default: EPISODE with .png)")
    s.add_argument("--frames", default=None, help="frame numbers, e.g. '0,5,10' (default: 8 spread frames; all for mp4)")
    s.add_argument("--root", type=user_path, default=None, help="data folder of the source, for episodes whose frames are external videos")
    s.add_argument("--model-dir", type=user_path, default=None, help="folder with MANO_RIGHT.pkl/MANO_LEFT.pkl (default: the embedded hand)")
    s.add_argument("--cols", type=int, default=4, help="grid columns for PNG output (default: 4)")
    s.set_defaults(fn=_show)

    s = data.add_parser("tokenize", help="motion ids of every usable 1-second window (sidecar next to the shards, for the VLA)",
                        description="Encode every usable 1-second window of every hand with a motion tokenizer, in batches, "
                                    "into DIR/motion_ids/<tokenizer fingerprint>/ (one file per shard, recorded in "
                                    "manifest.json). Resumable and idempotent: shards already done are skipped.")
    s.add_argument("dirs", nargs="+", type=user_path, metavar="DIR", help="dataset folders (data build / data synth)")
    s.add_argument("--tokenizer", type=user_path, required=True, metavar="CKPT", help="motion tokenizer folder (tokenizer train --out DIR/tokenizer)")
    s.add_argument("--batch-size", type=int, default=256, help="windows per encode call (default: 256)")
    s.add_argument("--force", action="store_true", help="re-encode every shard")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_tokenize)

    s = data.add_parser(
        "balance", help="view-invariant balancing of hand positions across sources: table + before/after PNG",
        description="Read the wrist positions of dataset folders, fit the balancing sampler (depth scaling and "
                    "in-plane rotation, beingh0.align), draw one move per sample and plot each group's hand-position "
                    "distribution in the model input before and after.")
    s.add_argument("datasets", nargs="+", type=user_path, help="dataset folders (data synth / data build)")
    s.add_argument("--png", type=user_path, default="out/balance.png", help="output plot (default: out/balance.png)")
    s.add_argument("--group-by", default="source",
                   help="'source' (default) or 'meta.<key>', e.g. meta.camera_kind for the synthetic source's ego/third views")
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.set_defaults(fn=_balance)
