r"""SRDenseNet (Tong, Li, Liu, Gao, ICCV 2017): dense blocks, dense skips between them, deconvolution.

    Y -> conv3x3 + ReLU = low-level features F_0                              (128 maps)
      -> dense block b:  F_b = Block_b([F_s]_{s in S_b}),  b = 1..8           (8 layers x growth 16 = 128 maps each)
      -> bottleneck: ReLU(conv1x1([F_s]_{s in S_B}) -> 256)
      -> two stride-2 deconvolutions (256 maps, ReLU each)                    (x4, in LR space until here)
      -> reconstruction conv3x3 -> Y

One implementation, a ``connectivity`` switch choosing the sources ``S_b`` of each block and ``S_B`` of
the bottleneck (the paper's Fig. 2 as papers.md §2.2 reads it; index 0 = F_0, index b = block b):

=========  =====================  =====================  ==================  ==============================
variant    S_b (block b input)     S_B (bottleneck)        bottleneck sees     inside a block
=========  =====================  =====================  ==================  ==============================
``all``    {0, ..., b-1}           {0, ..., 8}             128 + 8·128 = 1152  dense
``hl``     {b-1}                   {0, 8}                  256                 dense
``h``      {b-1}                   {8}                     128                 dense
``plain``  {b-1}                   {8}                     16                  chain (no concatenation)
=========  =====================  =====================  ==================  ==============================

``plain`` removes every skip: each layer sees only the previous layer (same 64 layers, same widths).
All three paper variants keep the 1×1 bottleneck (papers.md §2.2: unclear without the PDF; kept for a
controlled comparison). The tables, ``block_sources`` and ``bottleneck_sources``, drive ``forward`` and
the notebook's wiring diagrams.

No official code exists; four reimplementations disagree (papers.md §2.1). We follow the structure the
three agreeing ones share (yjn870, Lornatang, twtygqyy), with these choices:

* deconvolution kernel 2×2 (Lornatang, twtygqyy), not yjn870's 3×3: even overlap, no checkerboard
  (``srlearn.nn.upsample``); ``deconv_kernel=3`` gives yjn870's network exactly;
* ReLU after the bottleneck (yjn870; Lornatang and twtygqyy have none) — the paper describes every
  convolution as followed by ReLU [M];
* ReLU, not PReLU (twtygqyy switched to PReLU to fix a non-convergence caused by its deconvolution
  init, papers.md §2.5);
* Kaiming-normal init (fan-in, ReLU gain) of every conv, zero biases (yjn870); deconvolutions with
  their true fan-in (``srlearn.nn.upsample.init_deconv_``);
* concatenation order [F_0, F_1, ..., F_{b-1}] (yjn870).

Parameters of the paper preset (Y, ×4), exact (tests/test_srdensenet.py):
``all`` 2,004,225 (= Lornatang's count, papers.md §2.1; 2,659,585 = yjn870's with ``deconv_kernel=3``),
``hl`` 1,258,753, ``h`` 1,225,985, ``plain`` 697,345. The variants differ in size because the bottleneck
and the later blocks see more maps; ``ResidualSR`` (below) is the capacity-matched control.

``ResidualSR`` is the matched residual network for the dense-vs-residual comparison: the same head
and tail (bottleneck, deconvolutions, reconstruction), and in between EDSR's residual blocks
(``srlearn.nn.common.ResBlock``, PyTorch's default init as in EDSR) with a long skip; 20 blocks of 64
channels hold 2,021,505 parameters, +0.86 % of SRDenseNet_All.

Both are Y-channel networks wrapped by ``srlearn.models.ycbcr.YChannelSR`` (``colour="y"``, the
default), so the registered models take and return RGB and train on Y. Notebook:
``notebooks/03_srdensenet_dense_vs_residual.ipynb``, sections 2–7.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from ..nn.common import ResBlock, conv3x3
from ..nn.dense import DenseBlock, concat_sources, mean_abs_by_source
from ..nn.upsample import DeconvUpsampler
from .registry import register
from .ycbcr import YChannelSR

__all__ = ["SRDenseNet", "ResidualSR", "CONNECTIVITIES", "PAPER_PARAMS", "wiring"]

CONNECTIVITIES = ("all", "hl", "h", "plain")

#: Exact parameter counts of ``build("srdensenet", "paper", connectivity=...)`` and of ``residual-sr``.
PAPER_PARAMS = {"all": 2_004_225, "hl": 1_258_753, "h": 1_225_985, "plain": 697_345, "residual": 2_021_505}


def wiring(connectivity: str, n_blocks: int) -> tuple[list[list[int]], list[int]]:
    """``(block_sources, bottleneck_sources)`` of a variant: ``block_sources[b]`` lists the features
    block ``b`` (1-based; entry 0 is ``[]``) concatenates; index 0 is the low-level features."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity!r}")
    if connectivity == "all":
        blocks = [[]] + [list(range(b)) for b in range(1, n_blocks + 1)]
        return blocks, list(range(n_blocks + 1))
    blocks = [[]] + [[b - 1] for b in range(1, n_blocks + 1)]
    return blocks, ([0, n_blocks] if connectivity == "hl" else [n_blocks])


def _kaiming_(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SRDenseNet(nn.Module):
    """SRDenseNet on ``in_channels`` planes (1 = Y). See the module docstring for the variants."""

    def __init__(self, scale: int = 4, connectivity: str = "all", in_channels: int = 1, features: int = 128,
                 n_blocks: int = 8, n_layers: int = 8, growth: int = 16, bottleneck: int = 256,
                 deconv_kernel: int | None = 2, bottleneck_act: bool = True):
        super().__init__()
        self.scale, self.in_channels, self.connectivity = int(scale), in_channels, connectivity
        self.block_sources, self.bottleneck_sources = wiring(connectivity, n_blocks)
        self.head = nn.Sequential(conv3x3(in_channels, features), nn.ReLU(inplace=True))
        widths = [features]
        blocks = []
        for b in range(1, n_blocks + 1):
            block = DenseBlock(sum(widths[s] for s in self.block_sources[b]), growth, n_layers,
                               connectivity="chain" if connectivity == "plain" else "dense")
            blocks.append(block)
            widths.append(block.out_channels)
        self.widths = widths                       # channels of F_0, F_1, ..., F_N
        self.blocks = nn.ModuleList(blocks)
        self.bottleneck = nn.Sequential(nn.Conv2d(sum(widths[s] for s in self.bottleneck_sources), bottleneck, 1),
                                        *([nn.ReLU(inplace=True)] if bottleneck_act else []))
        self.upsample = DeconvUpsampler(self.scale, bottleneck, deconv_kernel)
        self.reconstruction = conv3x3(bottleneck, in_channels)
        _kaiming_(self)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[F_0, F_1, ..., F_N]``: the low-level features and each block's output."""
        _checks.batch(x, self.in_channels, "SRDenseNet")
        feats = [self.head(x)]
        for b, block in enumerate(self.blocks, start=1):
            feats.append(block(concat_sources(feats, self.block_sources[b])))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(concat_sources(self.features(x), self.bottleneck_sources))
        return self.reconstruction(self.upsample(z))

    def feature_reuse(self) -> dict:
        """How strongly each consumer's weights draw on each source (mean |weight|, NaN = not connected).

        ``between``: ``(N+1, N+1)``; rows = the first layer of block 1..N, then the bottleneck; columns =
        F_0, F_1, ..., F_N. ``blocks``: each block's ``DenseBlock.feature_reuse()`` (layer × source).
        """
        n = len(self.blocks)
        between = torch.full((n + 1, n + 1), float("nan"))
        consumers = [(blk.layers[0].conv.weight, self.block_sources[b])
                     for b, blk in enumerate(self.blocks, start=1)]
        consumers.append((self.bottleneck[0].weight, self.bottleneck_sources))
        for row, (weight, srcs) in enumerate(consumers):
            between[row, srcs] = mean_abs_by_source(weight, [self.widths[s] for s in srcs]).float().cpu()
        return {"between": between, "blocks": [blk.feature_reuse() for blk in self.blocks]}


class ResidualSR(nn.Module):
    r"""The residual control: ``head`` conv → ``F + ResBlocks(F)`` (EDSR's long skip) → the SRDenseNet tail
    (1×1 bottleneck + ReLU, deconvolutions, reconstruction). Parameters:
    ``9·c_in·C + C + n·2·(9C² + C) + (C·B + B) + tail``; ``features=64, n_resblocks=20`` matches
    SRDenseNet_All's 2,004,225 within 0.9 %."""

    def __init__(self, scale: int = 4, in_channels: int = 1, features: int = 64, n_resblocks: int = 20,
                 bottleneck: int = 256, deconv_kernel: int | None = 2, res_scale: float = 1.0):
        super().__init__()
        self.scale, self.in_channels = int(scale), in_channels
        self.head = conv3x3(in_channels, features)
        self.body = nn.Sequential(*[ResBlock(features, res_scale=res_scale) for _ in range(n_resblocks)])
        self.bottleneck = nn.Sequential(nn.Conv2d(features, bottleneck, 1), nn.ReLU(inplace=True))
        self.upsample = DeconvUpsampler(self.scale, bottleneck, deconv_kernel)
        self.reconstruction = conv3x3(bottleneck, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _checks.batch(x, self.in_channels, "ResidualSR")
        f = self.head(x)
        return self.reconstruction(self.upsample(self.bottleneck(f + self.body(f))))


def _colour(net: nn.Module, colour: str) -> nn.Module:
    return YChannelSR(net) if colour == "y" else net


def _check_colour(colour: str) -> int:
    if colour not in ("y", "rgb"):
        raise ValueError(f"colour must be 'y' (the paper: a network on the luma, chroma by bicubic) or 'rgb', "
                         f"got {colour!r}")
    return 1 if colour == "y" else 3


_PAPER = {"scale": 4, "features": 128, "n_blocks": 8, "n_layers": 8, "growth": 16, "bottleneck": 256,
          "deconv_kernel": 2}
#: Small enough for five arms to train in well under a minute on a 2-core CPU (quick mode).
_MINI = {"scale": 4, "features": 32, "n_blocks": 4, "n_layers": 4, "growth": 8, "bottleneck": 32,
         "deconv_kernel": 2}


@register("srdensenet", presets={
    "paper": {**_PAPER, "connectivity": "all", "colour": "y"},
    "mini": {**_MINI, "connectivity": "all", "colour": "y"},
}, description="SRDenseNet: dense blocks + dense skips (all | hl | h | plain), deconvolution x4, Y channel",
   params={"paper": PAPER_PARAMS["all"], "mini": 51_009},
   accepts=SRDenseNet, fixed=("in_channels",))
def srdensenet(colour: str = "y", **kwargs) -> nn.Module:
    return _colour(SRDenseNet(in_channels=_check_colour(colour), **kwargs), colour)


@register("residual-sr", presets={
    "paper": {"scale": 4, "features": 64, "n_resblocks": 20, "bottleneck": 256, "deconv_kernel": 2, "colour": "y"},
    "mini": {"scale": 4, "features": 16, "n_resblocks": 9, "bottleneck": 32, "deconv_kernel": 2, "colour": "y"},
}, description="Residual control for SRDenseNet: EDSR blocks + the same deconvolution tail, matched parameters",
   params={"paper": PAPER_PARAMS["residual"], "mini": 51_009},
   accepts=ResidualSR, fixed=("in_channels",))
def residual_sr(colour: str = "y", **kwargs) -> nn.Module:
    return _colour(ResidualSR(in_channels=_check_colour(colour), **kwargs), colour)
