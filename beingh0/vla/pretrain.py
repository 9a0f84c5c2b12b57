"""The pretraining job: ``beingh0 pretrain --config tiny|1b|8b|14b --data DIR... --tokenizer CKPT --out DIR``.

A thin script over library pieces: dataset folders with motion ids (``beingh0 data tokenize``) ->
:class:`.data.PretrainDataset` (instruction samples of the three task types as token sequences)
-> :class:`beingh0.data.loader.ResumableLoader` -> :func:`beingh0.train.fit` with
:class:`.loss.PretrainModel` (:func:`.loss.pretrain_loss`: logit masking, loss filtering, mean
over kept targets). The same command continues an interrupted run exactly (``fit``'s resume:
model, optimizer, schedule, RNG, data position), on one process or under ``torchrun``.

Without ``--data`` it builds the synthetic default: ``job.synth_episodes`` synthetic UniHand
episodes with frames at ``synth_size`` pixels into ``OUT/data/train`` and ``job.val_episodes``
held-out ones (another seed) into ``OUT/data/val``, tokenizes both with ``--tokenizer`` (or, without
one, with a quickly trained ``tiny`` motion tokenizer in ``OUT/motion_tokenizer``). At the end it
prints the held-out loss (no masking, no filtering) next to the **unigram baseline** -- the
entropy of the training set's target-token distribution, the loss of a model that ignores its input
-- and the motion-token accuracy next to the most-frequent-motion-token rate.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..core.config import validate_config
from ..core.errors import UserFileError, UserValueError
from ..train import TrainConfig, fit, init_distributed
from .config import PRESETS
from .data import DataConfig, PretrainCollator, PretrainDataset, target_counts
from .loss import LossConfig, PretrainModel, fit_loss

__all__ = ["JobConfig", "PRETRAIN_TRAIN", "pretrain_command", "unigram_entropy", "TRAIN_SEED", "VAL_SEED"]

TRAIN_SEED, VAL_SEED = 1, 2
#: JobConfig fields a resumed run may change (they do not change what is trained).
JOB_MAY_CHANGE = frozenset({"num_workers", "eval_samples", "report_samples", "baseline_samples"})

#: Training defaults of the pretraining job (a CPU-sized tiny run; the fields of ``TrainConfig``).
PRETRAIN_TRAIN = TrainConfig(steps=2000, lr=1e-3, warmup_steps=20, min_lr_ratio=0.1, weight_decay=0.1,
                             ckpt_every=100, eval_every=100)


@dataclass(frozen=True)
class JobConfig:
    """The pretraining job's own settings (model, batching, the synthetic default, evaluation)."""

    preset: str = field(default="tiny", metadata={"flag": "--config", "choices": tuple(PRESETS)})
    """Architecture preset: tiny (CPU), 1b / 8b / 14b (InternVL3 sizes; need --init for their text tokenizer)."""
    batch_size: int = field(default=8, metadata={"ge": 1})
    """Samples per micro-batch on each rank."""
    num_workers: int = field(default=0, metadata={"ge": 0})
    """Data loader worker processes."""
    attn: str = field(default="sdpa", metadata={"choices": ("sdpa", "eager", "flash_attention_2", "flash_attention_4")})
    """Attention implementation of the model."""
    synth_episodes: int = field(default=32, metadata={"ge": 1})
    """Without --data: synthetic training episodes (both hands, frames)."""
    synth_seconds: float = field(default=4.0, metadata={"gt": 0.0})
    """Without --data: seconds per synthetic episode."""
    synth_size: int = field(default=64, metadata={"ge": 16})
    """Without --data: side of the synthetic frames in pixels (tiny: 64 = one tile)."""
    val_episodes: int = field(default=4, metadata={"ge": 1})
    """Without --data: held-out synthetic episodes (another seed) for the final report."""
    tokenizer_steps: int = field(default=150, metadata={"ge": 1})
    """Without --tokenizer: steps of the quick tiny motion tokenizer trained on the training folder."""
    eval_samples: int = field(default=64, metadata={"ge": 1})
    """Held-out samples scored by each evaluation during training."""
    report_samples: int = field(default=2048, metadata={"ge": 1})
    """Held-out samples scored for the final report (the first ones)."""
    baseline_samples: int = field(default=20000, metadata={"ge": 1})
    """Training samples whose targets give the unigram baseline (the first ones of the table)."""

    def __post_init__(self):
        validate_config(self)


def unigram_entropy(counts: torch.Tensor) -> float:
    """Entropy (nats) of a token-count vector: the loss of predicting the target distribution itself."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


# ------------------------------------------------------------------------------ pieces
def _synthetic(out: Path, job: JobConfig, seed: int, progress: bool) -> tuple[list[Path], list[Path]]:
    from ..data.synth import SynthConfig, synth_dataset

    cfg = SynthConfig(seconds=job.synth_seconds, size=(job.synth_size, job.synth_size), frames=True, image_format="jpeg")
    train, val = out / "data" / "train", out / "data" / "val"
    synth_dataset(train, job.synth_episodes, cfg, TRAIN_SEED + 100 * seed, progress=progress, reuse=True)
    synth_dataset(val, job.val_episodes, cfg, VAL_SEED + 100 * seed, progress=False, reuse=True)
    return [train], [val]


def _motion_tokenizer(out: Path, tokenizer, train: list[Path], job: JobConfig, seed: int, progress: bool):
    from ..tokenizer.config import TokenizerConfig
    from ..tokenizer.io import load_tokenizer
    from ..tokenizer.train import TrainConfig as TokTrain
    from ..train.tokenizer import train_tokenizer

    folder = out / "motion_tokenizer"
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        # a copy in the run folder: generate / eval / posttrain find the run's tokenizer from the run alone
        own = folder / "tokenizer"
        if not (own / "tokenizer.json").is_file() and int(os.environ.get("RANK", "0")) == 0:
            from ..tokenizer.io import save_tokenizer

            save_tokenizer(tok, own, extra={"copied_from": str(tokenizer)})
        return tok
    if (folder / "tokenizer" / "tokenizer.json").is_file():  # a previous (or interrupted and resumed) run's
        return load_tokenizer(folder / "tokenizer")
    tc = TokTrain(steps=job.tokenizer_steps, batch_size=64, eval_every=job.tokenizer_steps, ckpt_every=job.tokenizer_steps,
                  seed=seed, norm_windows=1024, progress=progress, plots=False)
    return train_tokenizer(folder, train, None, TokenizerConfig.preset("tiny"), tc).tokenizer


def _build_vla(job: JobConfig, init, layout, seed: int):
    from .model import VLA

    if init is not None:
        vla = VLA.from_pretrained(init, layout=layout, attn_implementation=job.attn, seed=seed)
        if vla.vocab.layout != layout:
            raise UserValueError(f"{init} carries a motion vocabulary of another tokenizer layout ({vla.vocab.layout}) "
                                 f"than --tokenizer ({layout}); use the motion tokenizer it was trained with")
        return vla
    if job.preset != "tiny":
        raise UserValueError(f"--config {job.preset} needs --init PATH: a local InternVL3 checkpoint brings the text "
                             "tokenizer (only tiny trains its own); random weights are for `beingh0 bench pretrain`")
    return VLA.from_preset(job.preset, layout=layout, seed=seed, attn_implementation=job.attn)


def _flops_per_token(model: PretrainModel) -> float:
    """6 N with N = trainable parameters minus the input embedding table (a lookup, not a matmul)."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return 6.0 * (n - model.vla.get_input_embeddings().weight.numel())


@torch.no_grad()
def evaluate_dataset(model: PretrainModel, dataset: PretrainDataset, collate: PretrainCollator, n: int,
                     batch_size: int, device) -> dict:
    """Loss (no masking, no filtering) and motion-token accuracy on the first ``n`` items."""
    from ..train import to_device

    tot, targets, hits, motion = 0.0, 0, 0.0, 0.0
    for a in range(0, min(n, len(dataset)), batch_size):
        batch = to_device(collate(dataset.__getitems__(range(a, min(a + batch_size, n, len(dataset))))), device)
        loss, m = model(batch, train=False)  # through forward: FSDP2 gathers the root's parameters there
        tot += float(loss) * m["targets"]
        targets += m["targets"]
        hits += m["motion_acc"] * m["motion_targets"]
        motion += m["motion_targets"]
    return {"loss": tot / max(targets, 1), "motion_acc": hits / max(motion, 1.0), "targets": targets}


def _baseline(dataset: PretrainDataset, vocab, cache: Path, limit: int) -> dict:
    key = f"{dataset.fingerprint()}:{limit}"
    if cache.is_file():
        d = json.loads(cache.read_text())
        if d.get("fingerprint") == key:
            return d
    counts = target_counts(dataset, vocab.stop, limit)
    lo, hi = vocab.offset, vocab.offset + vocab.num_motion
    mc = counts[lo:hi]
    d = {"fingerprint": key, "unigram_entropy": unigram_entropy(counts), "targets": int(counts.sum()),
         "motion_targets": int(mc.sum()), "motion_majority_acc": float(mc.max() / mc.sum()) if mc.sum() else 0.0,
         "motion_unigram_entropy": unigram_entropy(mc) if mc.sum() else 0.0}
    cache.write_text(json.dumps(d, indent=1))
    return d


def format_report(rep: dict) -> str:
    b = rep["baseline"]
    lines = [f"{'':34s}{'loss (nats/token)':>20s}{'motion-token acc':>18s}",
             f"{'unigram baseline (train targets)':34s}{b['unigram_entropy']:>20.4f}{100 * b['motion_majority_acc']:>17.1f}%"]
    if rep.get("train") is not None:
        lines.append(f"{'model, training samples':34s}{rep['train']['loss']:>20.4f}{100 * rep['train']['motion_acc']:>17.1f}%")
    if rep.get("heldout") is not None:
        lines.append(f"{'model, held-out samples':34s}{rep['heldout']['loss']:>20.4f}{100 * rep['heldout']['motion_acc']:>17.1f}%")
    lines.append("(losses without logit masking or filtering; accuracy = argmax over the whole vocabulary; the "
                 "baseline's accuracy is the most frequent motion token's share)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the job
def pretrain_command(out_dir, data=None, *, tokenizer=None, init=None, val_data=None, minutes: float | None = None,
                     job: JobConfig = JobConfig(), data_config: DataConfig = DataConfig(), loss: LossConfig = LossConfig(),
                     train: TrainConfig | None = None, progress: bool = True, report: bool = True) -> dict:
    """``beingh0 pretrain``: see the module docstring. Returns the report dict (also ``OUT/report.json``).

    ``data``: dataset folders tokenized with ``tokenizer`` (``beingh0 data tokenize``); None builds the
    synthetic default. ``val_data``: held-out folders for the report (default: the synthetic held-out
    set when ``data`` is None, else none). ``minutes`` sets ``train.max_seconds``.
    """
    from ..data.loader import ResumableLoader
    from ..data.tokenize import tokenize_dataset, tokenizer_fingerprint

    t0 = time.perf_counter()
    out = Path(out_dir)
    train = train or replace(PRETRAIN_TRAIN, progress=progress)
    if minutes is not None:
        if not (isinstance(minutes, (int, float)) and minutes > 0):
            raise UserValueError(f"--minutes must be > 0, got {minutes!r}")
        train = replace(train, max_seconds=60.0 * minutes)
    if init is not None and not Path(init).is_dir():
        raise UserFileError(f"--init {init}: no such checkpoint folder")
    info = init_distributed(train.device)
    seed = train.seed
    if data is None:
        if info.is_main:
            _synthetic(out, job, seed, progress)
        torch.distributed.barrier() if info.world_size > 1 else None
        data, synth_val = _synthetic(out, job, seed, False)
        val_data = synth_val if val_data is None else val_data
        tok = _motion_tokenizer(out, tokenizer, data, job, seed, progress and info.is_main) if info.is_main else None
        if info.is_main:
            for f in [*data, *val_data]:
                tokenize_dataset(f, tok, progress=progress)
        if info.world_size > 1:
            torch.distributed.barrier()
            tok = _motion_tokenizer(out, tokenizer, data, job, seed, False)
    else:
        data = [Path(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
        if tokenizer is None:
            raise UserValueError("--data needs --tokenizer CKPT: the motion tokenizer the folders were tokenized with "
                                 "(`beingh0 data tokenize DIR --tokenizer CKPT`)")
        tok = _motion_tokenizer(out, tokenizer, data, job, seed, False)
    fp = tokenizer_fingerprint(tok)
    vla = _build_vla(job, init, tok.layout, seed)
    proc = vla.processor()
    train_ds = PretrainDataset(data, proc, data_config, fingerprint=fp, seed=seed)
    val_ds = PretrainDataset(val_data, proc, data_config, fingerprint=fp, seed=seed) if val_data else None
    collate = PretrainCollator(proc, pack=data_config.pack, seq_len=data_config.seq_len)
    loader = ResumableLoader(train_ds, batch_size=job.batch_size, num_workers=job.num_workers, seed=seed,
                             drop_uneven=info.world_size > 1, collate_fn=collate, generator=torch.Generator())
    vocab = vla.vocab
    model = PretrainModel(vla.model, loss, (vocab.offset, vocab.offset + vocab.num_motion))
    meta = {"job": asdict(job), "data": asdict(data_config), "loss": asdict(loss), "tokenizer": fp,
            "init": None if init is None else str(init), "folders": [str(d) for d in data]}
    from ..train import latest_checkpoint, read_meta

    ck = latest_checkpoint(out)
    if ck is not None:
        old = read_meta(ck).get("meta") or {}
        for k in ("job", "data", "loss", "tokenizer"):
            a, b = json.loads(json.dumps(old.get(k))), json.loads(json.dumps(meta[k]))
            if k == "job" and isinstance(a, dict):  # how the job runs and reports may change on resume
                a, b = ({f: v for f, v in d.items() if f not in JOB_MAY_CHANGE} for d in (a, b))
            if k in old and a != b:
                raise UserValueError(f"resume: {out} was trained with other {k} settings ({old[k]} vs {meta[k]}); pass the "
                                     "same options or another --out")
    eval_ds = val_ds if val_ds is not None else train_ds

    def evaluate(m):
        r = evaluate_dataset(m, eval_ds, collate, job.eval_samples, job.batch_size, next(m.parameters()).device)
        return {"eval_loss": r["loss"], "eval_motion_acc": r["motion_acc"]}

    res = fit(model, fit_loss, loader, train, out, evaluate=evaluate, flops_per_token=_flops_per_token, meta=meta)
    rep = {"steps": res.step, "stopped": res.stopped, "tokenizer": fp, "train_samples": len(train_ds),
           "heldout_samples": len(val_ds) if val_ds is not None else 0}
    sharded = info.world_size > 1 and train.parallel == "fsdp"
    if sharded:  # FSDP2 turned the parameters into shards: the final numbers come from the checkpoint's full state
        vla = _build_vla(job, init, tok.layout, seed)
        sd = torch.load(res.checkpoint / "model.pt", map_location="cpu", weights_only=True)
        vla.model.load_state_dict({k[len("vla."):]: v for k, v in sd.items()})
        model = PretrainModel(vla.model, loss, model.motion_range).to(res.info.device)
    if info.is_main:
        vla.save_pretrained(out / "model")
        device = res.info.device
        model.eval()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.precision == "bf16"):
            rep["train"] = evaluate_dataset(model, train_ds, collate, job.eval_samples, job.batch_size, device)
            rep["heldout"] = (evaluate_dataset(model, val_ds, collate, job.report_samples, job.batch_size, device)
                              if val_ds is not None else None)
        rep["baseline"] = _baseline(train_ds, vocab, out / "baseline.json", job.baseline_samples)
        last = res.history["train"][-1] if res.history["train"] else {}
        rep["last_step"] = {k: last.get(k) for k in ("loss", "tokens_per_s", "mfu", "motion_acc")}
        rep["seconds"] = time.perf_counter() - t0
        (out / "report.json").write_text(json.dumps(rep, indent=1))
        if report:
            print(f"pretrained {job.preset} to step {res.step} ({res.stopped}) -> {out / 'model'}; curves {out / 'loss.png'}")
            print(format_report(rep))
    if info.world_size > 1:
        torch.distributed.barrier()
    return rep
