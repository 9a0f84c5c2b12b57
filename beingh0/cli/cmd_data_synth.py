"""``beingh0 data synth`` (synthetic hand-object episodes) and ``beingh0 data show`` (look at one)."""
from __future__ import annotations

import time
from pathlib import Path


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in s.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 256x256 (width x height), got {s!r}") from None
    return w, h


def run_synth(out: str, episodes: int, seconds: float, size=(256, 256), fps: float = 15.0, frames: bool = True,
              seed: int = 0, workers: int = 1, fmt: str = "mp4", supersample: int = 1, progress: bool = True,
              episodes_per_shard: int = 16, overwrite: bool = False) -> dict:
    """Synthesise ``episodes`` episodes into a sharded dataset at ``out`` (``beingh0.data.build``:
    tar shards + index.json + manifest.json, one job per shard, ``workers`` processes)."""
    from ..data.build import build_dataset
    from ..data.sources.synthetic import config_from_options

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    opts = {"n": episodes, "seed": seed, "seconds": seconds, "size": list(size), "fps": fps, "frames": frames,
            "format": fmt, "supersample": supersample}
    config_from_options(opts)
    t0 = time.perf_counter()
    build_dataset("synthetic", None, out, options=opts, episodes_per_shard=episodes_per_shard, workers=workers,
                  progress=progress, overwrite=overwrite)
    dt = time.perf_counter() - t0
    n_frames = int(round(episodes * seconds * fps))
    return {"episodes": episodes, "frames": n_frames, "seconds": round(dt, 2),
            "frames_per_s": round(n_frames / max(dt, 1e-9), 2), "out": str(out)}


def _synth(a):
    st = run_synth(a.out, a.episodes, a.seconds, _size(a.size), a.fps, not a.no_frames, a.seed, a.workers, a.format,
                   a.supersample, progress=not a.quiet, episodes_per_shard=a.episodes_per_shard, overwrite=a.overwrite)
    kind = "motion-only" if a.no_frames else f"{a.size} {a.format}"
    print(f"wrote {st['episodes']} synthetic episodes ({kind}, {st['frames']} frames) to {st['out']} "
          f"in {st['seconds']} s: {st['frames_per_s']} frames/s")


def _show(a):
    from ..data.show import show_episode

    frames = None
    if a.frames:
        frames = [int(x) for x in a.frames.replace(",", " ").split()]
    src = Path(a.episode)
    if src.is_dir():  # a dataset folder: pick the episode by key or position in its index
        from ..data.shards import load_index

        index = load_index(src)
        which = a.key if a.key is not None else "0"
        ep = index.read(int(which) if which.isdigit() else which)
        out = a.out or str(src / f"{ep.episode_id}.png")
    else:
        if a.key is not None:
            raise ValueError("--key selects an episode inside a dataset folder; EPISODE is a single episode file")
        ep = src
        out = a.out or str(src.with_suffix(".png"))
    print(show_episode(ep, out, frames=frames, root=a.root, model_dir=a.model_dir, cols=a.cols))


def register(sub, bench):
    from .main import subgroup

    data = subgroup(sub, "data", "UniHand data tools")
    s = data.add_parser("synth", help="generate synthetic bimanual hand-object episodes (rendered on the CPU, CC0)",
                        description="Procedural hands reaching, grasping, moving, placing, pouring, pressing and opening "
                                    "objects on a table, rendered headless with MANO-layout hands, with per-second "
                                    "instructions and captions. Deterministic from --seed.")
    s.add_argument("--out", required=True, help="output dataset folder (tar shards + index.json + manifest.json)")
    s.add_argument("--episodes", type=int, default=64, help="number of episodes (default: 64)")
    s.add_argument("--seconds", type=float, default=2.0, help="length of each episode in seconds (default: 2)")
    s.add_argument("--size", default="256x256", help="frame size WIDTHxHEIGHT (default: 256x256)")
    s.add_argument("--fps", type=float, default=15.0, choices=[15.0, 30.0], help="frame rate (default: 15, Being-H0's)")
    s.add_argument("--no-frames", action="store_true", help="motion-only episodes (no rendering; fast)")
    s.add_argument("--format", choices=["mp4", "jpeg"], default="mp4", help="frame storage (default: mp4, H.264)")
    s.add_argument("--supersample", type=int, default=1, help="anti-aliasing: render at N times the size (default: 1)")
    s.add_argument("--seed", type=int, default=0, help="collection seed; episode i is fixed by (seed, i) (default: 0)")
    s.add_argument("--workers", type=int, default=1, help="worker processes, one shard job each (default: 1)")
    s.add_argument("--episodes-per-shard", type=int, default=16, help="episodes per tar shard (default: 16)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_synth)

    s = data.add_parser("show", help="render an episode's frames with projected hand keypoints and captions (PNG grid or mp4)")
    s.add_argument("episode", help="a dataset folder (data synth / data build) or a single episode .tar (save_episode)")
    s.add_argument("--key", default=None, help="episode key or position in the dataset's index (default: the first)")
    s.add_argument("--out", default=None, help="output .png (grid) or .mp4 (default: EPISODE with .png)")
    s.add_argument("--frames", default=None, help="frame numbers, e.g. '0,5,10' (default: 8 spread frames; all for mp4)")
    s.add_argument("--root", default=None, help="data folder of the source, for episodes whose frames are external videos")
    s.add_argument("--model-dir", default=None, help="folder with MANO_RIGHT.pkl/MANO_LEFT.pkl (default: the embedded hand)")
    s.add_argument("--cols", type=int, default=4, help="grid columns for PNG output (default: 4)")
    s.set_defaults(fn=_show)
