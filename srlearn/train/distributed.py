"""Data-parallel training under ``torchrun``: one process per device, gradients averaged.

``train`` calls ``setup`` first. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) it returns a
single-process context and nothing else changes. Under ``torchrun --nproc_per_node N`` it

* initialises the process group (NCCL on CUDA, Gloo on the CPU) unless the caller already did;
* gives each rank its device (``cuda:LOCAL_RANK`` on GPUs);
* lets ``shard`` hand each rank a disjoint, contiguous slice of the *global* batch, so the global batch
  (``config.batch_size`` images) is the single-process batch. Every rank computes the mean loss over its
  slice and DistributedDataParallel averages the gradients over ranks; with equal slices that average is
  the gradient of the mean loss over the global batch, so N ranks follow the single-process trajectory
  up to floating-point summation order;
* leaves progress bars, validation and checkpoint writing to rank 0 (``ctx.is_main``).

``teardown`` destroys the group only if ``setup`` created it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False   # True if setup() initialised the process group (teardown destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistContext:
    """The distributed context for this process; initialise the group when launched by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support; "
                           "run in a single process (plain `python`, not torchrun)")
    owns = False
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device, owns_group=owns)


def shard(indices: list, ctx: DistContext) -> list:
    """This rank's contiguous slice of the global batch ``indices`` (equal slices, in order)."""
    if len(indices) % ctx.world_size:
        raise ValueError(f"the global batch of {len(indices)} cannot be split equally over "
                         f"{ctx.world_size} processes: make batch_size a multiple of the number of "
                         f"processes (torchrun --nproc_per_node)")
    per = len(indices) // ctx.world_size
    return indices[ctx.rank * per:(ctx.rank + 1) * per]


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """The model to call in training: DistributedDataParallel over ``model`` when distributed."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def agree(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "the time budget is spent": all ranks must stop together)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
