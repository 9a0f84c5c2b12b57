"""Building a dataset folder (shards + index + manifest) from a source, as independent shard jobs.

Shard ``j`` holds the episodes of source items ``[j * k, (j + 1) * k)`` (``k = episodes_per_shard``;
most sources yield one episode per item), so every shard is known before any work starts and is
built by one job: locally in a ``ProcessPoolExecutor``, or on a cluster with Ray
(``backend="ray"``, the ``ray`` extra). Jobs write their shard atomically and return its index
entry; the driver writes ``index.json`` and ``manifest.json`` last. Shards are byte-deterministic
(fixed tar metadata, sorted JSON), so the output does not depend on the number of workers.

A failing item stops the build with its item id and the cause, unless ``skip_errors=True``: then
the item is left out and recorded in ``manifest.json`` (``skipped``).
"""
from __future__ import annotations

import os
import traceback
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..core.errors import UserError, UserValueError
from .samples import MotionOptions, motion_sidecar
from .shards import INDEX_FORMAT, INDEX_NAME, INDEX_VERSION, MANIFEST_FORMAT, MANIFEST_NAME, shard_name, write_json, write_shard
from .sources import Source, get_source

MANIFEST_VERSION = 1


class BuildError(RuntimeError):
    """A source item failed; the message names the source, the item and the cause."""


class BuildInputError(BuildError, UserError):
    """A source item failed on bad input (its cause is a :class:`UserError`): one line, no traceback."""


class OutputExistsError(UserError, FileExistsError):
    """The output folder holds data that would be replaced."""


def _resolve(source: str | Source) -> Source:
    return source if isinstance(source, Source) else get_source(source)


def episode_entry(ep, members: dict[str, bytes], motion: dict) -> dict[str, Any]:
    """Index metadata of one episode (``members`` offsets are added by ``write_shard``)."""
    t = ep.text
    return {
        "key": ep.episode_id, "num_frames": int(ep.num_frames), "fps": float(ep.fps), "source": ep.source,
        "license": ep.license, "hands": sorted(ep.hands), "duration": float(ep.duration),
        "has_frames": ep.frames.kind != "none", "frames_kind": ep.frames.kind,
        "width": ep.camera.width, "height": ep.camera.height, "motion": motion,
        "text": {"instruction": bool(t.instruction), "summary": bool(t.summary), "per_hand": sorted(t.per_hand),
                 "segments": len(t.segments)},
    }


def build_shard(source: str | Source, root: str | None, items: list[str], options: dict, out_dir: str, shard: int,
                motion: MotionOptions, skip_errors: bool = False) -> tuple[dict | None, list[dict]]:
    """One job: load ``items``, add motion sidecars, write ``shard-<shard>.tar``; returns (index entry, skipped).

    Runs torch on one thread: reductions split across threads round differently, and shards must
    not depend on how many threads (or workers) built them.
    """
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build_shard(source, root, items, options, out_dir, shard, motion, skip_errors)
    finally:
        torch.set_num_threads(prev)


def _build_shard(source, root, items, options, out_dir, shard, motion, skip_errors):
    src = _resolve(source)
    rootp = Path(root) if root is not None else None
    eps, metas, skipped = [], [], []
    for item in items:
        try:
            loaded = src.load_item(rootp, item, dict(options))
            for ep in loaded:
                if ep.source != src.name:
                    raise ValueError(f"episode {ep.episode_id!r} says source {ep.source!r}, expected {src.name!r}")
                members = ep.to_members()  # validates
                side_bytes, summary = motion_sidecar(ep, motion)
                k = ep.episode_id
                ordered = {f"{k}.episode.json": members.pop(f"{k}.episode.json"),
                           f"{k}.arrays.safetensors": members.pop(f"{k}.arrays.safetensors"),
                           summary["member"]: side_bytes, **members}
                eps.append(ordered)
                metas.append(episode_entry(ep, ordered, summary))
        except Exception as e:  # any failure of a third-party reader is reported with its item
            msg = f"source {src.name!r} item {item!r}: {type(e).__name__}: {e}"
            if not skip_errors:
                cls = BuildInputError if isinstance(e, UserError) else BuildError
                raise cls(msg + " (rerun with --skip-errors to leave failed items out and record them)") from e
            skipped.append({"item": item, "error": msg, "traceback": traceback.format_exc(limit=3)})
    if not eps:
        return None, skipped
    entry = write_shard(Path(out_dir) / shard_name(shard), eps)
    for e, meta in zip(entry["episodes"], metas):
        e.update(meta)
    return entry, skipped


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="shards", unit="shard", disable=not enabled)


def _worker_init():
    # Forked after the driver ran torch (hand models): a child entering the parent's OpenMP pool
    # can hang (libgomp is not fork-safe). Jobs run one per process, so one thread each is right.
    import torch

    torch.set_num_threads(1)


def _run_process(jobs, workers, progress):
    results = [None] * len(jobs)
    if workers <= 1:
        with _progress(len(jobs), progress) as bar:
            for i, j in enumerate(jobs):
                results[i] = build_shard(*j)
                bar.update()
        return results
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool, _progress(len(jobs), progress) as bar:
        futs = {pool.submit(build_shard, *j): i for i, j in enumerate(jobs)}
        pending = set(futs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    for p in pending:
                        p.cancel()
                    raise f.exception()
                results[futs[f]] = f.result()
                bar.update()
    return results


def _run_ray(jobs, workers, progress):
    from .extras import require

    ray = require("ray", "ray", "building on Ray (--ray)")
    if not ray.is_initialized():
        ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False, configure_logging=False)
    remote = ray.remote(build_shard)
    refs = [remote.remote(*j) for j in jobs]
    pending = list(refs)
    with _progress(len(jobs), progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                for p in pending:
                    ray.cancel(p)
                cause = getattr(e, "cause", None)
                raise BuildError(str(cause) if cause is not None else str(e)) from None
            bar.update()
    return ray.get(refs)


def build_dataset(source: str | Source, root: str | Path | None, out_dir: str | Path, options: dict | None = None,
                  episodes_per_shard: int = 64, workers: int = 1, backend: str = "process", *, skip_errors: bool = False,
                  motion: MotionOptions | None = None, overwrite: bool = False, progress: bool = True,
                  max_items: int | None = None) -> dict:
    """Build ``out_dir`` (shards, ``index.json``, ``manifest.json``) from a registered source.

    Args:
        source: a source name (``beingh0.data.sources.sources()``) or a ``Source``.
        root: the source's raw data folder (``None`` for generated sources).
        options: source options (``--option k=v``), recorded in the manifest.
        episodes_per_shard: source items per shard (~ episodes; 64 gives 10-500 MB shards for video sources).
        workers: parallel shard jobs; backend ``"process"`` (local) or ``"ray"`` (cluster).
        skip_errors: leave failing items out (recorded in the manifest) instead of failing.
        motion: build-time motion settings (``MotionOptions``).
        overwrite: replace an existing dataset in ``out_dir``.
        max_items: only the first N items (quick looks).
    Returns the manifest dict.
    """
    src = _resolve(source)
    options = dict(options or {})
    motion = motion or MotionOptions()
    if episodes_per_shard < 1:
        raise UserValueError(f"episodes_per_shard must be >= 1, got {episodes_per_shard}")
    if workers < 1:
        raise UserValueError(f"workers must be >= 1, got {workers}")
    if backend not in ("process", "ray"):
        raise UserValueError(f"backend must be 'process' or 'ray', got {backend!r}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) or choose another folder")
        if not (out / INDEX_NAME).is_file() and not (out / MANIFEST_NAME).is_file():
            raise OutputExistsError(f"{out} is not empty and is not a beingh0 dataset; refusing to overwrite it")
        for p in list(out.glob("shard-*.tar")) + [out / INDEX_NAME, out / MANIFEST_NAME]:
            if p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    rootp = Path(root) if root is not None else None
    items = list(src.list_items(rootp, dict(options)))
    if max_items is not None:
        items = items[:max_items]
    if not items:
        raise UserValueError(f"source {src.name!r} lists no items under {root!r} with options {options}")
    if len(set(items)) != len(items):
        raise UserValueError(f"source {src.name!r} lists duplicate items; item ids must be unique")
    ref = src.name if not isinstance(source, Source) else src
    jobs = [(ref, None if rootp is None else str(rootp), items[i:i + episodes_per_shard], options, str(out),
             i // episodes_per_shard, motion, skip_errors) for i in range(0, len(items), episodes_per_shard)]
    if backend == "process":  # forked workers inherit the hand models (generating one takes ~4 s)
        from ..mano.model import hand_model

        for side in ("left", "right"):
            hand_model(side, motion.hand_model)
    runner = _run_ray if backend == "ray" else _run_process
    results = runner(jobs, workers, progress)
    shards, skipped, seen = [], [], {}
    for (entry, sk), job in zip(results, jobs):
        skipped += sk
        if entry is None:
            continue
        for e in entry["episodes"]:
            if e["key"] in seen:
                raise BuildInputError(f"episode id {e['key']!r} is produced twice (shards {seen[e['key']]} and {entry['file']}); "
                                 f"source {src.name!r} must give unique episode ids")
            seen[e["key"]] = entry["file"]
        shards.append(entry)
    if not shards:
        raise BuildInputError(f"no episode could be built from source {src.name!r}; first error: {skipped[0]['error'] if skipped else '-'}")
    eps = [e for s in shards for e in s["episodes"]]
    index = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "shards": shards}
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "sources": {src.name: {"license": src.license, "description": src.description, "redistributable": src.redistributable,
                               "root": None if rootp is None else os.fspath(rootp), "options": options}},
        "build": {"episodes_per_shard": episodes_per_shard, "motion": asdict(motion), "items": len(items)},
        "counts": {"shards": len(shards), "episodes": len(eps), "frames": sum(e["num_frames"] for e in eps),
                   "hours": sum(e["duration"] for e in eps) / 3600.0,
                   "motion_windows": sum(b - a for e in eps for runs in e["motion"]["windows"].values() for a, b in runs),
                   "skipped_items": len(skipped)},
        "skipped": [{"item": s["item"], "error": s["error"]} for s in skipped],
    }
    write_json(out / INDEX_NAME, index)
    write_json(out / MANIFEST_NAME, manifest)
    return manifest
