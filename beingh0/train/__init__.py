"""The one training loop of beingh0: devices, precision, torchrun (DDP / FSDP2), checkpoints, resume, logs.

``fit(model, loss_fn, data, TrainConfig(...), out_dir)`` trains any ``nn.Module``; see
``beingh0/train/loop.py`` and ``docs/train.md``. Sequence packing for causal LMs: ``beingh0.train.packing``.
"""
from .checkpoint import latest_checkpoint, read_meta
from .config import TrainConfig
from .distributed import DistInfo, init_distributed
from .loop import FitResult, fit, to_device
from .metrics import flops_per_token_6n, peak_flops
from .optim import lr_factor, param_groups
from .packing import PackedBatch, attention_implementation, pack_sequences, per_sample_losses

__all__ = ["fit", "FitResult", "TrainConfig", "init_distributed", "DistInfo", "latest_checkpoint", "read_meta",
           "to_device", "flops_per_token_6n", "peak_flops", "lr_factor", "param_groups", "PackedBatch",
           "pack_sequences", "per_sample_losses", "attention_implementation"]
