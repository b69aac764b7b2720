"""RCAN — Residual Channel Attention Network (Zhang et al., ECCV 2018): SAN's first-order baseline.

    x -> MeanShift(-) -> head conv -> [RG_1 ... RG_G -> conv] + skip -> sub-pixel up-sampler -> conv -> MeanShift(+)

    RG(u)   = u + Conv3x3(RCAB_m(...RCAB_1(u)))                  G = 10 groups, m = 20 blocks
    RCAB(v) = v + CA(Conv3x3(ReLU(Conv3x3(v))))                  CA = SE with 1x1 convs, r = 16

[papers.md §1.7; C: yulunzhang/RCAN ``RCAN_TrainCode/code/model/rcan.py``]. One channel attention per
block (200 in total) where SAN has one per group (20). The input mean shift is a buffer
(``common.MeanShift``), not the official trainable 1×1 conv. Inputs and outputs are RGB in [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn.attention import ATTENTION
from ..nn.groups import RCAB, ResidualGroup  # noqa: F401  (RCAB: re-exported where it used to live)
from ..nn.common import MeanShift, Upsampler, conv3x3
from .registry import register

# papers.md §1.6: official RCAN x2 15,444,667 = ours 15,444,643 + 24 (MeanShift weights, a buffer here).
PAPER_PARAMS = {2: 15_444_643, 3: 15_629_283, 4: 15_592_355}


class RCAN(nn.Module):
    """RCAN; ``attention`` (a kind in ``srlearn.nn.ATTENTION``: "se" as published, "none", "soca", or one
    registered later) is the layer inside every RCAB."""

    def __init__(self, scale: int = 2, n_resgroups: int = 10, n_resblocks: int = 20, n_feats: int = 64,
                 reduction: int = 16, attention: str = "se", in_channels: int = 3, rgb_range: float = 1.0):
        super().__init__()
        ATTENTION.resolve(attention)   # an unknown kind: KeyError listing the registered ones, before any layer
        self.scale, self.in_channels = int(scale), in_channels
        self.sub_mean = MeanShift(sign=-1, rgb_range=rgb_range)
        self.head = conv3x3(in_channels, n_feats)
        self.body = nn.Sequential(*[ResidualGroup(n_feats, n_resblocks, reduction, attention)
                                    for _ in range(n_resgroups)], conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), conv3x3(n_feats, in_channels))
        self.add_mean = MeanShift(sign=+1, rgb_range=rgb_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"RCAN expects a (B, {self.in_channels}, H, W) image batch in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        x = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(x + self.body(x)))


@register("rcan", presets={
    "paper": {"scale": 2, "n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16},
    "mini": {"scale": 2, "n_resgroups": 2, "n_resblocks": 3, "n_feats": 32, "reduction": 8},
}, description="RCAN: residual-in-residual blocks with first-order channel attention",
   params={"paper": PAPER_PARAMS[2], "mini": 179_227})
def rcan(**kwargs) -> RCAN:
    return RCAN(**kwargs)
