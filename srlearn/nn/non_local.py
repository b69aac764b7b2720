"""Non-local attention (Wang et al. 2018, embedded Gaussian) and SAN's region-level version (RL-NL).

Derived in ``notebooks/02_san_nonlocal_ssrg.ipynb``, sections "1. The non-local block" and "2. Region-level non-local (RL-NL)".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["NonLocalBlock2d", "RegionNonLocal", "region_bounds"]


class NonLocalBlock2d(nn.Module):
    r"""Embedded-Gaussian non-local block, as SAN runs it [papers.md §1.3; C: ``_NonLocalBlockND``].

    .. math::  y_i = \sum_j \operatorname{softmax}_j\big(\theta(x_i)^\top \phi(x_j)\big)\, g(x_j),
               \qquad z = x + W(y)

    θ, φ, g: 1×1 convs C → C' with C' = C/8 (``inter_channels``); W: 1×1 conv C' → C with weight and
    bias **initialised to zero**, so the block starts as the identity; no batch norm (SAN passes
    ``bn_layer=False``); no 1/√C' scaling inside the softmax.

    ``subsample_kv=True`` (default) follows each of φ and g by a 2×2 max-pool, so keys and values are
    4× fewer than queries. SAN's caller asks for ``sub_sample=False``, but in the 2-D branch of the
    official class a local variable named ``sub_sample`` is overwritten by the class ``nn.Upsample``
    (truthy), so the pooling is switched on anyway; the printed module shows ``MaxPool2d(2)`` after
    φ and g (papers.md §1.3 [R]). We default to what the code runs, since that is what produced the
    published numbers; ``subsample_kv=False`` gives the block the paper describes. The pool floors
    odd sizes, so on an odd-sized map the last row/column feed no key or value (only their own queries).

    Cost: the attention matrix is (H·W) × (H·W)/4 per sample — quadratic in the image area; see
    :class:`RegionNonLocal` and ``srlearn bench non-local``.
    """

    def __init__(self, channels: int, inter_channels: int | None = None, subsample_kv: bool = True):
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(1, channels // 8)
        if inter < 1:
            raise ValueError(f"inter_channels must be >= 1, got {inter}")
        self.channels, self.inter_channels, self.subsample_kv = channels, inter, subsample_kv
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.pool = nn.MaxPool2d(2) if subsample_kv else nn.Identity()
        self.W = nn.Conv2d(inter, channels, 1)
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"NonLocalBlock2d expects a (B, {self.channels}, H, W) feature map, "
                             f"got shape {tuple(x.shape)}")
        if self.subsample_kv and min(x.shape[-2:]) < 2:
            raise ValueError(f"a {x.shape[-2]}x{x.shape[-1]} map cannot be 2x2 max-pooled for keys and values: "
                             "give maps (or regions) at least 2 pixels a side, or use subsample_kv=False")

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """softmax_j(θ(x_i)ᵀφ(x_j)): (B, H·W, H·W/4 with sub-sampling) — for notebooks to look at."""
        self._check(x)
        q = self.theta(x).flatten(2).transpose(1, 2)           # (B, N, C')
        k = self.pool(self.phi(x)).flatten(2)                  # (B, C', N')
        return F.softmax(q @ k, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attention_map(x)                           # (B, N, N')
        v = self.pool(self.g(x)).flatten(2).transpose(1, 2)    # (B, N', C')
        y = (attn @ v).transpose(1, 2).reshape(x.shape[0], self.inter_channels, *x.shape[-2:])
        return x + self.W(y)


def region_bounds(n: int, k: int) -> list[int]:
    """Borders of k regions along a side of n pixels: ``[i*n // k for i in 0..k]``.

    For k = 2 this is ``[0, n // 2, n]``, the official ``H1 = int(H/2)`` split: with an odd size the
    first (top/left) region is one pixel shorter, e.g. 5 → 2 + 3 [papers.md §1.3; C: ``Nonlocal_CA``].
    """
    return [i * n // k for i in range(k + 1)]


class RegionNonLocal(nn.Module):
    r"""SAN's region-level non-local module (RL-NL) [papers.md §1.3; C: ``Nonlocal_CA`` in ``san.py``].

    Splits the map into k×k regions (k = 2 in SAN, fixed in its code), applies **one** shared
    :class:`NonLocalBlock2d` to each region independently and writes the results back in place:
    attention never crosses a region border. Memory and time of the attention fall by k² (for k = 2:
    4×) against the global block. Region borders: :func:`region_bounds` (odd sizes: the top/left
    regions are the smaller ones, as in the official code).

    When H and W are multiples of k all regions have one size and are folded into the batch (one
    call); otherwise they are processed one by one. Both give the same result (tested).
    The official ``Nonlocal_CA`` also creates a SOCA (reduction 8, 1,096 parameters) that its forward
    never uses; it is left out here (see ``srlearn.models.san`` for the parameter count).
    """

    def __init__(self, channels: int, inter_channels: int | None = None, regions: int = 2,
                 subsample_kv: bool = True):
        super().__init__()
        if int(regions) != regions or regions < 1:
            raise ValueError(f"regions must be a positive integer (SAN uses 2), got {regions!r}")
        self.regions = int(regions)
        self.block = NonLocalBlock2d(channels, inter_channels, subsample_kv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.regions
        if x.dim() != 4:
            raise ValueError(f"RegionNonLocal expects (B, C, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        least = 2 if self.block.subsample_kv else 1
        if h // k < least or w // k < least:
            raise ValueError(f"a {h}x{w} map splits into {k}x{k} regions smaller than {least}x{least} pixels: "
                             f"give maps of at least {k * least}x{k * least} (or fewer regions / subsample_kv=False)")
        if h % k == 0 and w % k == 0:
            folded = rearrange(x, "b c (kh h) (kw w) -> (b kh kw) c h w", kh=k, kw=k)
            return rearrange(self.block(folded), "(b kh kw) c h w -> b c (kh h) (kw w)", kh=k, kw=k)
        rows, cols = region_bounds(h, k), region_bounds(w, k)
        return torch.cat([torch.cat([self.block(x[..., r0:r1, c0:c1]) for c0, c1 in zip(cols, cols[1:])], dim=-1)
                          for r0, r1 in zip(rows, rows[1:])], dim=-2)
