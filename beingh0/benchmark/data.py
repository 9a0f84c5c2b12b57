"""Data-loader benchmark (op ``data_loader``): samples/s of motion-only and image samples.

Inputs are random but smooth episodes from :data:`RANDOM_SOURCE` (a source object that is not in
the registry: it exists for benchmarks and tests; the real generated data set is the ``synthetic``
source). The dataset is built once into a temporary folder; each case then times full epochs of
``ResumableLoader`` (shuffled, reference frame drawn at random, D162 features) with 0 workers
(in-process: the per-core figure) and 1 or 2 worker processes.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import stamp, write_records


# ----------------------------------------------------------------------------------- random source
def random_episode(seed: int, seconds: float = 4.0, fps: float = 30.0, frames: str = "none", sides=("left", "right"),
                   size=(64, 48), source: str = "bench-random", gaps: bool = True):
    """A smooth random episode (MANO tracks, constant camera, text, optional small frames)."""
    from ..data.episode import CameraTrack, Episode, Frames, HandTrack, TextAnnotations, TextSegment
    from ..data.video import encode_jpeg, encode_mp4

    rng = np.random.default_rng(seed)
    T = max(1, int(round(seconds * fps)))
    t = np.arange(T)[:, None] / fps
    hands = {}
    for k, side in enumerate(sides):
        w = rng.uniform(0.3, 1.5, (1, 3))
        go = rng.normal(size=(1, 3)) * 0.8 + 0.4 * np.sin(w * t + rng.uniform(0, 6, (1, 3)))
        hp = 0.3 * rng.normal(size=(1, 45)) + 0.25 * np.sin(rng.uniform(0.5, 2, (1, 45)) * t)
        tr = np.array([[(-0.12 if side == "left" else 0.12), 0.05, 0.5]]) + 0.08 * np.sin(w * t + k)
        valid = np.ones(T, bool)
        if gaps and T > 20:
            a = int(rng.integers(0, T - 10))
            valid[a:a + int(rng.integers(1, 8))] = False
        hands[side] = HandTrack.from_params(go, hp, rng.normal(size=10) * 0.5, tr, valid, rng.uniform(0.5, 1, T))
    W, H = size
    fr = Frames()
    if frames != "none":
        y, x = np.mgrid[0:H, 0:W]
        a, b = rng.uniform(0.05, 0.2, 2)
        pix = np.stack([(127 + 100 * np.sin(a * x + b * y + 0.2 * i + np.arange(3)[:, None, None])).transpose(1, 2, 0)
                        for i in range(T)]).astype(np.uint8)
        if frames == "jpeg":
            fr = Frames("jpeg", None, [encode_jpeg(p, 85) for p in pix])
        elif frames == "mp4":
            fr = Frames("mp4", np.arange(T, dtype=np.int64), encode_mp4(pix, fps))
        else:
            raise ValueError(f"frames must be 'none', 'jpeg' or 'mp4', got {frames!r}")
    dur = T / fps
    segs = [TextSegment(float(s), float(min(s + 1, dur)), f"move the {h} hand step {s}", f"the {h} hand moves", h)
            for s in range(int(dur)) for h in (("both",) + tuple(sides))[: 1 + (s % 2)]]
    text = TextAnnotations(f"do task {seed % 7}", f"both hands do task {seed % 7}",
                           {s: f"{s} part of task {seed % 7}" for s in sides}, segs)
    cam = CameraTrack.constant(0.9 * W, 0.9 * W, W / 2, H / 2, W, H, T, distortion=[0.01, -0.002, 0.0, 0.0],
                               distortion_model="radtan")
    return Episode(f"rnd{seed:06d}", source, "CC0-1.0", float(fps), T, hands, cam, fr, text, {"seed": int(seed)})


def _list_items(root, options):
    n = int(options.get("episodes", 8))
    return [str(i) for i in range(n)]


def _load_item(root, item, options):
    if options.get("fail_item") is not None and item == str(options["fail_item"]):
        raise ValueError("this item fails on purpose (option fail_item)")
    seed = int(item) + 1000 * int(options.get("seed", 0))
    return [random_episode(seed, float(options.get("seconds", 4.0)), float(options.get("fps", 30.0)),
                           options.get("frames", "none"))]


def _make_source():
    from ..data.sources import Source

    return Source("bench-random", "CC0-1.0", "random smooth episodes for benchmarks and tests (not registered)",
                  _list_items, _load_item)


def random_source():
    """The benchmark/test source (options: episodes, seconds, fps, frames, seed, fail_item)."""
    return _make_source()


# ----------------------------------------------------------------------------------- benchmark
def _time_loader(root, kind, workers, batch, seconds_min):
    from ..data.loader import ResumableLoader, ShardDataset

    ds = ShardDataset(root, kind=kind)
    loader = ResumableLoader(ds, batch_size=batch, num_workers=workers)
    it = iter(loader)
    n, warm = 0, None
    epochs = 0
    while True:
        try:
            b = next(it)
        except StopIteration:
            epochs += 1
            it = iter(loader)
            continue
        if warm is None:  # first batch pays for worker start-up and first reads
            warm = time.perf_counter()
            continue
        n += len(b["index"])
        if time.perf_counter() - warm > seconds_min and epochs >= 1:
            break
    el = time.perf_counter() - warm
    return n / el, n, el


def run_data_bench(episodes: int = 48, seconds: float = 10.0, workers=(0, 1, 2), kinds=("motion", "image"),
                   batch: int = 64, min_time_s: float = 3.0, repeats: int = 3, json_path=None, frames: str = "mp4",
                   keep: str | None = None) -> list[dict]:
    """Samples/s per (kind, workers); returns ENGINEERING.md section 5 records (op ``data_loader``)."""
    from ..data.build import build_dataset

    tmp = tempfile.mkdtemp(prefix="bh0-databench-")
    root = Path(keep) if keep else Path(tmp) / "ds"
    t0 = time.perf_counter()
    build_dataset(random_source(), None, root, {"episodes": episodes, "seconds": seconds, "frames": frames},
                  episodes_per_shard=16, workers=1, progress=False, overwrite=True)
    build_s = time.perf_counter() - t0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    records = []
    for kind in kinds:
        for w in workers:
            rates = []
            for _ in range(repeats):
                rate, n, el = _time_loader(root, kind, w, batch, min_time_s)
                rates.append(rate)
            med = float(np.median(rates))
            procs = max(1, w)
            ms = 1e3 / med
            rec = {"op": "data_loader", "impl": f"ResumableLoader/{kind}", "device": "cpu", "dtype": "float32",
                   "shape": [batch, 16, 162], "kind": kind, "workers": w, "batch": batch,
                   "median_ms": ms * batch, "p10_ms": 1e3 * batch / max(rates), "p90_ms": 1e3 * batch / min(rates),
                   "samples_per_s": med, "samples_per_s_runs": rates,
                   "samples_per_s_per_core": med / min(procs, cores), "peak_mem_mb": None,
                   "max_abs_err_vs_reference": None, "baseline": None, "speedup_vs_baseline": None,
                   "dataset": {"episodes": episodes, "seconds": seconds, "fps": 30.0, "frames": frames,
                               "image_size": [64, 48], "build_s": build_s},
                   "cores": cores, **stamp("cpu")}
            records.append(rec)
            print(f"{kind:7s} workers={w}  {med:9.0f} samples/s  ({med / min(procs, cores):7.0f} per core)  runs: "
                  + ", ".join(f"{r:.0f}" for r in rates), flush=True)
    if json_path:
        write_records(records, json_path)
    if not keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return records
