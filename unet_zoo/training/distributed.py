"""torchrun / DistributedDataParallel helpers: nccl on GPUs, gloo on CPUs.

Launch a multi-process run with torchrun; every process reads its rank from the environment::

    torchrun --nproc-per-node 8 -m unet_zoo train isbi-original            # one node, 8 GPUs
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --nproc-per-node 8 -m unet_zoo train ...

Without the torchrun environment variables everything degrades to a single process (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from unet_zoo.utils.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank among `world_size` processes, its local rank and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str = ""  # "nccl", "gloo" or "" when not distributed

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs, draws progress bars and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else ``cuda`` when a GPU is visible, else ``cpu`` (`unet_zoo.utils.device.resolve_device`)."""
    return resolve_device(device)


def init_distributed(device: str | torch.device | None = None, timeout_s: float = 1800) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Uses nccl when the device is CUDA (each process takes GPU ``LOCAL_RANK``) and gloo on the CPU.
    Returns a single-process `DistInfo` when WORLD_SIZE is unset or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = default_device(device)
    if world_size <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world_size} but {var} is not set; launch with torchrun")
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend)


def cleanup_distributed() -> None:
    """Leave the process group (no-op when not distributed).

    All ranks meet at a barrier first: a rank that tears down its gloo connections while a peer is still
    using them makes the peer's transport thread abort the process (SIGABRT).
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for all processes (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over all processes (returns `value` unchanged when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (``[obj]`` when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every process (`obj` itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Wrap `model` in DistributedDataParallel when running with several processes.

    DDP broadcasts rank 0's parameters at construction, so all ranks start identical, and averages
    gradients in backward, so they stay identical.
    """
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


__all__ = [
    "DistInfo",
    "all_gather_objects",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "default_device",
    "init_distributed",
    "wrap_ddp",
]
