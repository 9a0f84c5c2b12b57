"""The tokenizer's side of its training: what ``beingh0.train.tokenizer.train_tokenizer`` plugs into
``beingh0.train.fit``, the one training loop (optimizer, schedule, checkpoints, exact resume,
time budget, progress bar, history). This module imports nothing from ``beingh0.train``
(the layer above).

* data: dataset folders read through the data loader the VLA uses (``beingh0.data.loader.ShardDataset``
  of ``kind="motion"`` samples, :class:`MotionLoader`, a ``ResumableLoader``): 1-s windows, each in
  a reference frame drawn from the 10 s before it, left hands mirrored into the right-hand
  convention (``beingh0.motion.hand_features``). Validation reads held-out folders with the window
  start as reference (:func:`validation_windows`);
* loss (:func:`tokenizer_loss`): normalised-feature reconstruction + commitment
  (``MotionTokenizer.forward``), a mean over the valid frames of the batch (``targets``);
* ``after_step`` (:func:`update_codebooks`): the codebooks' EMA update, usage counts and dead-code
  restart. They are not gradient steps (k-means initialisation happens in the first training
  forward). Under ``torch.distributed`` the EMA statistics are summed over ranks and rank 0's
  codebooks are broadcast, so that ranks stay identical;
* ``evaluate``: :func:`validate` and :func:`usage_snapshot` (per-layer codebook usage since the
  previous evaluation); :func:`plot_history` draws ``losses.png`` and ``codebook_usage.png``.

The output layout is documented in ``beingh0/train/tokenizer.py`` and ``docs/tokenizer.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..core.config import validate_config
from ..core.errors import UserValueError
from ..data.loader import ResumableLoader
from ..motion import NormStats
from .config import TokenizerConfig
from .data import dataset_windows, open_datasets
from .model import MotionTokenizer

__all__ = ["TrainConfig", "TrainResult", "RESUMABLE", "validate", "usage_snapshot", "tokenizer_loss", "update_codebooks",
           "MotionLoader", "make_loader", "open_training_data", "validation_windows", "new_tokenizer", "fit_norm",
           "plot_history"]

#: held-out windows used for the validation loss logged during training
VAL_WINDOWS = 1024
#: tokenizer TrainConfig fields a resumed run takes from the call (the others come from the checkpoint)
RESUMABLE = ("steps", "max_seconds", "progress", "plots", "num_threads", "eval_every", "ckpt_every", "device")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of the tokenizer (saved in every checkpoint; ``fit_config`` maps them
    onto ``beingh0.train.TrainConfig``)."""

    steps: int = field(default=2000, metadata={"ge": 1})
    """Total optimizer steps to reach."""
    batch_size: int = field(default=128, metadata={"ge": 1})
    """Windows per step (what the CPU quickstart uses; the paper uses 2048 on GPUs)."""
    lr: float = field(default=1e-3, metadata={"gt": 0})
    """AdamW learning rate (constant after ``warmup`` steps; the quickstart's, stable for the small
    and tiny presets at batch 128; lower it for the paper-sized model)."""
    warmup: int = field(default=20, metadata={"ge": 0})
    """Linear learning-rate warm-up steps."""
    weight_decay: float = field(default=0.0, metadata={"ge": 0})
    """AdamW weight decay (matrices only)."""
    eval_every: int = field(default=200, metadata={"ge": 1})
    """Validate (and snapshot codebook usage) every this many steps, and at the end."""
    ckpt_every: int = field(default=200, metadata={"ge": 1})
    """Write a checkpoint every this many steps, and at the end."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seeds the model initialisation, k-means, the loader's order and its reference-frame draws."""
    norm_windows: int = field(default=4096, metadata={"ge": 1})
    """Training windows drawn to fit the per-dimension normalisation."""
    max_seconds: float | None = field(default=None, metadata={"gt": 0})
    """Stop (and checkpoint) once training has run this long; None = run all steps."""
    progress: bool = True
    """tqdm progress bar."""
    plots: bool = True
    """Write losses.png and codebook_usage.png at the end."""
    num_threads: int | None = field(default=1, metadata={"ge": 1})
    """torch intra-op threads while training (restored afterwards; None = leave torch's setting). The
    small model's ops are tiny: on the shared 2-core CPU one step (batch 128) took 0.2 s with 1
    thread and 1.5-3 s with 2 busy-waiting threads. Use None on a GPU or a big idle CPU."""
    device: str = field(default="cpu", metadata={"choices": ("auto", "cpu", "cuda")})
    """Where to train: ``cpu``, ``cuda`` or ``auto`` (CUDA when available)."""

    def __post_init__(self):
        validate_config(self)

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


@torch.no_grad()
def validate(tok: MotionTokenizer, val: list) -> dict:
    """Mean normalised reconstruction loss on held-out windows (batches of (features, mask, betas)
    in their reference frames, e.g. from ``beingh0.tokenizer.data.dataset_windows``)."""
    if not val:
        return {}
    was_training = tok.training
    tok.eval()
    tot, n = 0.0, 0
    for x, m, _ in val:
        w = (tok.normalize(x.double()) * m[..., None]).float()
        _, logs, _ = tok(w, m)
        k = int(m.sum())
        tot, n = tot + logs["recon"] * k, n + k
    tok.train(was_training)
    return {"val_recon": tot / max(n, 1)}


def usage_snapshot(tok: MotionTokenizer) -> dict:
    """Per part: utilisation, perplexity and restarts per (group, layer) of the codes used since the
    previous snapshot (then reset)."""
    out = {}
    for part, q in tok.quantizers().items():
        util, perp = q.usage_stats()
        out[part] = {"utilisation": util.tolist(), "perplexity": perp.tolist(), "restarts": q.restarts.tolist()}
        q.reset_usage()
    return out


def tokenizer_loss(model, batch) -> tuple[torch.Tensor, dict]:
    """The training loss of a batch of ``kind="motion"`` samples (``features``, ``mask``): features
    normalised with the tokenizer's statistics, reconstruction + commitment (``MotionTokenizer.forward``),
    a mean over the batch's valid frames (``targets``). ``model`` may be DDP-wrapped."""
    tok = getattr(model, "module", model)
    m = batch["mask"]
    w = (tok.normalize(batch["features"].double()) * m[..., None]).float()
    loss, logs, _ = model(w, m)
    logs.pop("loss")
    return loss, {"targets": float(m.sum()), **logs}


def update_codebooks(model, step: int) -> None:
    """``after_step`` hook: the codebooks' EMA update, usage counts and dead-code restart of the step."""
    model.update_codebooks()


class MotionLoader(ResumableLoader):
    """``ResumableLoader`` whose resume error names the likely mistake (other ``--data`` folders)."""

    def load_state_dict(self, state) -> None:
        try:
            super().load_state_dict(state)
        except ValueError as e:
            raise UserValueError(f"resume: {e} (pass the same --data folders as the run being resumed)") from None


def make_loader(ds, tc: TrainConfig) -> MotionLoader:
    """The training loader: ``batch_size`` windows per step, split over ranks when a process group runs,
    and its own generator (no draw from the global RNG when a pass starts: exact resume)."""
    return MotionLoader(ds, batch_size=tc.batch_size, seed=tc.seed, generator=torch.Generator())


def open_training_data(data, spec, tc: TrainConfig):
    """The training windows of the dataset folder(s) ``data`` (reference frames drawn at random)."""
    return open_datasets(data, spec, "random", tc.seed)


def validation_windows(val_data, spec) -> list:
    """The first ``VAL_WINDOWS`` held-out windows of ``val_data`` (reference = window start), batched."""
    return [] if not val_data else list(dataset_windows(open_datasets(val_data, spec, "first"), limit=VAL_WINDOWS))


def new_tokenizer(cfg: TokenizerConfig, ds, tc: TrainConfig) -> MotionTokenizer:
    """A fresh tokenizer (seeded initialisation) with the normalisation fitted on ``ds``."""
    torch.manual_seed(tc.seed)
    return MotionTokenizer(cfg, fit_norm(ds, tc)).train()


def fit_norm(ds, tc: TrainConfig) -> NormStats:
    """Per-dimension statistics of ``norm_windows`` training windows (a seeded subset)."""
    ids = np.random.default_rng(tc.seed).permutation(len(ds))[:tc.norm_windows]
    xs, ms = [], []
    for a in range(0, len(ids), 512):
        samples = ds.__getitems__(sorted(ids[a:a + 512].tolist()))
        xs.append(torch.stack([s["features"] for s in samples]))
        ms.append(torch.stack([s["mask"] for s in samples]))
    return NormStats.fit(torch.cat(xs).double(), mask=torch.cat(ms))


def plot_history(out: Path, history: dict) -> None:
    """``losses.png`` (train and validation reconstruction, commitment) and ``codebook_usage.png``."""
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


