"""The parameter-free baselines as 'models': the first row of every results table.

* :class:`Bicubic`: MATLAB-exact bicubic up-sampling (single-image SR); a network that does not beat it has
  learned nothing;
* :class:`RefIgnoringBicubic`: the same for a reference-based SR table (``model(lr, ref)``, reference ignored);
* :class:`NoisyInput`: the denoising baseline, the noisy image itself.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import register


class Bicubic(nn.Module):
    """Up-sample by ``scale`` with MATLAB's bicubic kernel (float path of ``srlearn.data.imresize``)."""

    input_channels = None   # any number of planes (RGB, Y, chroma)

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..data.resize import imresize_torch  # data is a lower floor
        return imresize_torch(x, self.scale)


@register("bicubic", presets={"paper": {"scale": 2}, "mini": {"scale": 2}},
          description="MATLAB bicubic up-sampling (the baseline; no parameters)",
          params={"paper": 0, "mini": 0})
def bicubic(scale: int = 2) -> Bicubic:
    return Bicubic(scale)


class RefIgnoringBicubic(nn.Module):
    """The bicubic baseline of a RefSR table: MATLAB bicubic up-sampling of ``lr``; the reference is ignored."""

    def __init__(self, scale: int = 4):
        super().__init__()
        self.bicubic = Bicubic(scale)
        self.scale = int(scale)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.bicubic(lr)


class NoisyInput(nn.Module):
    """The denoising baseline as a parameter-free 'model': it returns its input, the noisy image."""
    scale = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
