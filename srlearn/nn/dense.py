r"""Dense connections (concatenation) beside residual connections (addition).

Two ways to let a layer see what came before it:

* residual (EDSR, ``srlearn.nn.common.ResBlock``, re-exported here):   :math:`x_{out} = x + F(x)`
  — the block's output has as many channels as its input; the old features and the new ones are
  *summed* into the same channels, so a later layer can no longer tell them apart;
* dense (DenseNet, Huang et al. 2017; SRDenseNet, Tong et al. 2017):   :math:`x_l = H_l([x_1, \dots, x_{l-1}])`
  — every layer's output is *kept* and concatenated along the channel axis; each later layer
  receives all of them and its weights choose how much of each to use. A block of ``L`` layers of
  growth rate ``k`` emits ``L·k`` new channels.

Addition is the special case of concatenation followed by a 1×1 conv with weights ``[I, I]``
(derived in ``notebooks/03_srdensenet_dense_vs_residual.ipynb``, section "1. Addition vs concatenation").

Which layer sees what is one table, ``DenseBlock.sources``, used by ``forward`` and by the notebook's
drawings and feature-reuse heatmaps (so the pictures cannot drift from the code). Index 0 is the
block's input, index ``l`` is layer ``l``'s output.

SRDenseNet's block (papers.md §2.1, agreed by the yjn870, Lornatang and twtygqyy reimplementations):
the block's input feeds only the first layer; layer ``l >= 2`` sees ``[x_1, ..., x_{l-1}]``; the block
emits ``[x_1, ..., x_L]`` (8 × 16 = 128 maps). The original DenseNet (and wxywhu's reimplementation)
also passes the block input to every layer and to the output: ``keep_input=True``. We default to the
SRDenseNet reading because it is what the three agreeing reimplementations do, and because the
inter-block connections of SRDenseNet_All already carry each block's input forward (papers.md §2.2).
"""
from __future__ import annotations

import torch
from torch import nn

from .common import ResBlock, conv3x3

__all__ = ["DenseLayer", "DenseBlock", "ResBlock", "concat_sources", "mean_abs_by_source"]


def concat_sources(features: list[torch.Tensor], sources: list[int]) -> torch.Tensor:
    """``torch.cat([features[i] for i in sources], dim=1)`` (no copy when there is a single source)."""
    if len(sources) == 1:
        return features[sources[0]]
    return torch.cat([features[i] for i in sources], dim=1)


def mean_abs_by_source(weight: torch.Tensor, widths: list[int]) -> torch.Tensor:
    """Mean absolute weight of a conv over each group of its input channels (groups of ``widths``, in
    order): how strongly the layer draws on each source it concatenates — the DenseNet paper's
    feature-reuse measure (Huang et al. 2017, Fig. 5: average L1 norm of the weights from source s to
    layer l, normalised by the number of weights)."""
    if sum(widths) != weight.shape[1]:
        raise ValueError(f"source widths {widths} sum to {sum(widths)}, but the weight has {weight.shape[1]} "
                         f"input channels")
    return torch.stack([w.abs().mean() for w in weight.detach().split(list(widths), dim=1)])


class DenseLayer(nn.Module):
    r"""One layer of a dense block: :math:`H_l(z) = \mathrm{ReLU}(\mathrm{Conv}_{3\times3}(z))`, ``in → growth`` maps.

    It returns only its *new* maps; the block does the concatenating (so the block can list, for the
    feature-reuse heatmap, which input channels came from which earlier layer). No batch norm: SR
    networks drop it (EDSR; notebook 03, section "3. Why no batch normalisation").
    """

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.conv = conv3x3(in_channels, growth)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DenseBlock(nn.Module):
    r"""``n_layers`` dense layers of growth rate ``growth``: :math:`x_l = H_l([x_s]_{s \in S_l})`, output
    :math:`[x_s]_{s \in S_{out}}` (channel concatenation).

    ``connectivity``:

    * ``"dense"`` (SRDenseNet, default): :math:`S_1 = \{0\}`, :math:`S_l = \{1..l-1\}`,
      :math:`S_{out} = \{1..L\}` → ``L·k`` output maps;
    * ``"dense"`` with ``keep_input=True`` (DenseNet, wxywhu): :math:`S_l = \{0..l-1\}`,
      :math:`S_{out} = \{0..L\}` → ``C_in + L·k`` maps;
    * ``"chain"`` (the *plain* ablation, no skip at all): :math:`S_l = \{l-1\}`, :math:`S_{out} = \{L\}`
      → ``k`` maps. Same layers, same widths, only the concatenations removed.

    Attributes: ``sources[l]`` (the list :math:`S_l`, ``l = 1..L``; ``sources[0]`` is ``[]``),
    ``out_sources``, ``widths`` (channels of feature ``s``: ``widths[0] = in_channels``, then ``growth``),
    ``layer_in_channels``, ``out_channels``.
    Derived in notebook 03, section "2. A dense block, layer by layer".
    """

    CONNECTIVITIES = ("dense", "chain")

    def __init__(self, in_channels: int, growth: int = 16, n_layers: int = 8, keep_input: bool = False,
                 connectivity: str = "dense"):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("growth", growth), ("n_layers", n_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if connectivity not in self.CONNECTIVITIES:
            raise ValueError(f"connectivity must be one of {self.CONNECTIVITIES}, got {connectivity!r}")
        if connectivity == "chain" and keep_input:
            raise ValueError("keep_input=True is a dense connection; the 'chain' block has none")
        L = n_layers
        if connectivity == "chain":
            self.sources = [[]] + [[l - 1] for l in range(1, L + 1)]
            self.out_sources = [L]
        elif keep_input:
            self.sources = [[]] + [list(range(0, l)) for l in range(1, L + 1)]
            self.out_sources = list(range(0, L + 1))
        else:
            self.sources = [[]] + [[0]] + [list(range(1, l)) for l in range(2, L + 1)]
            self.out_sources = list(range(1, L + 1))
        self.widths = [in_channels] + [growth] * L
        self.layer_in_channels = [sum(self.widths[s] for s in self.sources[l]) for l in range(1, L + 1)]
        self.out_channels = sum(self.widths[s] for s in self.out_sources)
        self.in_channels, self.growth, self.connectivity, self.keep_input = in_channels, growth, connectivity, keep_input
        self.layers = nn.ModuleList([DenseLayer(c, growth) for c in self.layer_in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DenseBlock expects a (B, {self.in_channels}, H, W) feature map, got shape "
                             f"{tuple(x.shape)}")
        feats = [x]
        for l, layer in enumerate(self.layers, start=1):
            feats.append(layer(concat_sources(feats, self.sources[l])))
        return concat_sources(feats, self.out_sources)

    def feature_reuse(self) -> torch.Tensor:
        """``(L, L+1)`` matrix: entry ``[l-1, s]`` = mean |weight| of layer ``l`` on source ``s`` (0 = the
        block input); NaN where layer ``l`` does not see source ``s``. Notebook 03, section "7. Look inside"."""
        L = len(self.layers)
        out = torch.full((L, L + 1), float("nan"))
        for l, layer in enumerate(self.layers, start=1):
            srcs = self.sources[l]
            out[l - 1, srcs] = mean_abs_by_source(layer.conv.weight, [self.widths[s] for s in srcs]).float().cpu()
        return out

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, growth={self.growth}, layers={len(self.layers)}, "
                f"connectivity={self.connectivity!r}, keep_input={self.keep_input}, out={self.out_channels}")
