"""Pixel losses for super-resolution: L1, MSE and Charbonnier.

The field trains with L1 (EDSR, RCAN, SAN, BasicSR; [sr-protocol.md §4]); SRDenseNet used MSE;
MIRNet and SSEN use the Charbonnier loss, a smooth L1 [papers.md §6]. All three return the mean over
every pixel, channel and image of the batch, so the loss of a batch split across ranks and averaged by
DistributedDataParallel equals the loss of the whole batch (``distributed.py``).
"""
from __future__ import annotations

import torch
from torch import nn


class CharbonnierLoss(nn.Module):
    """mean(sqrt((sr - hr)^2 + eps^2)).

    Convention: MIRNet's official loss (``eps = 1e-3``, square root taken per element, then the mean);
    some re-implementations put ``eps`` outside the square or subtract it so the loss is 0 at sr == hr.
    We follow MIRNet: the minimum value is ``eps``, not 0. Near zero error it behaves like
    ``d^2 / (2 eps)`` (smooth, unlike L1); far from it like ``|d|`` (robust, like L1).
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"Charbonnier eps must be > 0, got {eps}")
        self.eps = float(eps)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        d = sr - hr
        return torch.sqrt(d * d + self.eps ** 2).mean()


LOSSES = {
    "l1": nn.L1Loss,          # mean |sr - hr|
    "mse": nn.MSELoss,        # mean (sr - hr)^2
    "charbonnier": CharbonnierLoss,
}


def make_loss(name: str) -> nn.Module:
    """The loss module called ``name`` (one of ``LOSSES``: "l1", "mse", "charbonnier")."""
    key = str(name).strip().lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    return LOSSES[key]()
