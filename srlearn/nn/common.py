"""Blocks shared by several papers: the convolution they all use, the input mean shift, the residual
block of EDSR/RCAN/SAN backbones, and the sub-pixel up-sampler.

One implementation each: SAN, RCAN, SRDenseNet's matched residual network, MIRNet's sub-pixel head and
SSEN's backbone all import from here.
"""
from __future__ import annotations

import math

import torch
from torch import nn

#: RGB mean of DIV2K's training images, as EDSR/RCAN/SAN/BasicSR subtract it (sr-protocol.md §4).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv3x3(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    """The 'same'-padded 3x3 convolution every network here is built from."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)


def conv(in_ch: int, out_ch: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """A 'same'-padded convolution of odd ``kernel_size`` (EDSR's ``default_conv``)."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Module):
    """Subtract (``sign=-1``) or add back (``sign=+1``) a fixed per-channel mean.

    EDSR/RCAN/SAN do this with a frozen 1x1 convolution; in the official SAN code the freeze is set on
    the module rather than its parameters, so its 24 weights are silently trained (papers.md §0). Here
    the mean is a buffer: it moves with ``.to(device)`` and is saved, but it is never a parameter.
    Inputs are in [0, 1] (``rgb_range=1``); pass ``rgb_range=255`` for [0, 255] images.
    """

    def __init__(self, mean=DIV2K_RGB_MEAN, sign: int = -1, rgb_range: float = 1.0):
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"sign must be -1 (subtract) or +1 (add), got {sign}")
        self.sign = sign
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * rgb_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[-3] != self.mean.shape[1]:   # broadcasting would silently make 3 channels
            raise ValueError(f"MeanShift holds a {self.mean.shape[1]}-channel mean but got input of shape "
                             f"{tuple(x.shape)}: give the network {self.mean.shape[1]}-channel (RGB) images")
        return x + self.sign * self.mean.to(x.dtype)


class ResBlock(nn.Module):
    """EDSR's residual block without batch normalisation: ``x + res_scale * conv(relu(conv(x)))``.

    ``res_scale`` (0.1 in the 256-channel EDSR) keeps very wide residual stacks stable. Batch norm is
    dropped because it normalises away the range information SR must keep (EDSR, Lim et al. 2017).
    """

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 1.0, bias: bool = True):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, kernel_size, bias), nn.ReLU(inplace=True),
                                  conv(channels, channels, kernel_size, bias))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class Upsampler(nn.Sequential):
    """Sub-pixel up-sampling (Shi et al. 2016): conv to ``r^2 * C`` channels, then ``PixelShuffle(r)``.

    Scales that are powers of two are done in ×2 steps (×4 = two ×2 stages); ×3 in one step — the
    EDSR/RCAN/SAN convention. SAN uses this, not bilinear interpolation (papers.md §1.5).
    """

    def __init__(self, scale: int, channels: int, bias: bool = True):
        layers: list[nn.Module] = []
        if scale >= 2 and (scale & (scale - 1)) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(channels, 4 * channels, bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3x3(channels, 9 * channels, bias), nn.PixelShuffle(3)]
        elif scale == 1:
            pass
        else:
            raise ValueError(f"Upsampler supports scales 1, 3 and powers of two, got {scale}")
        super().__init__(*layers)
        self.scale = scale


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
