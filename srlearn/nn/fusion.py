"""Fusing parallel streams, MIRNet's way and its ablation's (Zamir et al., ECCV 2020).

* :class:`SKFF` — selective kernel feature fusion: *fuse* the K streams into one channel descriptor,
  then *select* how much of each stream every channel takes (softmax across streams).
  :class:`SumFusion` and :class:`ConcatFusion` are the two baselines of the paper's ablation.
* :data:`FUSION` — the registry of fusion kinds that MIRNet's multi-scale residual block
  (:class:`srlearn.nn.groups.MRB`) builds from. The dual attention unit is in ``srlearn.nn.attention``
  beside the other attention layers.

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

__all__ = ["SKFF", "SumFusion", "ConcatFusion", "FUSION", "fusion_layer"]

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
