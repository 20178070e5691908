"""Data-parallel training over processes and machines, launched by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in every process it starts; `session` then joins
the process group (nccl on CUDA, each process on GPU LOCAL_RANK; gloo on the CPU). Without those
variables there is no process group and training runs in one process exactly as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sleeg_core.common.errors import SleegError
from sleeg_core.model.inference import resolve_device

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun launch, and the device it trains on."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and the head file."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        """nccl or gloo."""
        return dist.get_backend()

    def wrap(self, module: nn.Module) -> DistributedDataParallel:
        """`module` with its gradients averaged over the ranks (rank 0's weights to start)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def in_turn(self, fn: Callable[[], T]) -> T:
        """fn() on rank 0, then on the first process of every other machine, then on the rest:
        work that fills a cache on disk (bag frames) is done once per storage, shared or not."""
        wave = 0 if self.rank == 0 else 1 if self.local_rank == 0 else 2
        for _ in range(wave):
            dist.barrier()
        result = fn()
        for _ in range(2 - wave):
            dist.barrier()
        return result

    def all_gather(self, value: T) -> list[T]:
        """Every rank's `value` (picklable), in rank order."""
        values: list[T | None] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values  # type: ignore[return-value]

    def check_same(self, what: str, *values: object) -> None:
        """SleegError on every rank unless all ranks hold equal `values` (compared by digest)."""
        digest = hashlib.sha256(repr(values).encode()).hexdigest()
        if len(set(self.all_gather(digest))) > 1:
            raise SleegError(
                f"the {self.world_size} processes disagree on {what}: every machine needs the "
                "same data sources, and --out on storage they all see"
            )

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of `values` over the ranks, element-wise (queued: nothing waits for it)."""
        t = values.to(self.device, torch.float64)
        dist.all_reduce(t)
        return t / self.world_size


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or `module` itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


@contextmanager
def session(device: str) -> Iterator[Distributed | None]:
    """The process group of a torchrun launch for the duration (None when not launched so)."""
    if not all(name in os.environ for name in ENV_VARS):
        yield None
        return
    rank, world, local = (int(os.environ[name]) for name in ENV_VARS)
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    try:
        yield Distributed(rank, local, world, dev)
    finally:
        dist.destroy_process_group()
