"""Learning-rate schedules, stepped once per iteration.

``lr_factor(step, config)`` is the whole schedule as one pure function (nanoGPT's ``get_lr``): the lr
used by iteration ``step`` (0-based: the first optimiser step is step 0) is ``config.lr * factor``.
``make_scheduler`` wraps it in a ``LambdaLR`` so the optimiser sees it and checkpoints carry its
position (``last_epoch`` = number of iterations done).

* ``"none"``: constant ``lr``.
* ``"step"``: MultiStep, as EDSR/BasicSR [sr-protocol.md §4]: ``lr * gamma**k`` where k is the number of
  milestones <= step. Default milestones: 50 % and 75 % of ``steps`` (rounded down), so with
  ``gamma = 0.5`` the last quarter trains at lr/4. (The papers' 200k-of-300k milestones are for runs
  two orders of magnitude longer than ours.)
* ``"cosine"``: half a cosine from ``lr`` at the end of warm-up to ``min_lr`` at ``steps``, then flat
  at ``min_lr`` (MIRNet: 2e-4 -> 1e-6 [papers.md §6.3]).
* warm-up (any schedule, ``warmup_steps = W > 0``): the factor is multiplied by ``(step + 1) / W`` for
  ``step < W``, so the first step uses ``lr / W`` and step ``W - 1`` the full value.
"""
from __future__ import annotations

import math

import torch

from .config import TrainConfig


def milestones(config: TrainConfig) -> list[int]:
    """The steps at which ``schedule="step"`` multiplies the lr by ``gamma``."""
    if config.milestones is not None:
        return list(config.milestones)
    return [config.steps // 2, (3 * config.steps) // 4]


def lr_factor(step: int, config: TrainConfig) -> float:
    """lr(step) / config.lr for the 0-based iteration ``step``."""
    if config.schedule == "none":
        factor = 1.0
    elif config.schedule == "step":
        factor = config.gamma ** sum(step >= m for m in milestones(config))
    elif config.schedule == "cosine":
        w = config.warmup_steps
        progress = min(max(step - w, 0) / (config.steps - w), 1.0)
        floor = config.min_lr / config.lr
        factor = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:  # TrainConfig already rejects this; kept for direct callers
        raise ValueError(f"unknown schedule {config.schedule!r}; valid schedules: none, step, cosine")
    if step < config.warmup_steps:
        factor *= (step + 1) / config.warmup_steps
    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration scheduler: after ``k`` calls to ``.step()`` the lr is ``config.lr * lr_factor(k)``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
