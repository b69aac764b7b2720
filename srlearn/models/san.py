"""SAN — Second-order Attention Network (Dai, Cai, Zhang, Xia, Zhang, CVPR 2019), as its official code runs it.

    x -> MeanShift(-) -> head conv = F_SF -> RL-NL = F_0
      -> SSRG: F_g = LSRAG_g(F_{g-1}) + γ·F_0, g = 1..G   (one scalar γ shared by all groups, init 0)
      -> RL-NL (the same module, same weights) -> + F_SF
      -> sub-pixel up-sampler -> conv 3x3 -> MeanShift(+)

    LSRAG(u) = u + Conv3x3(attention(RB_m(...RB_1(u))))          attention = SOCA (or SE / none)
    RB(v)    = v + Conv3x3(ReLU(Conv3x3(v)))

[papers.md §1.1–§1.6; C: daitao/SAN ``TrainCode/model/san.py``]. Where sources disagree we follow the
official code, which produced the published numbers:

* the up-sampler is sub-pixel convolution (``common.Upsampler``), not bilinear as some blog reviews
  say (papers.md §1.5);
* the share-source weight W_SSC is one learnable scalar shared by the G groups, initialised to 0
  (papers.md §1.4), and F_0 is the RL-NL output, not the raw shallow features;
* RL-NL sub-samples keys and values with a 2×2 max-pool (``srlearn.nn.non_local``);
* each LSRAG has a 3×3 conv after SOCA (in the code, not drawn in the paper's figure, papers.md §1.1);
* left out because the official forward never uses them: ``SAN.conv_last`` (36,928 parameters), the
  20 per-group ``gamma`` scalars, and the SOCA (reduction 8, 1,096 parameters) that ``Nonlocal_CA``
  creates; the input/output MeanShift is a buffer (the official one trains its 24 weights by accident).

Inputs and outputs are RGB in [0, 1] (``rgb_range=1``). Notebook: ``notebooks/02_san_nonlocal_ssrg.ipynb``,
section "7. SAN end to end".
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn.attention import ATTENTION
from ..nn.common import MeanShift, Upsampler, conv3x3
from ..nn.groups import LSRAG
from ..nn.non_local import RegionNonLocal
from .registry import register

# Parameter counts of the presets, reconciled with papers.md §1.6 (asserted in tests/test_san_rcan.py):
#   official SAN x2 15,712,800 = ours 15,674,732 + 24 (MeanShift weights, a buffer here)
#     + 36,928 (unused SAN.conv_last) + 20 (unused per-group gamma) + 1,096 (unused SOCA inside Nonlocal_CA)
#   papers.md §1.6 lists 36,948 unused parameters; the 1,096 of Nonlocal_CA's SOCA come on top.
PAPER_PARAMS = {2: 15_674_732, 3: 15_859_372, 4: 15_822_444}


class SAN(nn.Module):
    """SAN with ablation switches: ``attention`` (a kind in ``srlearn.nn.ATTENTION``: "none", "se",
    "soca", or one registered later) at each LSRAG's tail,
    ``non_local`` (RL-NL at head and tail) on/off, ``share_source`` (γ·F_0 skips) on/off, ``ns_iters``
    (Newton–Schulz iterations in SOCA), ``subsample_kv`` (RL-NL key/value pooling)."""

    def __init__(self, scale: int = 2, n_resgroups: int = 20, n_resblocks: int = 10, n_feats: int = 64,
                 reduction: int = 16, attention: str = "soca", ns_iters: int = 5, non_local: bool = True,
                 share_source: bool = True, subsample_kv: bool = True, regions: int = 2,
                 in_channels: int = 3, rgb_range: float = 1.0):
        super().__init__()
        attention = ATTENTION.resolve(attention)   # an unknown kind: KeyError listing the registered ones
        self.scale, self.in_channels = int(scale), in_channels
        self.sub_mean = MeanShift(sign=-1, rgb_range=rgb_range)
        self.head = conv3x3(in_channels, n_feats)
        self.non_local = (RegionNonLocal(n_feats, n_feats // 8, regions, subsample_kv) if non_local
                          else nn.Identity())
        self.gamma = nn.Parameter(torch.zeros(1)) if share_source else None
        self.groups = nn.ModuleList([LSRAG(n_feats, n_resblocks, attention, reduction, ns_iters)
                                     for _ in range(n_resgroups)])
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), conv3x3(n_feats, in_channels))
        self.add_mean = MeanShift(sign=+1, rgb_range=rgb_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SAN expects a (B, {self.in_channels}, H, W) image batch in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        shallow = self.head(self.sub_mean(x))                  # F_SF
        f0 = self.non_local(shallow)                           # F_0
        f = f0
        for group in self.groups:                              # SSRG
            f = group(f)
            if self.gamma is not None:
                f = f + self.gamma * f0
        deep = self.non_local(f) + shallow                     # same RL-NL weights, long skip
        return self.add_mean(self.tail(deep))


@register("san", presets={
    "paper": {"scale": 2, "n_resgroups": 20, "n_resblocks": 10, "n_feats": 64, "reduction": 16},
    # papers.md §6.1's "SAN-mini" for the one-GPU replication: official code 1,523,152 params at x2 [R],
    # ours 1,485,100 = that - 24 - 36,928 - 4 (per-group gammas) - 1,096 (as for the paper preset).
    "small": {"scale": 2, "n_resgroups": 4, "n_resblocks": 4, "n_feats": 64, "reduction": 16},
    # A few hundred steps on 48x48 patches in a minute or two on a 2-core CPU.
    "mini": {"scale": 2, "n_resgroups": 2, "n_resblocks": 3, "n_feats": 32, "reduction": 8},
}, description="SAN: second-order channel attention, region non-local, share-source skips",
   params={"paper": PAPER_PARAMS[2], "small": 1_485_100, "mini": 169_368})
def san(**kwargs) -> SAN:
    return SAN(**kwargs)
