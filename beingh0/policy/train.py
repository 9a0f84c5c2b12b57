"""Post-training job: ``beingh0 posttrain --pretrained DIR --data DIR... --out DIR``.

A thin script over library pieces: LeRobot folders -> :class:`beingh0.data.robot.RobotDataset`
(frames, states, action chunks) -> an episode split (the last ``val_fraction`` of the episodes held
out) -> :class:`.data.PolicyDataset` (the policy's prompt builder) ->
:class:`beingh0.data.loader.ResumableLoader` -> :func:`beingh0.train.fit` with
:class:`.model.BeingH0Policy` (L1 in normalised units). Running the same command again continues
exactly (model, optimizer, schedule, RNG, data position).

Without ``--data`` it writes the synthetic Inspire-hand demonstrations
(:func:`beingh0.data.synth.robot.robot_demos`) into ``OUT/data``. ``--pretrained`` is a pretraining
run folder (its ``model/``) or a ``VLA.save_pretrained`` folder; without it (or with
``--init-from scratch``) the policy starts from the un-pretrained ``tiny`` backbone.

Outputs: ``OUT/checkpoints``, ``OUT/loss.png`` + ``history.json`` (fit), ``OUT/policy/`` (the policy,
:meth:`BeingH0Policy.from_pretrained`), ``OUT/report.json`` and ``OUT/eval/`` (held-out open-loop L1
per dimension next to the repeat-the-current-state baseline, trajectory plots).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..core.config import validate_config
from ..core.errors import UserFileError, UserValueError
from ..train import TrainConfig, fit
from .config import PolicyConfig
from .data import (
    PolicyCollator,
    PolicyDataset,
    item_episodes,
    spec_from_robot,
    split_episodes,
    subset_episodes,
)
from .evaluate import evaluate_open_loop, format_eval, plot_trajectories
from .model import BeingH0Policy

__all__ = ["POSTTRAIN_TRAIN", "PostTrainJob", "posttrain_command", "resolve_pretrained", "train_policy"]

#: Training defaults of the post-training job (a CPU-sized tiny run).
POSTTRAIN_TRAIN = TrainConfig(steps=300, lr=1e-3, warmup_steps=20, min_lr_ratio=0.1, weight_decay=0.01, ckpt_every=100,
                              eval_every=50)
JOB_MAY_CHANGE = frozenset({"num_workers", "eval_items", "report_items", "plot_episodes"})


@dataclass(frozen=True)
class PostTrainJob:
    """The post-training job's own settings."""

    init_from: str = field(default="auto", metadata={"choices": ("auto", "pretrained", "scratch")})
    """auto: the --pretrained VLA when given, else the un-pretrained tiny backbone; scratch: always the latter."""
    preset: str = field(default="tiny", metadata={"flag": "--config", "choices": ("tiny",)})
    """Backbone preset when starting from scratch (the InternVL3 sizes come with --pretrained)."""
    batch_size: int = field(default=8, metadata={"ge": 1})
    """Samples per micro-batch."""
    num_workers: int = field(default=0, metadata={"ge": 0})
    """Data loader worker processes."""
    val_fraction: float = field(default=0.125, metadata={"ge": 0.0, "lt": 1.0})
    """Fraction of the episodes held out (the last ones); none with a single episode."""
    data_fraction: float = field(default=1.0, metadata={"gt": 0.0, "le": 1.0})
    """Fraction of the training episodes used (the first ones; the data-efficiency study)."""
    image_size: int = field(default=0, metadata={"ge": 0})
    """Resize camera frames to this square size while decoding (0: as stored; intrinsics follow)."""
    synth_episodes: int = field(default=64, metadata={"ge": 2})
    """Without --data: synthetic robot demonstrations to write into OUT/data."""
    synth_seconds: float = field(default=4.0, metadata={"gt": 0.0})
    """Without --data: seconds per synthetic demonstration."""
    eval_items: int = field(default=64, metadata={"ge": 1})
    """Held-out items scored by each evaluation during training."""
    report_items: int = field(default=512, metadata={"ge": 1})
    """Items scored for the final report (every stride-th held-out frame)."""
    plot_episodes: int = field(default=2, metadata={"ge": 0})
    """Episodes whose open-loop trajectories are plotted in OUT/eval."""
    attn: str = field(default="sdpa", metadata={"choices": ("sdpa", "eager")})
    """Attention implementation."""

    def __post_init__(self):
        validate_config(self)


def resolve_pretrained(path) -> Path:
    """A VLA folder from ``--pretrained``: a pretraining run folder (its ``model/``) or the VLA folder itself."""
    p = Path(path)
    if not p.is_dir():
        raise UserFileError(f"--pretrained {p}: no such folder; pass a `beingh0 pretrain` output folder or a VLA folder")
    if (p / "config.json").is_file():
        return p
    if (p / "model" / "config.json").is_file():
        return p / "model"
    if (p / "vla" / "config.json").is_file():  # a policy folder: its VLA
        return p / "vla"
    raise UserFileError(f"--pretrained {p}: neither a VLA folder (config.json) nor a pretraining run (model/config.json)")


def _vla(job: PostTrainJob, pretrained, seed: int):
    from ..vla import VLA

    if job.init_from == "pretrained" and pretrained is None:
        raise UserValueError("--init-from pretrained needs --pretrained DIR")
    if pretrained is not None and job.init_from != "scratch":
        return VLA.from_pretrained(resolve_pretrained(pretrained), attn_implementation=job.attn, dtype=torch.float32)
    return VLA.from_preset(job.preset, seed=seed, attn_implementation=job.attn)


def open_robot_data(data, chunk: int, image_size: int = 0, seed: int = 0):
    """:class:`beingh0.data.robot.RobotDataset` over the folders ``data``."""
    from ..data.robot import RobotDataset

    roots = [Path(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    for r in roots:
        if not r.is_dir():
            raise UserFileError(f"--data {r}: no such folder")
    return RobotDataset(roots, chunk=chunk, image_size=image_size or None, seed=seed)


def synthetic_data(out: Path, job: PostTrainJob, progress: bool) -> Path:
    from ..data.synth.robot import robot_demos

    return robot_demos(out / "data", episodes=job.synth_episodes, seconds=job.synth_seconds, seed=0, reuse=True,
                       progress=progress)


def train_policy(policy: BeingH0Policy, train_ds: PolicyDataset, val_ds: PolicyDataset | None, train: TrainConfig, out,
                 *, batch_size: int = 8, num_workers: int = 0, eval_items: int = 64, meta: dict | None = None):
    """``fit`` the policy on ``train_ds`` (exact resume from ``out``); evaluates the normalised L1 on
    the first ``eval_items`` of ``val_ds`` (or ``train_ds``) every ``eval_every`` steps."""
    from ..data.loader import ResumableLoader

    collate = PolicyCollator(policy.builder)
    loader = ResumableLoader(train_ds, batch_size=batch_size, num_workers=num_workers, seed=train.seed,
                             collate_fn=collate, generator=torch.Generator())
    ev = val_ds if val_ds is not None else train_ds

    def evaluate(m):
        tot, n = 0.0, 0.0
        dev = next(m.parameters()).device
        for a in range(0, min(eval_items, len(ev)), batch_size):
            b = collate([ev[i] for i in range(a, min(a + batch_size, eval_items, len(ev)))])
            loss, mt = m({k: v.to(dev) for k, v in b.items()})
            tot += float(loss) * mt["targets"]
            n += mt["targets"]
        return {"eval_l1_norm": tot / max(n, 1.0)}

    return fit(policy, lambda m, b: m(b), loader, train, out, evaluate=evaluate, meta=meta)


def posttrain_command(out_dir, data=None, *, pretrained=None, minutes: float | None = None, job: PostTrainJob | None = None,
                      policy_config: PolicyConfig | None = None, train: TrainConfig | None = None, progress: bool = True,
                      report: bool = True) -> dict:
    """``beingh0 posttrain`` (see the module docstring). Returns the report (also ``OUT/report.json``)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    job, policy_config = job or PostTrainJob(), policy_config or PolicyConfig()
    train = train or replace(POSTTRAIN_TRAIN, progress=progress)
    if minutes is not None:
        if not (isinstance(minutes, (int, float)) and minutes > 0):
            raise UserValueError(f"--minutes must be > 0, got {minutes!r}")
        train = replace(train, max_seconds=60.0 * minutes)
    if data is None:
        data = [synthetic_data(out, job, progress)]
    source = open_robot_data(data, policy_config.chunk, job.image_size, train.seed)
    episodes = item_episodes(source)
    tr_ids, va_ids, tr_eps, va_eps = split_episodes(episodes, job.val_fraction)
    tr_ids, tr_eps = subset_episodes(tr_ids, episodes, job.data_fraction)
    spec = spec_from_robot(source, tr_ids, policy_config)
    vla = _vla(job, pretrained, train.seed)
    policy = BeingH0Policy(vla, policy_config, spec, seed=train.seed)
    instr = policy_config.instruction
    train_ds = PolicyDataset(source, policy.builder, tr_ids, episodes=episodes, instruction=instr, seed=train.seed)
    val_ds = PolicyDataset(source, policy.builder, va_ids, episodes=episodes, instruction=instr) if len(va_ids) else None
    init = "scratch" if (pretrained is None or job.init_from == "scratch") else str(resolve_pretrained(pretrained))
    meta = {"job": asdict(job), "policy": policy_config.to_dict(), "spec": spec.to_dict(), "init": init,
            "data": [str(d) for d in data], "train_episodes": len(tr_eps), "heldout_episodes": len(va_eps)}
    from ..train import latest_checkpoint, read_meta

    ck = latest_checkpoint(out)
    if ck is not None:
        old = read_meta(ck).get("meta") or {}
        for k in ("job", "policy", "spec", "init", "data"):
            a, b = json.loads(json.dumps(old.get(k))), json.loads(json.dumps(meta[k]))
            if k == "job" and isinstance(a, dict):
                a, b = ({f: v for f, v in d.items() if f not in JOB_MAY_CHANGE} for d in (a, b))
            if k in old and a != b:
                raise UserValueError(f"resume: {out} was trained with other {k} settings; pass the same options or another --out")
    res = train_policy(policy, train_ds, val_ds, train, out, batch_size=job.batch_size, num_workers=job.num_workers,
                       eval_items=job.eval_items, meta=meta)
    policy.save_pretrained(out / "policy")
    rep = {"steps": res.step, "stopped": res.stopped, "init": init, "train_episodes": len(tr_eps),
           "heldout_episodes": len(va_eps), "train_items": len(train_ds), "heldout_items": len(va_ids),
           "trainable": policy.trainable_summary()}
    policy.to("cpu")
    ev_ds, label = (val_ds, "held-out episodes") if val_ds is not None else (train_ds, "TRAINING episodes (no held-out split: fit, not generalisation)")
    stride = max(1, len(ev_ds) // job.report_items)
    r = evaluate_open_loop(policy, ev_ds, stride=stride, max_items=job.report_items, batch_size=job.batch_size)
    rep["eval"] = {k: v for k, v in r.items() if k != "trajectories"}
    rep["eval"]["split"], rep["eval"]["stride"] = label, stride
    edir = out / "eval"
    edir.mkdir(parents=True, exist_ok=True)
    for ep in r["episodes"][: job.plot_episodes]:
        plot_trajectories(r, edir / f"episode_{ep}.png", ep, title=label)
    rep["seconds"] = time.perf_counter() - t0
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    if report:
        print(f"post-trained to step {res.step} ({res.stopped}) from {init} -> {out / 'policy'}; curves {out / 'loss.png'}")
        print(format_eval(r, label))
    return rep
