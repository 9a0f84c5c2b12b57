"""``TrainConfig``: every setting of the training loop, with its default, in one place.

A config validates itself (all problems in one error), rejects unknown keys, carries a version and
is saved with every checkpoint. On resume the checkpoint's config must equal the given one except
for the fields in :data:`RESUME_MAY_CHANGE` (run length, budgets, logging), so that the same
command continues the same run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..core.errors import UserValueError

__all__ = ["TrainConfig", "RESUME_MAY_CHANGE", "CONFIG_VERSION"]

CONFIG_VERSION = 1

# Fields a resumed run may change without breaking the loss curve it continues.
# Checkpoints hold full (unsharded) states keyed by parameter name, so a run may also move between
# devices and between one process, DDP and FSDP2 (bit-exact only on the same device and world size).
RESUME_MAY_CHANGE = frozenset({"steps", "max_seconds", "ckpt_every", "keep_checkpoints", "eval_every", "progress",
                               "plots", "num_threads", "peak_flops", "device", "parallel"})


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, precision, parallelism, checkpoint and logging settings of :func:`beingh0.train.fit`."""

    steps: int = 1000
    """Total optimizer steps to reach (a resumed run continues up to this number)."""
    accumulate: int = 1
    """Micro-batches per optimizer step on each rank (gradient accumulation). The data iterator yields
    micro-batches; global batch = micro-batch x accumulate x world size."""
    lr: float = 3e-4
    """Peak AdamW learning rate (reached after ``warmup_steps``)."""
    schedule: str = "cosine"
    """After warm-up: ``"cosine"`` decays to ``min_lr_ratio * lr`` at ``steps``; ``"constant"`` stays at ``lr``."""
    warmup_steps: int = 0
    """Linear warm-up from ``lr / warmup_steps`` to ``lr`` over this many steps (0 = none)."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine decay, as a fraction of ``lr`` (Chinchilla / nanoGPT use 0.1)."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay, applied to matrices only: biases, norm weights (every parameter
    with fewer than 2 dimensions) and embedding tables get none."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (0.95 rather than torch's 0.999: the usual choice for transformer pretraining)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; None = no clipping (the norm is still logged)."""
    device: str = "auto"
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``. Under torchrun each rank
    takes ``cuda:LOCAL_RANK``."""
    precision: str = "fp32"
    """``"fp32"`` or ``"bf16"`` (autocast of the forward pass to bfloat16, on CPU too; parameters,
    gradients and optimizer state stay float32)."""
    gradient_checkpointing: bool = False
    """Call ``model.gradient_checkpointing_enable()`` (models that have it, e.g. transformers models):
    recompute activations in the backward pass to save memory."""
    parallel: str = "auto"
    """How several ranks share the model: ``"ddp"`` (replicated, gradients all-reduced), ``"fsdp"``
    (FSDP2 ``fully_shard``: parameters, gradients and optimizer state sharded), ``"none"`` (one
    process only) or ``"auto"`` (ddp when the world size is above 1, else none)."""
    seed: int = 0
    """Seeds python, numpy and torch at a fresh start (rank r uses ``seed + r``)."""
    ckpt_every: int = 1000
    """Write a checkpoint every this many steps, and at the end or when the time budget runs out."""
    keep_checkpoints: int = 1
    """Complete checkpoints kept; older ones are deleted only after a newer one is complete."""
    eval_every: int | None = None
    """Call ``evaluate(model)`` every this many steps and at the end; None = only at the end."""
    max_seconds: float | None = None
    """Wall-clock budget of the training loop: past it the loop checkpoints and stops cleanly; None = no budget."""
    progress: bool = True
    """tqdm progress bar on rank 0."""
    plots: bool = True
    """Write ``loss.png`` (training loss, learning rate, tokens/s, evaluation metrics) on rank 0."""
    num_threads: int | None = None
    """torch intra-op threads while training (restored afterwards); None = leave torch's setting.
    On a small shared CPU 1 thread is often fastest for tiny models."""
    peak_flops: float | None = None
    """Peak FLOP/s of one device for MFU; None = a table of known GPUs, else a measured matmul peak."""
    version: int = CONFIG_VERSION
    """Config format version (saved with checkpoints)."""

    def __post_init__(self):
        problems = []

        def is_int(v, lo):
            return isinstance(v, int) and not isinstance(v, bool) and v >= lo

        def is_num(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        for n in ("steps", "accumulate", "ckpt_every", "keep_checkpoints"):
            if not is_int(getattr(self, n), 1):
                problems.append(f"{n}={getattr(self, n)!r} must be an integer >= 1")
        for n in ("warmup_steps", "seed"):
            if not is_int(getattr(self, n), 0):
                problems.append(f"{n}={getattr(self, n)!r} must be an integer >= 0")
        for n, v in (("eval_every", self.eval_every), ("num_threads", self.num_threads)):
            if v is not None and not is_int(v, 1):
                problems.append(f"{n}={v!r} must be None or an integer >= 1")
        if not (is_num(self.lr) and self.lr > 0):
            problems.append(f"lr={self.lr!r} must be a positive number, e.g. 3e-4")
        if not (is_num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1):
            problems.append(f"min_lr_ratio={self.min_lr_ratio!r} must be in [0, 1]")
        if not (is_num(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay={self.weight_decay!r} must be >= 0")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
                and all(is_num(b) and 0 <= b < 1 for b in self.betas)):
            problems.append(f"betas={self.betas!r} must be two numbers in [0, 1), e.g. (0.9, 0.95)")
        else:
            object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))  # JSON gives a list
        if not (is_num(self.eps) and self.eps > 0):
            problems.append(f"eps={self.eps!r} must be > 0")
        for n in ("grad_clip", "max_seconds", "peak_flops"):
            v = getattr(self, n)
            if v is not None and not (is_num(v) and v > 0):
                problems.append(f"{n}={v!r} must be None or a number > 0")
        for n, allowed in (("schedule", ("cosine", "constant")), ("device", ("auto", "cpu", "cuda")),
                           ("precision", ("fp32", "bf16")), ("parallel", ("auto", "none", "ddp", "fsdp"))):
            if getattr(self, n) not in allowed:
                problems.append(f"{n}={getattr(self, n)!r} must be one of {', '.join(map(repr, allowed))}")
        for n in ("gradient_checkpointing", "progress", "plots"):
            if not isinstance(getattr(self, n), bool):
                problems.append(f"{n}={getattr(self, n)!r} must be True or False")
        if self.version != CONFIG_VERSION:
            problems.append(f"version={self.version!r}: this beingh0 reads train config version {CONFIG_VERSION}")
        if problems:
            raise UserValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserValueError(f"train config has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    def resume_mismatch(self, saved: "TrainConfig") -> list[str]:
        """Fields where this config differs from a checkpoint's ``saved`` one and may not."""
        return [f.name for f in fields(self)
                if f.name not in RESUME_MAY_CHANGE and getattr(self, f.name) != getattr(saved, f.name)]
