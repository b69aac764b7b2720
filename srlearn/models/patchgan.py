"""A PatchGAN discriminator and the adversarial loss, for SSEN's perceptual fine-tuning.

SSEN's adversarial version fine-tunes the reconstruction model with a PatchGAN critic added to the
reconstruction loss (papers.md §4.2 [M]; the paper's depth and loss weights are [X], §4.4). We follow
pix2pix's 70×70 PatchGAN (Isola et al. 2017), the usual meaning of the name: it classifies every
overlapping 70×70 patch as real or fake, so it judges texture, not global layout. Used in
``notebooks/05_ssen_deformable_offsets.ipynb``, section 11 (full mode), through
``srlearn.experiments.ssen.gan_finetune``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchDiscriminator", "adversarial_loss", "receptive_field"]

NORMS = ("batch", "instance", "none")


def _layer_specs(n_layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of each convolution: n_layers stride-2 ones, then two stride-1 ones."""
    return [(4, 2)] * n_layers + [(4, 1), (4, 1)]


def receptive_field(n_layers: int = 3) -> int:
    """Side of the input patch one output logit sees: r ← r·s + (k − s), from the output back. 70 for 3 layers."""
    r = 1
    for k, s in reversed(_layer_specs(n_layers)):
        r = r * s + (k - s)
    return r


class PatchDiscriminator(nn.Module):
    r"""pix2pix's PatchGAN: ``C64 - C128 - C256 - C512(stride 1) - conv to 1`` for ``n_layers=3``.

    .. math::  D(x)_{ij} = \text{logit that the } 70\times70 \text{ patch of } x
               \text{ under output } (i, j) \text{ is real}

    4×4 convolutions, LeakyReLU 0.2, a normalisation after every conv but the first and the last
    (``"batch"`` as pix2pix, ``"instance"``, or ``"none"``; a conv followed by batch norm has no bias),
    widths doubling up to 8 × ``base``. Output: a map of logits, ``(B, 1, ~H/8, ~W/8)``; use
    :func:`adversarial_loss` on it. ``receptive_field(n_layers)`` gives the patch size.
    """

    def __init__(self, in_channels: int = 3, base: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        make_norm = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "none": None}[norm]
        bias = make_norm is not nn.BatchNorm2d
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = base
        for n in range(1, n_layers + 1):
            out = base * min(2 ** n, 8)
            layers.append(nn.Conv2d(width, out, 4, 2 if n < n_layers else 1, 1, bias=bias))
            if make_norm is not None:
                layers.append(make_norm(out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"the discriminator takes (B, C, H, W) images, got {tuple(x.shape)}")
        return self.net(x)


def adversarial_loss(logits: torch.Tensor, real: bool, kind: str = "vanilla") -> torch.Tensor:
    r"""GAN loss of a map of logits against the label ``real`` (True: real, False: fake).

    * ``"vanilla"`` (pix2pix, the original GAN): binary cross-entropy with logits,
      :math:`-\log\sigma(D)` for real and :math:`-\log(1-\sigma(D))` for fake, mean over patches;
    * ``"lsgan"``: :math:`(D - 1)^2` for real and :math:`D^2` for fake (least squares).

    The generator's loss is ``adversarial_loss(D(G(x)), real=True)`` (the non-saturating form).
    """
    if kind == "vanilla":
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return ((logits - 1) ** 2).mean() if real else (logits ** 2).mean()
    raise ValueError(f"kind must be 'vanilla' or 'lsgan', got {kind!r}")
