"""Training loop of the motion tokenizer: ``train_tokenizer`` (setup / fit / validate / checkpoint).

Output folder ``out``:
    tokenizer/            the trained tokenizer (``load_tokenizer`` / ``beingh0 tokenizer eval``)
    checkpoint/           tokenizer files + trainer.pt (optimizer, step, RNG states, sampler state,
                          history): ``resume=True`` continues the same loss curve exactly
    losses.png            train/validation losses
    codebook_usage.png    per-layer codebook utilisation between evaluations
    history.json          the logged numbers
Resume takes the architecture, the normalisation and the training settings from the checkpoint;
only ``steps`` (the total to reach) may change.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from ..motion import NormStats
from .config import TokenizerConfig
from .data import PreparedClip, WindowSampler, clip_windows, prepare_clip
from .io import load_tokenizer, save_tokenizer
from .model import MotionTokenizer

__all__ = ["TrainConfig", "train_tokenizer", "TrainResult"]

TRAINER_FILE = "trainer.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (saved in the checkpoint)."""

    steps: int = 2000
    """Total optimizer steps to reach."""
    batch_size: int = 256
    """Windows per step (the paper uses 2048 on GPUs)."""
    lr: float = 2e-4
    """AdamW learning rate (constant after ``warmup`` steps)."""
    warmup: int = 0
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    eval_every: int = 200
    """Validate (and snapshot codebook usage) every this many steps, and at the end."""
    ckpt_every: int = 200
    """Write the checkpoint every this many steps, and at the end."""
    seed: int = 0
    """Seeds the model initialisation, k-means and window sampling."""
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
            raise ValueError("invalid TrainConfig:\n  - " + "\n  - ".join(problems))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ValueError(f"train config has unknown keys {sorted(set(d) - known)}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class TrainResult:
    tokenizer: MotionTokenizer
    history: dict
    out_dir: Path
    steps: int
    seconds: float


def _prepare(clips, spec) -> list:
    out = []
    for c in clips:
        out.append(c if isinstance(c, PreparedClip) else prepare_clip(c, spec))
    if not out:
        raise ValueError("no training clips; pass a non-empty list of MotionClip")
    return out


def _lr(step: int, tc: TrainConfig) -> float:
    return tc.lr * min(1.0, (step + 1) / tc.warmup) if tc.warmup else tc.lr


@torch.no_grad()
def validate(tok: MotionTokenizer, val: list) -> dict:
    """Mean normalised reconstruction loss on first-frame-canonical validation windows."""
    if not val:
        return {}
    tok.eval()
    tot, n = 0.0, 0
    for clip in val:
        w, m, _ = clip_windows(clip, tok.spec, tok.norm)
        _, logs, _ = tok(w.float(), m)
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


def _save_checkpoint(out: Path, tok, opt, sampler, step, history, tc: TrainConfig) -> None:
    tmp = out / "checkpoint.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_tokenizer(tok, tmp)
    torch.save({"step": step, "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                "sampler_rng": sampler.state(), "history": json.dumps(history), "train_config": json.dumps(asdict(tc))},
               tmp / TRAINER_FILE)
    final = out / "checkpoint"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


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


def _setup(out: Path, cfg, train, train_clips, resume: bool):
    ck = out / "checkpoint"
    if resume:
        if not (ck / TRAINER_FILE).is_file():
            raise FileNotFoundError(f"nothing to resume: {ck / TRAINER_FILE} not found; train without --resume first")
        state = torch.load(ck / TRAINER_FILE, map_location="cpu", weights_only=True)
        tok = load_tokenizer(ck).train()
        if cfg is not None and cfg != tok.cfg:
            raise ValueError(f"resume: the checkpoint's tokenizer config ({tok.cfg.name!r}) differs from the one "
                             "given; resume takes the architecture from the checkpoint (pass config=None)")
        tc = TrainConfig.from_dict(json.loads(state["train_config"]))
        tc = replace(tc, steps=train.steps if train is not None else tc.steps,
                     max_seconds=train.max_seconds if train is not None else None,
                     progress=train.progress if train is not None else tc.progress,
                     num_threads=train.num_threads if train is not None else tc.num_threads)
        sampler = WindowSampler(_prepare(train_clips, tok.spec), tok.spec)
        sampler.set_state(state["sampler_rng"])
        opt = torch.optim.AdamW(tok.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        return tok, tc, sampler, opt, int(state["step"]), json.loads(state["history"])
    cfg = cfg if cfg is not None else TokenizerConfig.preset("small")
    tc = train if train is not None else TrainConfig()
    torch.manual_seed(tc.seed)
    sampler = WindowSampler(_prepare(train_clips, cfg.features), cfg.features, seed=tc.seed)
    x, m = sampler.sample(tc.norm_windows)
    tok = MotionTokenizer(cfg, NormStats.fit(x.double(), mask=m)).train()
    opt = torch.optim.AdamW(tok.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    return tok, tc, sampler, opt, 0, {"train": [], "eval": []}


def train_tokenizer(out_dir, train_clips, val_clips=None, config: TokenizerConfig | None = None,
                    train: TrainConfig | None = None, resume: bool = False, verbose: bool = True) -> TrainResult:
    """Train (or ``resume``) a tokenizer on ``train_clips`` (list of ``MotionClip``), validating on
    ``val_clips``. See the module docstring for what lands in ``out_dir``."""
    threads = torch.get_num_threads()
    nt = train.num_threads if train is not None else TrainConfig.num_threads
    if nt is not None:
        torch.set_num_threads(nt)
    try:
        return _train(out_dir, train_clips, val_clips, config, train, resume, verbose)
    finally:
        torch.set_num_threads(threads)


def _train(out_dir, train_clips, val_clips, config, train, resume, verbose) -> TrainResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tok, tc, sampler, opt, step, history = _setup(out, config, train, list(train_clips), resume)
    val = [c if isinstance(c, PreparedClip) else prepare_clip(c, tok.spec) for c in (val_clips or [])]
    bar = None
    if tc.progress and step < tc.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=step, desc="tokenizer", unit="step")
    t_train = time.perf_counter()
    while step < tc.steps:
        for g in opt.param_groups:
            g["lr"] = _lr(step, tc)
        w, m = sampler.sample(tc.batch_size, tok.norm)
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
            _save_checkpoint(out, tok, opt, sampler, step, history, tc)
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
