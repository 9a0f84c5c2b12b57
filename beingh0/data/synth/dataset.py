"""A synthetic UniHand dataset folder: ``beingh0 data synth`` and every job that needs the default data.

One function builds it (:func:`synth_dataset`); the tokenizer's and the demo's default training and
held-out sets are such folders, built with other seeds.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ...core.errors import UserValueError
from .generate import SynthConfig

__all__ = ["synth_dataset", "synth_options", "built_with"]


def synth_options(episodes: int, config: SynthConfig, seed: int) -> dict:
    """The ``synthetic`` source options (recorded in the dataset's manifest) for these settings."""
    return {"n": episodes, "seed": seed, "seconds": float(config.seconds), "size": list(config.size), "fps": config.fps,
            "frames": config.frames, "format": config.image_format, "supersample": config.supersample,
            "scenario": config.scenario}


def built_with(folder: Path, opts: dict) -> bool:
    """Whether ``folder`` holds a synthetic dataset built with exactly ``opts``."""
    man = folder / "manifest.json"
    if not (man.is_file() and (folder / "index.json").is_file()):
        return False
    try:
        return json.loads(man.read_text())["sources"]["synthetic"]["options"] == opts
    except (ValueError, KeyError, TypeError):
        return False


def synth_dataset(out, episodes: int, config: SynthConfig | None = None, seed: int = 0, workers: int = 1,
                  progress: bool = True, episodes_per_shard: int = 16, overwrite: bool = False,
                  reuse: bool = False) -> dict:
    """Synthesise ``episodes`` episodes (:class:`SynthConfig`) into a sharded dataset at ``out``
    (``beingh0.data.build``: one job per shard, ``workers`` processes).

    ``reuse=True`` keeps an existing folder built with exactly these options (so a resumed run reads
    the very same samples) and rebuilds one built with other options. Returns a summary dict
    (episodes, frames, seconds, frames_per_s, out, reused)."""
    from ..build import build_dataset

    config = (config or SynthConfig()).validate()
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserValueError(f"episodes={episodes!r} must be an integer >= 1")
    if workers < 1:
        raise UserValueError(f"workers={workers!r} must be >= 1")
    out = Path(out)
    opts = synth_options(episodes, config, seed)
    n_frames = int(round(episodes * config.seconds * config.fps))
    if reuse and built_with(out, opts):
        return {"episodes": episodes, "frames": n_frames, "seconds": 0.0, "frames_per_s": 0.0, "out": str(out),
                "reused": True}
    t0 = time.perf_counter()
    build_dataset("synthetic", None, out, options=opts, episodes_per_shard=episodes_per_shard, workers=workers,
                  progress=progress, overwrite=overwrite or (reuse and out.exists()))
    dt = time.perf_counter() - t0
    return {"episodes": episodes, "frames": n_frames, "seconds": round(dt, 2),
            "frames_per_s": round(n_frames / max(dt, 1e-9), 2), "out": str(out), "reused": False}
