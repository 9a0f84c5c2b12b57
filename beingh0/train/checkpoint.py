"""Checkpoints that survive a crash at any moment, and RNG states for exact resume.

Layout under ``OUT/checkpoints/``::

    step-00000100/      a complete checkpoint (written as .step-00000100.tmp, then renamed)
        model.pt        full (unsharded) model state dict
        optimizer.pt    optimizer state keyed by parameter name (loads on 1..N ranks, DDP or FSDP2)
        trainer.pt      step, scheduler, per-rank RNG states, per-rank data-iterator states
        history.json    the logged numbers up to this step
        meta.json       written last: step, config, world size, caller's meta, file sizes

Atomicity: rank 0 writes everything into a hidden ``.step-N.tmp`` folder, fsyncs each file and the
folder, renames it to ``step-N`` (atomic on POSIX) and fsyncs the parent; only then are older
checkpoints beyond ``keep`` deleted. A crash leaves at worst a ``.tmp`` folder, which is ignored
and removed; :func:`latest_checkpoint` also checks every file's size against ``meta.json`` and
falls back to the previous complete checkpoint when one does not match.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

from ..core.errors import UserValueError
from .distributed import DistInfo, all_gather_objects, barrier

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "read_meta", "rng_state", "set_rng_state",
           "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d{8})$")


# ----------------------------------------------------------------------------------------- RNG
def rng_state() -> dict:
    """Python, numpy (global) and torch (CPU and current CUDA device) generator states."""
    py = random.getstate()
    npst = np.random.get_state(legacy=False)
    s = {"python": [py[0], list(py[1]), py[2]], "torch": torch.get_rng_state(),
         "numpy": {"key": torch.from_numpy(npst["state"]["key"].astype(np.int64)), "pos": int(npst["state"]["pos"]),
                   "has_gauss": int(npst["has_gauss"]), "gauss": float(npst["gauss"])}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state()
    return s


def set_rng_state(s: dict) -> None:
    random.setstate((s["python"][0], tuple(s["python"][1]), s["python"][2]))
    n = s["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state(s["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ----------------------------------------------------------------------------------------- files
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete(path: Path) -> bool:
    """``meta.json`` present and every file it lists has the recorded size."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        return all((path / f).is_file() and (path / f).stat().st_size == n for f, n in meta["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def latest_checkpoint(out_dir) -> Path | None:
    """The newest complete checkpoint folder under ``out_dir/checkpoints`` (None if there is none)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir())
    for _, p in reversed(found):
        if _complete(p):
            return p
    return None


def read_meta(path) -> dict:
    """A checkpoint's ``meta.json``: ``step``, ``config``, ``world_size``, ``meta`` (the caller's)."""
    return json.loads((Path(path) / "meta.json").read_text())


def _options(info: DistInfo, **kw) -> StateDictOptions:
    # full (gathered) state dicts work for plain, DDP and FSDP2 modules alike; loading them needs a
    # process group, so one plain process uses the default (identical for an unsharded module)
    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw) if torch.distributed.is_initialized() \
        else StateDictOptions()


def save_checkpoint(out_dir, step: int, model: nn.Module, optimizer, scheduler, data, history: dict, config: dict,
                    info: DistInfo, keep: int = 1, meta: dict | None = None,
                    on_checkpoint: Callable[[Path], None] | None = None) -> Path:
    """Write checkpoint ``step`` (call on every rank: FSDP2 gathers shards). Returns its folder."""
    model_sd = get_model_state_dict(model, options=_options(info))
    optim_sd = get_optimizer_state_dict(model, optimizer, options=_options(info))
    rngs = all_gather_objects(rng_state())
    datas = all_gather_objects(data.state_dict() if hasattr(data, "state_dict") else None)
    root = Path(out_dir) / CHECKPOINT_DIR
    final = root / f"step-{step:08d}"
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{final.name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        torch.save(model_sd, tmp / "model.pt")
        torch.save(optim_sd, tmp / "optimizer.pt")
        torch.save({"step": step, "scheduler": scheduler.state_dict(), "rng": rngs, "data": datas},
                   tmp / "trainer.pt")
        (tmp / "history.json").write_text(json.dumps(history))
        if on_checkpoint is not None:
            on_checkpoint(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "meta.json").write_text(json.dumps({"step": step, "config": config, "world_size": info.world_size,
                                                   "torch": torch.__version__, "meta": meta or {}, "files": files},
                                                  indent=1))
        for p in tmp.iterdir():
            if p.is_file():
                _fsync(p)
        _fsync(tmp)
        if final.exists():  # a checkpoint of the same step from an earlier, interrupted run
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync(root)
        older = sorted(p for p in root.iterdir() if _NAME.match(p.name) and p.name < final.name)
        for p in older[: max(0, len(older) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
        for p in root.glob(".step-*.tmp"):  # left by a crash
            shutil.rmtree(p, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, data, info: DistInfo) -> tuple[int, dict]:
    """Restore a checkpoint into an already wrapped ``model`` and its optimizer, scheduler, RNG and
    ``data`` iterator (call on every rank). Returns ``(step, history)``."""
    path = Path(path)
    meta = read_meta(path)
    model_sd = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    set_model_state_dict(model, model_sd, options=_options(info))
    optim_sd = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    set_optimizer_state_dict(model, optimizer, optim_sd, options=_options(info))
    tr = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    scheduler.load_state_dict(tr["scheduler"])
    same_world = meta["world_size"] == info.world_size
    if not same_world and info.is_main:
        warnings.warn(f"resuming a {meta['world_size']}-rank checkpoint on {info.world_size} ranks: the data "
                      "iterators take rank 0's state and the random generators are reseeded, so the run continues "
                      "correctly but not bit-exactly", stacklevel=3)
    # the data state of rank r; an iterator whose state is global (ResumableLoader) also resumes on
    # another world size from rank 0's state, RNG streams then restart per rank (not bit-exact)
    data_state = tr["data"][info.rank] if same_world else tr["data"][0]
    if data_state is not None:
        if not hasattr(data, "load_state_dict"):
            raise UserValueError(f"the checkpoint {path} holds a data position but the data iterator has no "
                                 "load_state_dict(); pass the same kind of iterator that wrote it")
        data.load_state_dict(data_state)
    elif hasattr(data, "load_state_dict"):
        raise UserValueError(f"the checkpoint {path} holds no data position (its iterator had no state_dict()); "
                             "resume with the same kind of iterator or start a new run")
    if same_world:
        set_rng_state(tr["rng"][info.rank])
    else:
        seed_everything(int(meta["config"]["seed"]) + info.rank + 1_000_003 * int(tr["step"]))
    return int(tr["step"]), json.loads((path / "history.json").read_text())
