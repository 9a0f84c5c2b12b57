"""``beingh0 data synth`` (synthetic hand-object episodes) and ``beingh0 data show`` (look at one)."""
from __future__ import annotations

import os
import time
from pathlib import Path


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in s.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 256x256 (width x height), got {s!r}") from None
    return w, h


def write_episode(out_dir: Path, ep) -> Path:
    """Where ``data synth`` puts one episode (one tar per episode for now; shards later)."""
    from ..data.episode import save_episode

    return save_episode(ep, out_dir / "episodes" / f"{ep.episode_id}.tar")


def _one(job):
    out, seed, index, opts = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from ..data.sources.synthetic import load_item

    t = time.perf_counter()
    ep = load_item(None, str(index), dict(opts, seed=seed))[0]
    p = write_episode(Path(out), ep)
    return str(p), ep.num_frames, time.perf_counter() - t


def run_synth(out: str, episodes: int, seconds: float, size=(256, 256), fps: float = 15.0, frames: bool = True,
              seed: int = 0, workers: int = 1, fmt: str = "mp4", supersample: int = 1, progress: bool = True) -> dict:
    from tqdm import tqdm

    from ..data.sources.synthetic import config_from_options

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    opts = {"seconds": seconds, "size": list(size), "fps": fps, "frames": frames, "format": fmt, "supersample": supersample}
    config_from_options(opts)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    jobs = [(str(outp), seed, i, opts) for i in range(episodes)]
    t0 = time.perf_counter()
    n_frames = 0
    bar = tqdm(total=episodes, unit="ep", desc="synth", disable=not progress)
    if workers == 1:
        results = (_one(j) for j in jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_one, jobs)
    try:
        for _, nf, _ in results:
            n_frames += nf
            bar.update(1)
            bar.set_postfix(fps=f"{n_frames / max(time.perf_counter() - t0, 1e-9):.1f}")
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    dt = time.perf_counter() - t0
    stats = {"episodes": episodes, "frames": n_frames, "seconds": round(dt, 2), "frames_per_s": round(n_frames / max(dt, 1e-9), 2),
             "out": str(outp / "episodes")}
    return stats


def _synth(a):
    st = run_synth(a.out, a.episodes, a.seconds, _size(a.size), a.fps, not a.no_frames, a.seed, a.workers, a.format,
                   a.supersample, progress=not a.quiet)
    kind = "motion-only" if a.no_frames else f"{a.size} {a.format}"
    print(f"wrote {st['episodes']} synthetic episodes ({kind}, {st['frames']} frames) to {st['out']} "
          f"in {st['seconds']} s: {st['frames_per_s']} frames/s")


def _show(a):
    from ..data.show import show_episode

    frames = None
    if a.frames:
        frames = [int(x) for x in a.frames.replace(",", " ").split()]
    out = a.out or str(Path(a.episode).with_suffix(".png"))
    print(show_episode(a.episode, out, frames=frames, root=a.root, model_dir=a.model_dir, cols=a.cols))


def register(sub, bench):
    from .main import subgroup

    data = subgroup(sub, "data", "UniHand data tools")
    s = data.add_parser("synth", help="generate synthetic bimanual hand-object episodes (rendered on the CPU, CC0)",
                        description="Procedural hands reaching, grasping, moving, placing, pouring, pressing and opening "
                                    "objects on a table, rendered headless with MANO-layout hands, with per-second "
                                    "instructions and captions. Deterministic from --seed.")
    s.add_argument("--out", required=True, help="output folder (episodes go to OUT/episodes/<id>.tar)")
    s.add_argument("--episodes", type=int, default=64, help="number of episodes (default: 64)")
    s.add_argument("--seconds", type=float, default=2.0, help="length of each episode in seconds (default: 2)")
    s.add_argument("--size", default="256x256", help="frame size WIDTHxHEIGHT (default: 256x256)")
    s.add_argument("--fps", type=float, default=15.0, choices=[15.0, 30.0], help="frame rate (default: 15, Being-H0's)")
    s.add_argument("--no-frames", action="store_true", help="motion-only episodes (no rendering; fast)")
    s.add_argument("--format", choices=["mp4", "jpeg"], default="mp4", help="frame storage (default: mp4, H.264)")
    s.add_argument("--supersample", type=int, default=1, help="anti-aliasing: render at N times the size (default: 1)")
    s.add_argument("--seed", type=int, default=0, help="collection seed; episode i is fixed by (seed, i) (default: 0)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_synth)

    s = data.add_parser("show", help="render an episode's frames with projected hand keypoints and captions (PNG grid or mp4)")
    s.add_argument("episode", help="an episode .tar (as written by data synth / save_episode)")
    s.add_argument("--out", default=None, help="output .png (grid) or .mp4 (default: EPISODE with .png)")
    s.add_argument("--frames", default=None, help="frame numbers, e.g. '0,5,10' (default: 8 spread frames; all for mp4)")
    s.add_argument("--root", default=None, help="data folder of the source, for episodes whose frames are external videos")
    s.add_argument("--model-dir", default=None, help="folder with MANO_RIGHT.pkl/MANO_LEFT.pkl (default: the embedded hand)")
    s.add_argument("--cols", type=int, default=4, help="grid columns for PNG output (default: 4)")
    s.set_defaults(fn=_show)
