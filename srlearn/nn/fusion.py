"""MIRNet's blocks (Zamir et al., ECCV 2020): fusing parallel streams, dual attention, the multi-scale
residual block and the recursive residual group.

* :class:`SKFF` — selective kernel feature fusion: *fuse* the K streams into one channel descriptor,
  then *select* how much of each stream every channel takes (softmax across streams).
  :class:`SumFusion` and :class:`ConcatFusion` are the two baselines of the paper's ablation.
* :class:`SpatialAttention`, :class:`ChannelAttention` and :class:`DAU` — the dual attention unit.
* :class:`MRB` — the multi-scale residual block: streams at full, ½ and ¼ resolution (C, 2C, 4C
  channels) exchanging information through a fusion layer; :class:`RRG` stacks MRBs.

The resampling between streams is in ``srlearn.nn.resize``. Spec: papers.md §3.2 (components) and
§3.3 (the official code's weight sharing). Everything is bias-free, as in the official code. Derived in
``notebooks/04_mirnet_skff_dau.ipynb``, sections "3. Dual attention: where, and what",
"4. SKFF: fuse, then select" and "5. The multi-scale residual block".
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import Registry
from .attention import SE
from .common import conv
from .resize import resize_down, resize_up

__all__ = ["SKFF", "SumFusion", "ConcatFusion", "FUSION", "fusion_layer", "SpatialAttention",
           "ChannelAttention", "DAU", "MRB", "RRG"]

#: How an MRB fuses its K streams, by name. An entry is a module class built as ``cls(channels, n_streams)``
#: plus whichever of ``reduction=`` and ``bias=`` its constructor takes; it is called on a list of K
#: same-shape maps. ``@FUSION.register("my-fusion")`` is all ``build("mirnet", ..., fusion="my-fusion")`` needs.
FUSION = Registry("fusion kind", "fusion", help="how MIRNet's multi-scale residual block fuses its streams")


def _check_streams(streams, n: int, channels: int, who: str) -> None:
    if isinstance(streams, torch.Tensor) or not isinstance(streams, Sequence):
        raise ValueError(f"{who} fuses a list of {n} feature maps (one per stream), got a {type(streams).__name__}")
    if len(streams) != n:
        raise ValueError(f"{who} fuses a list of {n} feature maps (one per stream), got {len(streams)}")
    shapes = {tuple(s.shape) for s in streams}
    first = streams[0]
    if len(shapes) != 1 or first.dim() != 4 or first.shape[1] != channels:
        raise ValueError(f"{who} expects {n} maps of one shape (B, {channels}, H, W); got {sorted(shapes)}: "
                         f"resample every stream to the target stream's size and width first")


@FUSION.register("skff")
class SKFF(nn.Module):
    r"""Selective kernel feature fusion of K same-shape streams L_1 … L_K.

    .. math::  \text{fuse:}\quad U = \textstyle\sum_k L_k,\quad s = \mathrm{GAP}(U) \in \mathbb R^C,
               \quad z = \mathrm{PReLU}(W_d\, s),\ W_d: C \to d = \max(\lfloor C/r \rfloor, 4) \\
               \text{select:}\quad v_k = W_k z\ (d \to C),\quad
               a_{k,c} = \frac{e^{v_{k,c}}}{\sum_{k'} e^{v_{k',c}}},\quad V = \textstyle\sum_k a_k \odot L_k

    [papers.md §3.2; C: ``SKFF``], r = 8, no biases. For each channel c the K weights a_{·,c} sum to 1,
    so identical streams pass through unchanged. Parameters: C·d + K·d·C + 1 (the PReLU slope) —
    2,049 at C = 64, K = 3, against 3C² = 12,288 for :class:`ConcatFusion` (6× fewer).

    Keeps, detached, ``last_descriptor`` (s, B×C) and ``last_weights`` (a, B×K×C) of the latest
    forward. Notebook: section "4. SKFF: fuse, then select".
    """

    def __init__(self, channels: int, n_streams: int = 3, reduction: int = 8, bias: bool = False,
                 min_hidden: int = 4):
        super().__init__()
        if n_streams < 1 or channels < 1:
            raise ValueError(f"SKFF needs channels >= 1 and n_streams >= 1, got {channels}, {n_streams}")
        self.channels, self.n_streams = channels, n_streams
        self.hidden = max(int(channels / reduction), min_hidden)       # official: max(int(C/r), 4)
        self.conv_du = nn.Sequential(nn.Conv2d(channels, self.hidden, 1, bias=bias), nn.PReLU())
        self.fcs = nn.ModuleList([nn.Conv2d(self.hidden, channels, 1, bias=bias) for _ in range(n_streams)])
        self.last_descriptor: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

    def forward(self, streams: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_streams(streams, self.n_streams, self.channels, "SKFF")
        feats = torch.stack(list(streams), dim=1)                         # (B, K, C, H, W)
        s = feats.sum(dim=1).mean(dim=(2, 3), keepdim=True)             # fuse: GAP(Σ_k L_k), (B, C, 1, 1)
        z = self.conv_du(s)                                             # (B, d, 1, 1)
        a = torch.softmax(torch.stack([fc(z) for fc in self.fcs], dim=1), dim=1)   # select: (B, K, C, 1, 1)
        self.last_descriptor, self.last_weights = s.detach().flatten(1), a.detach().flatten(2)
        return (feats * a).sum(dim=1)


@FUSION.register("sum")
class SumFusion(nn.Module):
    """The ablation's "sum" aggregation: ``V = Σ_k L_k`` (no parameters, no selection)."""

    def __init__(self, channels: int, n_streams: int = 3):
        super().__init__()
        self.channels, self.n_streams = channels, n_streams

    def forward(self, streams: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_streams(streams, self.n_streams, self.channels, "SumFusion")
        return torch.stack(list(streams), dim=0).sum(dim=0)


@FUSION.register("concat")
class ConcatFusion(nn.Module):
    """The ablation's "concatenation" aggregation: ``V = W [L_1; …; L_K]``, a 1×1 conv K·C → C
    (K·C² weights: 12,288 at C = 64, K = 3)."""

    def __init__(self, channels: int, n_streams: int = 3, bias: bool = False):
        super().__init__()
        self.channels, self.n_streams = channels, n_streams
        self.conv = nn.Conv2d(n_streams * channels, channels, 1, bias=bias)

    def forward(self, streams: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_streams(streams, self.n_streams, self.channels, "ConcatFusion")
        return self.conv(torch.cat(list(streams), dim=1))


def fusion_layer(kind: str, channels: int, n_streams: int = 3, reduction: int = 8, bias: bool = False) -> nn.Module:
    """The fusion of an MRB, by its name in :data:`FUSION`: ``"skff"`` (MIRNet), ``"sum"`` or ``"concat"``
    (the paper's ablation), or any kind registered later. ``reduction`` and ``bias`` go to the kinds
    whose constructor takes them."""
    cls = FUSION.get(kind)
    return cls(channels, n_streams, **FUSION.accepted(kind, reduction=reduction, bias=bias))


class SpatialAttention(nn.Module):
    r"""Spatial attention: one weight per pixel from the channel-wise max and mean.

    .. math::  \mathrm{SA}(M) = M \odot \sigma\big(W_{5×5} * [\max_c M;\ \mathrm{mean}_c M]\big)

    W: 2 → 1 channels, 5×5, no bias, no batch norm, no ReLU (50 weights) [papers.md §3.2; C:
    ``spatial_attn_layer``]. Keeps ``last_map`` (σ(·), B×1×H×W, detached). Notebook: section
    "3. Dual attention: where, and what".
    """

    def __init__(self, kernel_size: int = 5, bias: bool = False):
        super().__init__()
        self.conv = conv(2, 1, kernel_size, bias=bias)
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SpatialAttention expects a (B, C, H, W) map, got {tuple(x.shape)}")
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        m = torch.sigmoid(self.conv(pooled))
        self.last_map = m.detach()
        return x * m


class ChannelAttention(SE):
    r"""MIRNet's channel attention: the package's :class:`~srlearn.nn.attention.SE` with reduction 8
    and, by default, **no biases**.

    .. math::  \mathrm{CA}(M) = M \odot \sigma\big(W_2\,\mathrm{ReLU}(W_1\,\mathrm{GAP}(M))\big),
               \quad W_1: C \to C/8,\ W_2: C/8 \to C

    MIRNet's ``ca_layer`` is RCAN's CA layer (same pooling, same gate) except that the DAU builds it
    with ``bias=False`` [papers.md §3.2; C: ``ca_layer(..., bias=bias)`` in ``DAU``]. So this class
    *is* SE (its forward, ``last_descriptor`` and ``last_weights`` are inherited unchanged) with the two
    bias vectors left out (``SE(..., bias=False)``); ``bias=True`` gives plain SE. Notebook: section
    "3. Dual attention: where, and what".
    """

    def __init__(self, channels: int, reduction: int = 8, bias: bool = False):
        super().__init__(channels, reduction, bias)


class DAU(nn.Module):
    r"""Dual attention unit: spatial and channel attention side by side, merged, plus the input.

    .. math::  M = W_{3×3}\,\phi(W_{3×3}\,x),\qquad
               \mathrm{DAU}(x) = x + W_{1×1}\,[\mathrm{SA}(M);\ \mathrm{CA}(M)]\quad (2C \to C)

    φ = PReLU, no biases [papers.md §3.2; C: ``DAU``]. ``act`` lets a model pass one PReLU shared by
    every DAU: the official code does that by accident (a default argument ``act=nn.PReLU()`` is
    evaluated once), papers.md §3.3 quirk 2; ``None`` gives the unit its own. Notebook: section
    "3. Dual attention: where, and what".
    """

    def __init__(self, channels: int, kernel_size: int = 3, reduction: int = 8, sa_kernel: int = 5,
                 bias: bool = False, act: nn.Module | None = None):
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(conv(channels, channels, kernel_size, bias), act if act is not None else nn.PReLU(),
                                  conv(channels, channels, kernel_size, bias))
        self.sa = SpatialAttention(sa_kernel)              # official: always bias-free
        self.ca = ChannelAttention(channels, reduction, bias)
        self.conv1x1 = nn.Conv2d(2 * channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"DAU expects a (B, {self.channels}, H, W) map, got {tuple(x.shape)}")
        m = self.body(x)
        return x + self.conv1x1(torch.cat([self.sa(m), self.ca(m)], dim=1))


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
