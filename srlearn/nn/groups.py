"""The residual groups of the papers: the blocks their equations are written in.

* RCAN (Zhang et al., ECCV 2018): :class:`RCAB` ``v + CA(conv(relu(conv(v))))`` and
  :class:`ResidualGroup` (RCABs, a conv, a skip) [papers.md §1.7];
* SAN (Dai et al., CVPR 2019): :class:`LSRAG`, ``u + Conv(attention(RB_m(...RB_1(u))))`` [papers.md §1.1];
* MIRNet (Zamir et al., ECCV 2020): :class:`MRB`, the multi-scale residual block, and :class:`RRG`, the
  recursive residual group [papers.md §3.2, §3.3].

The channel attention inside RCAB and LSRAG is any kind in :data:`srlearn.nn.ATTENTION`; the fusion inside
MRB any kind in :data:`srlearn.nn.FUSION`. The architectures that stack these groups are in ``srlearn.models``.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import ATTENTION, DAU, channel_attention
from .common import ResBlock, conv, conv3x3
from .fusion import FUSION, fusion_layer
from .resize import resize_down, resize_up

__all__ = ["RCAB", "ResidualGroup", "LSRAG", "MRB", "RRG"]


class RCAB(nn.Module):
    """Residual channel attention block: ``v + CA(conv(relu(conv(v))))``."""

    def __init__(self, channels: int, reduction: int = 16, attention: str = "se"):
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels),
                                  channel_attention(attention, channels, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """m RCABs and a 3×3 conv, with a skip around them."""

    def __init__(self, channels: int, n_resblocks: int, reduction: int = 16, attention: str = "se"):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(channels, reduction, attention) for _ in range(n_resblocks)],
                                  conv3x3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LSRAG(nn.Module):
    """Local-source residual attention group: m residual blocks, channel attention, 3×3 conv, skip."""

    def __init__(self, channels: int, n_resblocks: int, attention: str = "soca", reduction: int = 16,
                 ns_iters: int = 5):
        super().__init__()
        self.blocks = nn.Sequential(*[ResBlock(channels) for _ in range(n_resblocks)])
        # ns_iters reaches the kinds that take ``iters`` (SOCA's Newton-Schulz steps); others ignore it
        self.attention = channel_attention(attention, channels, reduction, **ATTENTION.accepted(attention, iters=ns_iters))
        self.conv = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.attention(self.blocks(x)))


class MRB(nn.Module):
    r"""Multi-scale residual block: ``height`` streams × ``width`` columns of DAUs, fused, plus the input.

    Stream j runs at 1/2^j resolution with C·2^j channels. Schedule [papers.md §3.2; C: ``MSRB``]:

    1. column 1: ``S_0 = DAU_0(x)``, ``S_j = DAU_j(Down_{C_{j-1},×2}(S_{j-1}))``;
    2. every further column: ``S_j ← DAU_j(F_j([R_{k→j}(S_k)]_k))`` with R the resampling from stream k
       to stream j (down-sampling finer streams, up-sampling coarser ones) and F_j the fusion of stream j;
    3. ``MRB(x) = x + W_{3×3}\, F_0([\mathrm{Up}_{k}(S_k)]_k)`` — the *same* fusion layer F_0 as stream 0's.

    Faithful to the official code's module layout, which fixes the parameter count:

    * resampling modules are keyed by (input channels, factor) and reused wherever that resampling
      occurs (the ×2 down-sampler of column 1 also serves the exchange), but the final up-samplers
      (``last_up``) are separate modules; ×4 = two ×2 steps;
    * ``share_dau_weights=True``: each stream has **one** DAU applied in every column (the released
      model: ``[DAU(c)] * width`` repeats one module, papers.md §3.3 quirk 1); ``False``: a DAU per
      column, as the paper's figure draws it.

    ``fusion`` ∈ {"skff", "sum", "concat"}; ``act``: a PReLU shared by the DAUs (None: each its own);
    ``reduction``: the DAUs' channel attention, ``skff_reduction``: SKFF's (both 8 in the official code).
    Channels double per stream (the official ``stride = 2``; its resizing modules assume it). H and W
    must be multiples of 2^(height−1): the model (``srlearn.models.mirnet``) pads to that and crops back.
    Notebook: section "5. The multi-scale residual block".
    """

    def __init__(self, channels: int, height: int = 3, width: int = 2, fusion: str = "skff",
                 share_dau_weights: bool = True, reduction: int = 8, bias: bool = False,
                 act: nn.Module | None = None, skff_reduction: int = 8):
        super().__init__()
        for name, v in (("channels", channels), ("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.channels, self.height, self.width = channels, height, width
        self.share_dau_weights, self.fusion = bool(share_dau_weights), FUSION.resolve(fusion)
        self.feats = [channels * 2 ** j for j in range(height)]
        n_dau = 1 if self.share_dau_weights else width
        self.daus = nn.ModuleList([nn.ModuleList([DAU(c, reduction=reduction, bias=bias, act=act)
                                                  for _ in range(n_dau)]) for c in self.feats])
        self.down, self.up = nn.ModuleDict(), nn.ModuleDict()
        for j, c in enumerate(self.feats):
            for m in range(1, height - j):                 # stream j -> coarser stream j + m
                self.down[f"{c}_x{2 ** m}"] = resize_down(c, 2 ** m, bias)
            for m in range(1, j + 1):                      # stream j -> finer stream j - m
                self.up[f"{c}_x{2 ** m}"] = resize_up(c, 2 ** m, bias)
        self.last_up = nn.ModuleList([nn.Identity()] + [resize_up(c, 2 ** j, bias)   # not shared with self.up
                                                        for j, c in enumerate(self.feats) if j])
        self.fuse = nn.ModuleList([fusion_layer(self.fusion, c, height, skff_reduction, bias) for c in self.feats])
        self.conv_out = conv(channels, channels, 3, bias)

    def dau(self, stream: int, column: int) -> DAU:
        """The DAU of ``stream`` in ``column`` (the same module in every column when shared)."""
        return self.daus[stream][0 if self.share_dau_weights else column]

    def resample(self, x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
        """Stream ``src``'s features at stream ``dst``'s resolution and width (identity if equal)."""
        if src == dst:
            return x
        key = f"{self.feats[src]}_x{2 ** abs(dst - src)}"
        return self.down[key](x) if src < dst else self.up[key](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mult = 2 ** (self.height - 1)
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[-2] % mult or x.shape[-1] % mult:
            raise ValueError(f"MRB expects (B, {self.channels}, H, W) with H, W multiples of {mult} "
                             f"(height {self.height}), got {tuple(x.shape)}; pad the input (MIRNet does)")
        streams = [self.dau(0, 0)(x)]
        for j in range(1, self.height):                                    # 1. first column
            streams.append(self.dau(j, 0)(self.resample(streams[-1], j - 1, j)))
        for col in range(1, self.width):                                   # 2. exchange, then DAUs
            fused = [self.fuse[j]([self.resample(s, k, j) for k, s in enumerate(streams)])
                     for j in range(self.height)]
            streams = [self.dau(j, col)(f) for j, f in enumerate(fused)]
        out = self.fuse[0]([up(s) for up, s in zip(self.last_up, streams)])  # 3. back to full resolution
        return x + self.conv_out(out)


class RRG(nn.Module):
    r"""Recursive residual group: ``RRG(x) = x + W_{3×3}\,\mathrm{MRB}_n(\cdots\mathrm{MRB}_1(x))``
    [papers.md §3.2; C: ``RRG``]; ``mrb_kwargs`` go to every :class:`MRB`."""

    def __init__(self, channels: int, n_mrb: int = 2, bias: bool = False, **mrb_kwargs):
        super().__init__()
        self.body = nn.Sequential(*[MRB(channels, bias=bias, **mrb_kwargs) for _ in range(n_mrb)],
                                  conv(channels, channels, 3, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
