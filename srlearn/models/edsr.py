"""EDSR (Lim et al., CVPR-W 2017): a plain residual backbone, no batch norm, sub-pixel up-sampling.

    x -> MeanShift(-) -> head conv -> [ResBlock x n_resblocks -> conv] + skip -> Upsampler -> tail conv -> MeanShift(+)

The paper's EDSR is 32 blocks x 256 channels with residual scaling 0.1; its "baseline" is 16 x 64.
Inputs and outputs are RGB in [0, 1] (the official code works in [0, 255]; the mean shift scales with
``rgb_range`` so the two are the same network up to a fixed input scale).
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn.common import MeanShift, ResBlock, Upsampler, conv3x3
from .registry import register


class EDSR(nn.Module):
    def __init__(self, scale: int = 2, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 in_channels: int = 3, rgb_range: float = 1.0):
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"EDSR subtracts the DIV2K RGB mean, so in_channels must be 3, got {in_channels!r}; "
                             f"give a grey image three channels (x.expand(-1, 3, -1, -1))")
        self.scale, self.in_channels = int(scale), in_channels
        self.sub_mean = MeanShift(sign=-1, rgb_range=rgb_range)
        self.head = conv3x3(in_channels, n_feats)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale=res_scale) for _ in range(n_resblocks)],
                                  conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, in_channels))
        self.add_mean = MeanShift(sign=+1, rgb_range=rgb_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x))
        x = x + self.body(x)
        return self.add_mean(self.tail(x))


@register("edsr", presets={
    "paper": {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1, "scale": 2},
    "baseline": {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0, "scale": 2},
    "mini": {"n_resblocks": 4, "n_feats": 32, "res_scale": 1.0, "scale": 2},
}, description="EDSR: residual blocks without batch norm + sub-pixel up-sampling",
   params={"paper": 40_729_603, "baseline": 1_369_859, "mini": 121_987})
def edsr(**kwargs) -> EDSR:
    return EDSR(**kwargs)
