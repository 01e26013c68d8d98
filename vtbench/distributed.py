"""`torch.distributed` as a ``torchrun`` launch of vtbench uses it: joining the process group, this
process's rank, and the few collectives evaluation and tokenization need. Without a launch (one process)
every function is a no-op answering rank 0 of 1."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init(backend: str | None = None) -> tuple[int, int]:
    """Join the process group a ``torchrun`` launch describes (``WORLD_SIZE`` > 1), with ``backend`` (default:
    NCCL when this machine has a GPU, and this process's GPU set from ``LOCAL_RANK``; gloo otherwise).
    Returns `world()`; safe to call twice."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return world()


@contextlib.contextmanager
def session(backend: str | None = None):
    """`init` for the duration of the block, yielding (rank, world size); a group it created is destroyed."""
    existed = dist.is_available() and dist.is_initialized()
    try:
        yield init(backend)
    finally:
        if not existed and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def gather(obj) -> list:
    """``obj`` of every process, in rank order (``[obj]`` in one process)."""
    n = world()[1]
    if n == 1:
        return [obj]
    out = [None] * n
    dist.all_gather_object(out, obj)
    return out


def from_rank0(obj):
    """Rank 0's ``obj`` in every process."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
