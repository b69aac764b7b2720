"""Exponential moving average of the weights (BasicSR's ``model_ema``, [sr-protocol.md §4]).

After every optimiser step::

    ema_param = decay * ema_param + (1 - decay) * param      # parameters
    ema_buffer = buffer                                       # buffers (e.g. BatchNorm statistics)

Convention: BasicSR averages ``named_parameters()`` only and leaves the EMA network's buffers alone;
we average parameters the same way and *copy* the buffers, so buffer statistics of the EMA network
are those of the live network (the networks here have no running statistics, only constant buffers
such as the mean shift, so the two conventions agree on them). There is no bias correction or
warm-up of the decay: at decay 0.999 the average forgets its initial value with a time constant of
~1000 steps, so short runs should use a smaller decay (e.g. 0.99).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds ``module``, a frozen copy of the model whose parameters are the moving average."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), e.g. 0.999; got {decay!r}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = dict(self.module.named_parameters())
        for name, p in model.named_parameters():
            ema_params[name].mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
        ema_buffers = dict(self.module.named_buffers())
        for name, b in model.named_buffers():
            ema_buffers[name].copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
