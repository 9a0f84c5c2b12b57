"""Processes and devices: one code path from 1 process to ``torchrun --nproc_per_node N``.

:func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and starts the process group: ``nccl`` on CUDA, ``gloo`` on CPU.
Without those variables it is a world of one and starts nothing. :func:`wrap_model` applies DDP or
FSDP2 (``torch.distributed.fsdp.fully_shard``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..core.errors import UserValueError

__all__ = ["DistInfo", "init_distributed", "resolve_device", "wrap_model", "all_reduce_sum", "all_gather_objects",
           "broadcast_module", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, prints and shows a progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserValueError("device='cuda' but torch sees no CUDA GPU; use device='cpu' or 'auto'")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device == "cpu":
        return torch.device("cpu")
    raise UserValueError(f"device={device!r} must be 'auto', 'cpu' or 'cuda'")


def init_distributed(device: str = "auto") -> DistInfo:
    """Start (once) the process group described by torchrun's environment and pick this rank's device.

    Safe to call several times; a caller that builds a rank-split data loader calls it first.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                device_id=dev if dev.type == "cuda" else None)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world, local_rank, dev)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values, device: torch.device) -> list[float]:
    """Sum a few numbers (a list or a 1-D tensor) over all ranks in float64, in one collective."""
    t = torch.as_tensor(values, dtype=torch.float64).to(device)
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def broadcast_module(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (FSDP2, unlike DDP, does not do it)."""
    if dist.is_initialized():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def _fsdp_blocks(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP2 shards one by one: the entries of every ``nn.ModuleList`` (transformer
    blocks, in the usual layout), outermost lists first. Their parameters are gathered only around
    their own forward/backward; the rest of the model is sharded as one unit at the root."""
    blocks, inside = [], set()
    for m in model.modules():  # pre-order: an outer list comes before any list nested in its blocks
        if isinstance(m, nn.ModuleList) and id(m) not in inside:
            blocks.extend(m)
            inside.update(id(x) for x in m.modules())
    return blocks


def wrap_model(model: nn.Module, parallel: str, info: DistInfo) -> nn.Module:
    """The module to call in training: ``model`` itself (one process), DDP around it, or ``model``
    sharded in place by FSDP2. ``parallel`` is the config's (``auto`` = ddp when world > 1)."""
    if parallel == "auto":
        parallel = "ddp" if info.distributed else "none"
    if parallel == "none":
        if info.distributed:
            raise UserValueError(f"parallel='none' cannot run on {info.world_size} ranks; use 'ddp' or 'fsdp'")
        return model
    if parallel == "ddp":
        if not info.distributed:
            return model  # DDP over one rank is the model itself
        ids = [info.device.index] if info.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        if not dist.is_initialized():  # FSDP2 needs a process group, also for one rank
            raise UserValueError("parallel='fsdp' needs torchrun (even with --nproc_per_node 1); "
                                 "use parallel='none' for a plain single process")
        mesh = init_device_mesh(info.device.type, (info.world_size,))
        for block in _fsdp_blocks(model):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    raise UserValueError(f"parallel={parallel!r} must be 'auto', 'none', 'ddp' or 'fsdp'")
