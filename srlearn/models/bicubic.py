"""The bicubic baseline as a 'model': MATLAB-exact bicubic up-sampling, no parameters.

Every results table has this row: a network that does not beat it has learned nothing.
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
