"""Training loop of the motion tokenizer: ``train_tokenizer`` (setup / fit / validate / checkpoint).

Training data are dataset folders read through the data loader the VLA uses
(``beingh0.data.loader.ShardDataset`` of ``kind="motion"`` samples, ``ResumableLoader``): 1-s
windows, each in a reference frame drawn from the 10 s before it, left hands mirrored into the
right-hand convention (``beingh0.motion.hand_features``). Validation reads held-out folders with
the window start as reference.

Output folder ``out``:
    tokenizer/            the trained tokenizer (``load_tokenizer`` / ``beingh0 tokenizer eval``)
    checkpoint/           tokenizer files + trainer.pt (optimizer, step, RNG state, loader position,
                          history): ``resume=True`` continues the same loss curve exactly. It is
                          replaced atomically (new copy written to checkpoint.tmp, the old one moved
                          to checkpoint.old, the new one moved in, the old one deleted); a crash at
                          any point leaves a complete copy that ``resume`` finds
                          (:func:`recover_checkpoint`)
    losses.png            train/validation losses
    codebook_usage.png    per-layer codebook utilisation between evaluations
    history.json          the logged numbers
Resume takes the architecture, the normalisation and the training settings from the checkpoint;
only ``steps`` (the total to reach) may change.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserFileError, UserValueError
from ..motion import NormStats
from .config import TokenizerConfig
from .data import dataset_windows, open_datasets
from .io import load_tokenizer, save_tokenizer
from .model import MotionTokenizer

__all__ = ["TrainConfig", "train_tokenizer", "TrainResult", "recover_checkpoint", "validate"]

TRAINER_FILE = "trainer.pt"
#: held-out windows used for the validation loss logged during training
VAL_WINDOWS = 1024


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (saved in the checkpoint)."""

    steps: int = 2000
    """Total optimizer steps to reach."""
    batch_size: int = 128
    """Windows per step (what the CPU quickstart uses; the paper uses 2048 on GPUs)."""
    lr: float = 1e-3
    """AdamW learning rate (constant after ``warmup`` steps; the quickstart's, stable for the small
    and tiny presets at batch 128; lower it for the paper-sized model)."""
    warmup: int = 20
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    eval_every: int = 200
    """Validate (and snapshot codebook usage) every this many steps, and at the end."""
    ckpt_every: int = 200
    """Write the checkpoint every this many steps, and at the end."""
    seed: int = 0
    """Seeds the model initialisation, k-means, the loader's order and its reference-frame draws."""
    norm_windows: int = 4096
    """Training windows drawn to fit the per-dimension normalisation."""
    max_seconds: float | None = None
    """Stop (and checkpoint) once training has run this long; None = run all steps."""
    progress: bool = True
    """tqdm progress bar."""
    plots: bool = True
    """Write losses.png and codebook_usage.png at the end."""
    num_threads: int | None = 1
    """torch intra-op threads while training (restored afterwards; None = leave torch's setting). The
    small model's ops are tiny: on the shared 2-core CPU one step (batch 128) took 0.2 s with 1
    thread and 1.5-3 s with 2 busy-waiting threads. Use None on a GPU or a big idle CPU."""

    def __post_init__(self):
        problems = []
        for n in ("steps", "batch_size", "eval_every", "ckpt_every", "norm_windows"):
            v = getattr(self, n)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                problems.append(f"{n}={v!r} must be an integer >= 1")
        for n in ("warmup", "seed"):
            v = getattr(self, n)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                problems.append(f"{n}={v!r} must be an integer >= 0")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr={self.lr!r} must be a positive number, e.g. 2e-4")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            problems.append(f"weight_decay={self.weight_decay!r} must be >= 0")
        if self.max_seconds is not None and not (isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0):
            problems.append(f"max_seconds={self.max_seconds!r} must be None or > 0")
        if self.num_threads is not None and not (isinstance(self.num_threads, int) and self.num_threads >= 1):
            problems.append(f"num_threads={self.num_threads!r} must be None or an integer >= 1")
        if problems:
            raise UserValueError("invalid TrainConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise UserValueError(f"train config has unknown keys {sorted(set(d) - known)}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class TrainResult:
    tokenizer: MotionTokenizer
    history: dict
    out_dir: Path
    steps: int
    seconds: float


def _lr(step: int, tc: TrainConfig) -> float:
    return tc.lr * min(1.0, (step + 1) / tc.warmup) if tc.warmup else tc.lr


@torch.no_grad()
def validate(tok: MotionTokenizer, val: list) -> dict:
    """Mean normalised reconstruction loss on held-out windows (batches of (features, mask, betas)
    in their reference frames, e.g. from ``beingh0.tokenizer.data.dataset_windows``)."""
    if not val:
        return {}
    tok.eval()
    tot, n = 0.0, 0
    for x, m, _ in val:
        w = (tok.normalize(x.double()) * m[..., None]).float()
        _, logs, _ = tok(w, m)
        k = int(m.sum())
        tot, n = tot + logs["recon"] * k, n + k
    tok.train()
    return {"val_recon": tot / max(n, 1)}


def _usage_snapshot(tok: MotionTokenizer) -> dict:
    out = {}
    for part, q in tok.quantizers().items():
        util, perp = q.usage_stats()
        out[part] = {"utilisation": util.tolist(), "perplexity": perp.tolist(), "restarts": q.restarts.tolist()}
        q.reset_usage()
    return out


# Module-level so that tests can interrupt the swap between any two steps.
_rename = os.replace
_rmtree = shutil.rmtree


def _complete_step(path: Path) -> int | None:
    """The step of a complete checkpoint copy at ``path`` (trainer.pt is written last, by rename),
    or None when it is missing or unreadable."""
    f = path / TRAINER_FILE
    if not f.is_file():
        return None
    try:
        return int(torch.load(f, map_location="cpu", weights_only=True)["step"])
    except Exception:  # a torn or foreign file: not a complete copy
        return None


def recover_checkpoint(out) -> Path | None:
    """Make ``out/checkpoint`` the newest complete copy among checkpoint, checkpoint.tmp and
    checkpoint.old (what a crash during the swap may leave) and delete the others; returns the
    checkpoint folder, or None when there is no complete copy."""
    out = Path(out)
    names = ("checkpoint", "checkpoint.tmp", "checkpoint.old")
    steps = {n: _complete_step(out / n) for n in names if (out / n).is_dir()}
    complete = [n for n in names if steps.get(n) is not None]
    if not complete:
        return None
    best = max(complete, key=lambda n: (steps[n], n == "checkpoint"))   # ties: the one in place
    final = out / "checkpoint"
    if best != "checkpoint":
        if final.exists():
            _rmtree(final)
        _rename(out / best, final)
    for n in names[1:]:
        if (out / n).exists():
            _rmtree(out / n)
    return final


def _save_checkpoint(out: Path, tok, opt, loader, step, history, tc: TrainConfig) -> None:
    tmp, final, old = out / "checkpoint.tmp", out / "checkpoint", out / "checkpoint.old"
    if tmp.exists():
        _rmtree(tmp)
    save_tokenizer(tok, tmp)
    torch.save({"step": step, "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                "loader": json.dumps(loader.state_dict()), "history": json.dumps(history),
                "train_config": json.dumps(asdict(tc))}, tmp / (TRAINER_FILE + ".part"))
    _rename(tmp / (TRAINER_FILE + ".part"), tmp / TRAINER_FILE)      # the copy is complete from here on
    if old.exists():
        _rmtree(old)
    if final.exists():
        _rename(final, old)
    _rename(tmp, final)
    if old.exists():
        _rmtree(old)


def _plots(out: Path, history: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = history["train"]
    if tr:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        steps = [r["step"] for r in tr]
        ax[0].semilogy(steps, [r["recon"] for r in tr], label="train recon (normalised MSE)", lw=0.8)
        val = [r for r in history["eval"] if "val_recon" in r]
        if val:
            ax[0].semilogy([r["step"] for r in val], [r["val_recon"] for r in val], "o-", label="val recon")
        ax[0].set_xlabel("step"), ax[0].legend(), ax[0].set_title("reconstruction")
        ax[1].semilogy(steps, [max(r["commit"], 1e-12) for r in tr], lw=0.8, color="C2")
        ax[1].set_xlabel("step"), ax[1].set_title("commitment ||z - sg(q)||^2")
        fig.tight_layout()
        fig.savefig(out / "losses.png", dpi=100)
        plt.close(fig)
    ev = [r for r in history["eval"] if "usage" in r]
    if ev:
        parts = list(ev[0]["usage"])
        fig, ax = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4), squeeze=False)
        for i, part in enumerate(parts):
            util = torch.tensor([r["usage"][part]["utilisation"] for r in ev])   # (E, G, L)
            for layer in range(util.shape[2]):
                ax[0, i].plot([r["step"] for r in ev], 100 * util[:, :, layer].mean(1), "o-", label=f"layer {layer}")
            ax[0, i].set_ylim(0, 105), ax[0, i].set_xlabel("step"), ax[0, i].set_ylabel("codes used (%)")
            ax[0, i].set_title(f"{part}: codebook utilisation (mean over groups)")
            ax[0, i].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(out / "codebook_usage.png", dpi=100)
        plt.close(fig)


def _loader(ds, tc: TrainConfig):
    from ..data.loader import ResumableLoader

    return ResumableLoader(ds, batch_size=tc.batch_size, seed=tc.seed, rank=0, world_size=1)


def _fit_norm(ds, tc: TrainConfig) -> NormStats:
    """Per-dimension statistics of ``norm_windows`` training windows (a seeded subset)."""
    ids = np.random.default_rng(tc.seed).permutation(len(ds))[:tc.norm_windows]
    xs, ms = [], []
    for a in range(0, len(ids), 512):
        samples = ds.__getitems__(sorted(ids[a:a + 512].tolist()))
        xs.append(torch.stack([s["features"] for s in samples]))
        ms.append(torch.stack([s["mask"] for s in samples]))
    return NormStats.fit(torch.cat(xs).double(), mask=torch.cat(ms))


def _setup(out: Path, cfg, train, data, resume: bool):
    if resume:
        ck = recover_checkpoint(out)
        if ck is None:
            raise UserFileError(f"nothing to resume: no complete checkpoint in {out} (looked for checkpoint/, "
                                f"checkpoint.tmp/, checkpoint.old/ holding {TRAINER_FILE}); train without --resume first")
        state = torch.load(ck / TRAINER_FILE, map_location="cpu", weights_only=True)
        tok = load_tokenizer(ck).train()
        if cfg is not None and cfg != tok.cfg:
            raise UserValueError(f"resume: the checkpoint's tokenizer config ({tok.cfg.name!r}) differs from the one "
                                 "given; resume takes the architecture from the checkpoint (pass config=None)")
        tc = TrainConfig.from_dict(json.loads(state["train_config"]))
        tc = replace(tc, steps=train.steps if train is not None else tc.steps,
                     max_seconds=train.max_seconds if train is not None else None,
                     progress=train.progress if train is not None else tc.progress,
                     num_threads=train.num_threads if train is not None else tc.num_threads)
        loader = _loader(open_datasets(data, tok.spec, "random", tc.seed), tc)
        try:
            loader.load_state_dict(json.loads(state["loader"]))
        except ValueError as e:
            raise UserValueError(f"resume: {e} (pass the same --data folders as the run being resumed)") from None
        opt = torch.optim.AdamW(tok.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        return tok, tc, loader, opt, int(state["step"]), json.loads(state["history"])
    cfg = cfg if cfg is not None else TokenizerConfig.preset("small")
    tc = train if train is not None else TrainConfig()
    torch.manual_seed(tc.seed)
    ds = open_datasets(data, cfg.features, "random", tc.seed)
    tok = MotionTokenizer(cfg, _fit_norm(ds, tc)).train()
    opt = torch.optim.AdamW(tok.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    return tok, tc, _loader(ds, tc), opt, 0, {"train": [], "eval": []}


def train_tokenizer(out_dir, data, val_data=None, config: TokenizerConfig | None = None,
                    train: TrainConfig | None = None, resume: bool = False, verbose: bool = True) -> TrainResult:
    """Train (or ``resume``) a tokenizer on the motion windows of the dataset folder(s) ``data``,
    validating on the held-out folder(s) ``val_data`` (first ``VAL_WINDOWS`` windows). See the
    module docstring for what lands in ``out_dir``."""
    threads = torch.get_num_threads()
    nt = train.num_threads if train is not None else TrainConfig.num_threads
    if nt is not None:
        torch.set_num_threads(nt)
    try:
        return _train(out_dir, data, val_data, config, train, resume, verbose)
    finally:
        torch.set_num_threads(threads)


def _train(out_dir, data, val_data, config, train, resume, verbose) -> TrainResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tok, tc, loader, opt, step, history = _setup(out, config, train, data, resume)
    val = [] if not val_data else list(dataset_windows(open_datasets(val_data, tok.spec, "first"), limit=VAL_WINDOWS))
    batches = iter(loader)
    bar = None
    if tc.progress and step < tc.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=step, desc="tokenizer", unit="step")
    t_train = time.perf_counter()
    while step < tc.steps:
        for g in opt.param_groups:
            g["lr"] = _lr(step, tc)
        batch = next(batches, None)
        if batch is None:                 # epoch done: the loader moved to the next one
            batches = iter(loader)
            batch = next(batches)
        m = batch["mask"]
        w = (tok.normalize(batch["features"].double()) * m[..., None]).float()
        loss, logs, _ = tok(w, m)
        if not math.isfinite(logs["loss"]):
            raise RuntimeError(f"loss became {logs['loss']} at step {step}; lower the learning rate (lr={tc.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        history["train"].append({"step": step, **logs})
        out_of_time = tc.max_seconds is not None and time.perf_counter() - t_train > tc.max_seconds
        last = step == tc.steps or out_of_time
        if step % tc.eval_every == 0 or last:
            ev = {"step": step, **validate(tok, val), "usage": _usage_snapshot(tok)}
            history["eval"].append(ev)
            if bar is not None and "val_recon" in ev:
                bar.set_postfix(recon=f"{logs['recon']:.4f}", val=f"{ev['val_recon']:.4f}")
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(recon=f"{logs['recon']:.4f}", commit=f"{logs['commit']:.2e}")
        if step % tc.ckpt_every == 0 or last:
            _save_checkpoint(out, tok, opt, loader, step, history, tc)
        if out_of_time:
            if verbose:
                print(f"time budget of {tc.max_seconds:.0f} s reached after {step} steps; checkpoint written")
            break
    if bar is not None:
        bar.close()
    tok.eval()
    save_tokenizer(tok, out / "tokenizer", extra={"steps": step})
    (out / "history.json").write_text(json.dumps(history))
    if tc.plots:
        _plots(out, history)
    return TrainResult(tok, history, out, step, time.perf_counter() - t_start)
