"""Devices and torchrun-style DistributedDataParallel plumbing.

A process launched by ``torchrun`` has ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment; with ``WORLD_SIZE > 1`` the trainer joins
the process group (gloo on CPU, nccl on CUDA) and shards the data.
"""

import os
import re
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from snnframe.builtins.training.errors import DeviceUnavailable

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_problem(request: str) -> str | None:
    """Why ``request`` cannot run on this machine, or None; checked when the trainer is built, so that
    ``validate`` reports it and a new run fails before its directory exists (torchrun's ranks are checked
    again by :func:`resolve_device`)."""
    if request in ("auto", "cpu"):
        return None
    if not torch.cuda.is_available():
        return f'device = {request!r} but this PyTorch build or machine has no CUDA device; use "auto" or "cpu"'
    if ":" in request and int(request.split(":")[1]) >= torch.cuda.device_count():
        return f"device = {request!r} does not exist ({torch.cuda.device_count()} CUDA device(s) visible)"
    return None


def resolve_device(request: str, local_rank: int | None = None) -> torch.device:
    """``auto`` picks CUDA when present; under torchrun each process takes ``cuda:LOCAL_RANK``.

    ``request`` matches ``DEVICE_PATTERN`` (the trainer's constructor checks it).
    """
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    if request == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"train.device = {request!r} but this PyTorch build or machine has no CUDA device; "
            'use train.device = "auto" or "cpu"'
        )
    if local_rank is not None:
        index = local_rank
    elif ":" in request:
        index = int(request.split(":")[1])
    else:
        index = torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(
            f"train.device = {request!r}: cuda:{index} does not exist "
            f"({torch.cuda.device_count()} CUDA device(s) visible)"
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class DistContext:
    """This process's place in a (possibly one-process) data-parallel run."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self._owns_group = False

    @classmethod
    def from_env(cls) -> "DistContext":
        env = os.environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return cls()
        return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def start(self, device: torch.device) -> None:
        if self.active and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self._owns_group = True

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes, in place."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.active:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample exactly once over all ranks.

    Unlike ``DistributedSampler`` it pads nothing, so evaluation metrics summed
    over ranks equal a single process's.
    """

    def __init__(self, length: int, rank: int, world_size: int):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))
