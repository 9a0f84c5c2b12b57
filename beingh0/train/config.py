"""``TrainConfig``: every setting of the training loop, with its default, in one place.

A config validates itself (``beingh0.core.config.validate_config`` on the fields' metadata: all
problems in one error), rejects unknown keys, carries a version and
is saved with every checkpoint. On resume the checkpoint's config must equal the given one except
for the fields in :data:`RESUME_MAY_CHANGE` (run length, budgets, logging), so that the same
command continues the same run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..core.config import validate_config
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

    steps: int = field(default=1000, metadata={"ge": 1})
    """Total optimizer steps to reach (a resumed run continues up to this number)."""
    accumulate: int = field(default=1, metadata={"ge": 1})
    """Micro-batches per optimizer step on each rank (gradient accumulation). The data iterator yields
    micro-batches; global batch = micro-batch x accumulate x world size."""
    lr: float = field(default=3e-4, metadata={"gt": 0})
    """Peak AdamW learning rate (reached after ``warmup_steps``)."""
    schedule: str = field(default="cosine", metadata={"choices": ("cosine", "constant")})
    """After warm-up: ``"cosine"`` decays to ``min_lr_ratio * lr`` at ``steps``; ``"constant"`` stays at ``lr``."""
    warmup_steps: int = field(default=0, metadata={"ge": 0})
    """Linear warm-up from ``lr / warmup_steps`` to ``lr`` over this many steps (0 = none)."""
    min_lr_ratio: float = field(default=0.1, metadata={"ge": 0, "le": 1})
    """Final learning rate of the cosine decay, as a fraction of ``lr`` (Chinchilla / nanoGPT use 0.1)."""
    weight_decay: float = field(default=0.1, metadata={"ge": 0})
    """AdamW decoupled weight decay, applied to matrices only: biases, norm weights (every parameter
    with fewer than 2 dimensions) and embedding tables get none."""
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata={"ge": 0, "lt": 1})
    """AdamW betas (0.95 rather than torch's 0.999: the usual choice for transformer pretraining)."""
    eps: float = field(default=1e-8, metadata={"gt": 0})
    """AdamW epsilon."""
    grad_clip: float | None = field(default=1.0, metadata={"gt": 0})
    """Clip the global gradient norm to this value; None = no clipping (the norm is still logged)."""
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``. Under torchrun each rank
    takes ``cuda:LOCAL_RANK``."""
    precision: str = field(default="fp32", metadata={"choices": ("fp32", "bf16")})
    """``"fp32"`` or ``"bf16"`` (autocast of the forward pass to bfloat16, on CPU too; parameters,
    gradients and optimizer state stay float32)."""
    gradient_checkpointing: bool = False
    """Call ``model.gradient_checkpointing_enable()`` (models that have it, e.g. transformers models):
    recompute activations in the backward pass to save memory."""
    parallel: str = field(default="auto", metadata={"choices": ("auto", "none", "ddp", "fsdp")})
    """How several ranks share the model: ``"ddp"`` (replicated, gradients all-reduced), ``"fsdp"``
    (FSDP2 ``fully_shard``: parameters, gradients and optimizer state sharded), ``"none"`` (one
    process only) or ``"auto"`` (ddp when the world size is above 1, else none)."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seeds python, numpy and torch at a fresh start (rank r uses ``seed + r``)."""
    ckpt_every: int = field(default=1000, metadata={"ge": 1})
    """Write a checkpoint every this many steps, and at the end or when the time budget runs out."""
    keep_checkpoints: int = field(default=1, metadata={"ge": 1})
    """Complete checkpoints kept; older ones are deleted only after a newer one is complete."""
    eval_every: int | None = field(default=None, metadata={"ge": 1})
    """Call ``evaluate(model)`` every this many steps and at the end; None = only at the end."""
    max_seconds: float | None = field(default=None, metadata={"gt": 0})
    """Wall-clock budget of the training loop: past it the loop checkpoints and stops cleanly; None = no budget."""
    progress: bool = True
    """tqdm progress bar on rank 0."""
    plots: bool = True
    """Write ``loss.png`` (training loss, learning rate, tokens/s, evaluation metrics) on rank 0."""
    num_threads: int | None = field(default=None, metadata={"ge": 1})
    """torch intra-op threads while training (restored afterwards); None = leave torch's setting.
    On a small shared CPU 1 thread is often fastest for tiny models."""
    peak_flops: float | None = field(default=None, metadata={"gt": 0})
    """Peak FLOP/s of one device for MFU; None = a table of known GPUs, else a measured matmul peak."""
    version: int = field(default=CONFIG_VERSION, metadata={"cli": False, "choices": (CONFIG_VERSION,)})
    """Config format version (saved with checkpoints)."""

    def __post_init__(self):
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))  # JSON gives a list
        validate_config(self)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

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
