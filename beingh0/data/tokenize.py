"""Motion ids for a dataset folder: ``beingh0 data tokenize DIR --tokenizer CKPT``.

The VLA trains on motion *ids*, not features. Running the motion tokenizer inside every loader
worker would repeat the same encode for every epoch, worker and rank; instead one batched pass
writes the ids of **every usable 1-second window of every hand** next to the shards, once per
tokenizer, and the VLA's dataset reads them (a few KB per episode):

``DIR/motion_ids/<fingerprint>/shard-000000.safetensors`` ...
    per episode and hand a tensor ``"<key>.<side>"`` of shape (windows, tokens_per_block), int32,
    row ``w`` = the ids of window ``w`` (15 FPS frames ``[15 w, 15 w + 15)``, i.e. second ``w`` of
    the episode); windows that are not usable (too few valid frames) hold ``-1``.
``DIR/motion_ids/<fingerprint>/ids.json``
    format, the tokenizer's fingerprint, config and layout, the reference rule, and per shard the
    sidecar's sha256, the data shard's sha256 it was made from and its window count; ``complete``.
``DIR/manifest.json``
    gains ``motion_ids[<fingerprint>]``: folder, tokenizer config, layout, counts (provenance).

Each window is encoded in the frame of its own first valid frame (the loader's
``reference="first"``: Being-H0's inference setting, ``docs/tokenizer.md``), left hands mirrored
into the right-hand convention (the one feature path, ``beingh0.motion.hand_features``), then
normalised with the tokenizer's statistics; padded and invalid rows are zeroed, exactly as
``MotionTokenizer.encode_features`` does.

Resumable and idempotent: a shard's sidecar is written atomically and recorded in ``ids.json``
right away; a second run skips every shard whose sidecar still matches (its own sha256 and the data
shard's), so an interrupted run continues where it stopped and a finished one does nothing.

This module is in the data layer: it takes the tokenizer as an object (anything with
``cfg.features``, ``cfg.to_dict()``, ``normalize``, ``encode_windows``, ``layout.codes_to_ids``,
``layout.tokens_per_block``, ``layout.vocab_size`` and ``state_dict()``; i.e. a
``beingh0.tokenizer.MotionTokenizer``); the command line loads it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import UserFileError, UserValueError
from .episode import SIDES
from .shards import MANIFEST_NAME, ShardIndex, sha256_file, write_json

__all__ = ["tokenize_dataset", "tokenizer_fingerprint", "MotionIds", "IDS_FOLDER", "IDS_FORMAT", "IDS_VERSION"]

IDS_FOLDER = "motion_ids"
IDS_FORMAT = "beingh0.motion-ids"
IDS_VERSION = 1
IDS_INDEX = "ids.json"
#: Parts of a tokenizer's state that change while it is *used* (usage counters): not part of its identity.
_VOLATILE = ("usage", "restarts", "last_used", "step", "ema_count", "ema_sum", "initialized")


def tokenizer_fingerprint(tok) -> str:
    """16 hex digits identifying a tokenizer: its config and every weight, codebook and
    normalisation tensor (not the usage counters that encoding may touch)."""
    h = hashlib.sha256(json.dumps(tok.cfg.to_dict(), sort_keys=True).encode())
    for k, v in sorted(tok.state_dict().items()):
        if k.rsplit(".", 1)[-1] in _VOLATILE:
            continue
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sidecar_name(shard_file: str) -> str:
    return Path(shard_file).stem + ".safetensors"


@torch.no_grad()
def _encode(tok, samples: list[dict]) -> np.ndarray:
    x = torch.stack([s["features"] for s in samples])
    m = torch.stack([s["mask"] for s in samples])
    w = (tok.normalize(x.double()) * m[..., None]).float()
    codes = tok.encode_windows(w)
    return tok.layout.codes_to_ids(codes).cpu().numpy().astype(np.int32)


def tokenize_dataset(root, tokenizer, *, batch_size: int = 256, progress: bool = True, force: bool = False) -> dict:
    """Write the motion ids of every usable window of dataset folder ``root`` (see the module
    docstring). ``tokenizer``: a loaded ``MotionTokenizer``. ``force`` re-encodes every shard.

    Returns ``{"fingerprint", "folder", "shards", "encoded" (shards encoded now), "skipped"
    (already done), "windows", "seconds"}``.
    """
    import time

    from safetensors.numpy import save
    from tqdm.auto import tqdm

    from .loader import ShardDataset

    if batch_size < 1:
        raise UserValueError(f"batch_size must be >= 1, got {batch_size}")
    t0 = time.perf_counter()
    root = Path(root)
    idx = ShardIndex(root)
    fp = tokenizer_fingerprint(tokenizer)
    layout = tokenizer.layout
    folder = root / IDS_FOLDER / fp
    folder.mkdir(parents=True, exist_ok=True)
    head = {"format": IDS_FORMAT, "version": IDS_VERSION, "fingerprint": fp, "features": tokenizer.cfg.features,
            "tokenizer": tokenizer.cfg.to_dict(), "tokens_per_block": int(layout.tokens_per_block),
            "vocab_size": int(layout.vocab_size), "reference": "first", "fps": 15, "window_frames": 15,
            "dtype": "int32", "missing": -1}
    ids_path = folder / IDS_INDEX
    rec: dict[str, Any] = {**head, "shards": {}, "complete": False}
    if ids_path.is_file() and not force:
        try:
            old = json.loads(ids_path.read_text())
            if {k: old.get(k) for k in head} == head:
                rec["shards"] = dict(old.get("shards", {}))
        except (ValueError, TypeError):
            pass  # unreadable record: redo everything
    ds = ShardDataset(root, kind="motion", feature=tokenizer.cfg.features, reference="first")
    table = ds.table
    shard_files = [sh["file"] for sh in idx.index["shards"]]
    shard_sha = {sh["file"]: sh["sha256"] for sh in idx.index["shards"]}
    ep_shard = np.array([shard_files.index(r.shard.name) for r in idx.refs], np.int64)
    todo = []
    for j, name in enumerate(shard_files):
        r = rec["shards"].get(name)
        side = folder / _sidecar_name(name)
        if (not force and r is not None and r.get("shard_sha256") == shard_sha[name] and side.is_file()
                and r.get("sha256") == sha256_file(side)):
            continue
        todo.append(j)
    total = int(sum(np.isin(ep_shard[table["episode"]], todo))) if len(table["episode"]) else 0
    bar = tqdm(total=total, desc="tokenize", unit="win", disable=not progress, dynamic_ncols=True)
    tb = layout.tokens_per_block
    windows = 0
    try:
        for j in todo:
            name = shard_files[j]
            sids = np.flatnonzero(ep_shard[table["episode"]] == j) if len(table["episode"]) else np.zeros(0, np.int64)
            out: dict[str, np.ndarray] = {}
            for e in np.flatnonzero(ep_shard == j).tolist():  # every hand of every episode, -1 until encoded
                ent = idx.refs[e].entry
                for side, n in ent.get("motion", {}).get("frames", {}).items():
                    out[f"{ent['key']}.{side}"] = np.full((-(-n // 15), tb), -1, np.int32)
            for a in range(0, len(sids), batch_size):
                part = sids[a:a + batch_size].tolist()
                samples = ds.__getitems__(part)
                ids = _encode(tokenizer, samples)
                for s, row, sid in zip(samples, ids, part):
                    out[f"{s['episode']}.{s['hand']}"][int(table["window"][sid])] = row
                bar.update(len(part))
            data = save(out, metadata={"format": f"{IDS_FORMAT}/{IDS_VERSION}"}) if out else save(
                {"_empty": np.zeros(0, np.int32)}, metadata={"format": f"{IDS_FORMAT}/{IDS_VERSION}"})
            side_path = folder / _sidecar_name(name)
            _atomic_bytes(side_path, data)
            rec["shards"][name] = {"file": side_path.name, "sha256": hashlib.sha256(data).hexdigest(),
                                   "shard_sha256": shard_sha[name], "windows": int(len(sids))}
            windows += len(sids)
            write_json(ids_path, rec)  # recorded at once: an interrupted run resumes after this shard
    finally:
        bar.close()
    rec["shards"] = {k: v for k, v in rec["shards"].items() if k in shard_sha}
    rec["complete"] = all(n in rec["shards"] for n in shard_files)
    write_json(ids_path, rec)
    man_path = root / MANIFEST_NAME
    man = json.loads(man_path.read_text()) if man_path.is_file() else {}
    entry = {"folder": f"{IDS_FOLDER}/{fp}", "features": head["features"], "tokenizer": head["tokenizer"],
             "tokens_per_block": head["tokens_per_block"], "vocab_size": head["vocab_size"], "reference": "first",
             "windows": int(sum(v["windows"] for v in rec["shards"].values())), "complete": rec["complete"]}
    if man.get("motion_ids", {}).get(fp) != entry:
        man.setdefault("motion_ids", {})[fp] = entry
        write_json(man_path, man)
    return {"fingerprint": fp, "folder": str(folder), "shards": len(shard_files), "encoded": len(todo),
            "skipped": len(shard_files) - len(todo), "windows": entry["windows"], "seconds": time.perf_counter() - t0}


@dataclass
class MotionIds:
    """Reader of a dataset's motion-id sidecar (what the VLA's dataset uses; no tokenizer runs).

    ``MotionIds(root)`` takes the one complete tokenization of ``root``; with several, pass
    ``fingerprint=`` (``tokenizer_fingerprint(tok)``, or the tokenizer itself). ``get(key, side)`` is
    the (windows, tokens_per_block) int64 tensor of an episode's hand (-1 rows: unusable windows).
    """

    root: Path
    fingerprint: str
    meta: dict

    def __init__(self, root, fingerprint: str | Any | None = None):
        self.root = Path(root)
        base = self.root / IDS_FOLDER
        if fingerprint is not None and not isinstance(fingerprint, str):
            fingerprint = tokenizer_fingerprint(fingerprint)
        hint = f"run `beingh0 data tokenize {self.root} --tokenizer CKPT` first"
        if fingerprint is None:
            done = sorted(p.parent.name for p in base.glob(f"*/{IDS_INDEX}")
                          if json.loads(p.read_text()).get("complete")) if base.is_dir() else []
            if not done:
                raise UserFileError(f"{self.root} has no motion ids; {hint}")
            if len(done) > 1:
                raise UserValueError(f"{self.root} has motion ids of {len(done)} tokenizers ({', '.join(done)}); "
                                     "pass the tokenizer (--tokenizer CKPT) to choose")
            fingerprint = done[0]
        p = base / fingerprint / IDS_INDEX
        if not p.is_file():
            raise UserFileError(f"{self.root} has no motion ids of tokenizer {fingerprint}; {hint}")
        self.fingerprint, self.meta = fingerprint, json.loads(p.read_text())
        if self.meta.get("format") != IDS_FORMAT or self.meta.get("version") != IDS_VERSION:
            raise UserValueError(f"{p}: not a {IDS_FORMAT} v{IDS_VERSION} record; re-run `beingh0 data tokenize`")
        if not self.meta.get("complete"):
            raise UserValueError(f"{p}: tokenization is incomplete (interrupted?); {hint} again to finish it")
        idx = ShardIndex(self.root, verify="none")
        for sh in idx.index["shards"]:
            r = self.meta["shards"].get(sh["file"])
            if r is None or r["shard_sha256"] != sh["sha256"]:
                raise UserValueError(f"{p}: the motion ids of {sh['file']} were made from another version of the shard "
                                     f"(the dataset was rebuilt); {hint} again")
        self._shard_of = {r.key: r.shard.name for r in idx.refs}
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    @property
    def tokens_per_block(self) -> int:
        return int(self.meta["tokens_per_block"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_cache"] = {}
        return d

    def _shard(self, name: str) -> dict[str, np.ndarray]:
        hit = self._cache.get(name)
        if hit is None:
            from safetensors.numpy import load

            r = self.meta["shards"][name]
            data = (self.root / IDS_FOLDER / self.fingerprint / r["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != r["sha256"]:
                raise UserValueError(f"{self.root / IDS_FOLDER / self.fingerprint / r['file']}: content differs from "
                                     f"{IDS_INDEX} (corrupt); run `beingh0 data tokenize {self.root} --force`")
            hit = self._cache[name] = load(data)
        return hit

    def get(self, key: str, side: str) -> torch.Tensor:
        if side not in SIDES:
            raise UserValueError(f"side must be one of {SIDES}, got {side!r}")
        if key not in self._shard_of:
            raise UserValueError(f"{self.root}: no episode {key!r}")
        a = self._shard(self._shard_of[key]).get(f"{key}.{side}")
        if a is None:
            return torch.zeros((0, self.tokens_per_block), dtype=torch.long)
        return torch.from_numpy(a.astype(np.int64))
