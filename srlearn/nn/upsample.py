r"""Up-sampling by transposed convolution ("deconvolution"), SRDenseNet's choice, beside the sub-pixel
``Upsampler`` of ``srlearn.nn.common`` (EDSR, RCAN, SAN).

A transposed convolution of stride ``s`` *stamps* a ``k×k`` kernel, scaled by each input pixel, onto the
output at positions ``s·i - p``, and adds up where stamps overlap:

.. math::  y[c', s\,i + u - p,\; s\,j + v - p] \mathrel{+}= \sum_c x[c, i, j]\, W[c, c', u, v]

Each output pixel therefore receives ``(k/s)²`` kernel taps when ``k`` is a multiple of ``s`` (even
overlap) but, when it is not, a number that alternates between pixels — for ``k = 3, s = 2``: 1, 2 or
4 taps in a 2×2 periodic pattern. That uneven overlap is the origin of the **checkerboard artefacts**
of deconvolution (Odena, Dumoulin & Olah, Distill 2016), shown in notebook 03, section
"5. Deconvolution: in LR space, and its checkerboard".

Which kernel. The SRDenseNet reimplementations disagree (papers.md §2.1): yjn870 uses 3×3 (pad 1,
output-pad 1), Lornatang and twtygqyy 2×2, wxywhu 4×4; the paper's text is recalled as 3×3 [M, not
verified]. We default to **k = s = 2**: no overlap at all (each input pixel owns one disjoint 2×2
output block, so a 2×2 deconvolution *is* a 1×1 conv to 4C maps followed by a pixel shuffle), no
checkerboard from overlap, and the smallest layer; the 4×4 kernel also overlaps evenly but costs 4×
the weights and takes the paper preset out of the 2.0–2.7 M range of the reimplementations.
``kernel_size=3`` reproduces yjn870 exactly (2,659,585 parameters in the paper preset).

Initialisation (``init_deconv_``): Kaiming-normal with the *true* fan-in of a transposed convolution,
``C_in·(k/s)²`` taps per output pixel. ``torch.nn.init.kaiming_normal_`` reads the fan-in from the
weight's shape, which for ``ConvTranspose2d`` is ``(C_in, C_out, k, k)`` and so gives ``C_out·k²`` —
``s²`` times too large (the reimplementations inherit that; it shrinks the signal 2× per ×2 stage).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import _checks

__all__ = ["deconv_padding", "overlap_counts", "DeconvUpsampler", "init_deconv_", "bilinear_subpixel_weight"]


def deconv_padding(kernel_size: int, stride: int) -> tuple[int, int]:
    """``(padding, output_padding)`` that make ``ConvTranspose2d(k, stride=s)`` output exactly ``s·H × s·W``.

    The output size is ``(H-1)·s - 2p + k + op``; setting it to ``s·H`` gives ``k + op - 2p = s`` with
    ``0 <= op < s``: ``p = ceil((k - s)/2)``, ``op = s - k + 2p``. (k=2: 0, 0; k=3: 1, 1; k=4: 1, 0.)
    """
    k, s = _checks.positive_int("kernel_size", kernel_size), _checks.positive_int("stride", stride)
    if k < s:
        raise ValueError(f"kernel_size {k} < stride {s} leaves output pixels that no input pixel reaches "
                         f"(holes): use kernel_size >= stride")
    p = math.ceil((k - s) / 2)
    return p, s - k + 2 * p


def overlap_counts(kernel_size: int, stride: int, size: int = 8) -> torch.Tensor:
    """How many kernel taps land on each output pixel of a stride-``stride`` transposed convolution of a
    ``size×size`` input (the padding of :func:`deconv_padding`): a ``(s·size)×(s·size)`` integer map.

    Computed by running the deconvolution itself on an all-ones input with an all-ones kernel. Interior
    values are ``(k/s)²`` everywhere when ``k % s == 0``; otherwise they alternate (the checkerboard).
    """
    p, op = deconv_padding(kernel_size, stride)
    ones = torch.ones(1, 1, size, size, dtype=torch.float64)
    w = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    out = torch.nn.functional.conv_transpose2d(ones, w, stride=stride, padding=p, output_padding=op)
    return out[0, 0].round().to(torch.int64)


def init_deconv_(module: nn.ConvTranspose2d, nonlinearity: str = "relu") -> nn.ConvTranspose2d:
    """Kaiming-normal init with the true fan-in ``C_in·(k/s)²`` (see the module docstring); zero bias."""
    c_in = module.in_channels // module.groups
    kh, kw = module.kernel_size
    sh, sw = module.stride
    fan_in = c_in * (kh / sh) * (kw / sw)
    std = nn.init.calculate_gain(nonlinearity) / math.sqrt(fan_in)
    with torch.no_grad():
        module.weight.normal_(0.0, std)
        if module.bias is not None:
            module.bias.zero_()
    return module


class DeconvUpsampler(nn.Sequential):
    """Up-sample ``channels`` feature maps by ``scale`` with transposed convolutions, each followed by ReLU.

    Powers of two are done in ×2 stages (×4 = two stride-2 deconvolutions, SRDenseNet's layout); other
    scales in one stage of stride ``scale``. ``kernel_size`` (default: the stride, i.e. no overlap) is the
    kernel of every stage; a kernel that is not a multiple of the stride is allowed — for demonstrating
    the checkerboard — and documented above. ``act=False`` leaves out the ReLUs.
    """

    def __init__(self, scale: int, channels: int, kernel_size: int | None = None, act: bool = True,
                 bias: bool = True):
        scale, channels = _checks.positive_int("scale", scale), _checks.positive_int("channels", channels)
        if scale == 1:
            strides = []
        elif scale & (scale - 1) == 0:
            strides = [2] * int(math.log2(scale))
        else:
            strides = [scale]
        layers: list[nn.Module] = []
        for s in strides:
            k = s if kernel_size is None else _checks.positive_int("kernel_size", kernel_size)
            p, op = deconv_padding(k, s)
            layers.append(nn.ConvTranspose2d(channels, channels, k, stride=s, padding=p, output_padding=op,
                                             bias=bias))
            if act:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.scale, self.channels, self.kernel_size = scale, channels, kernel_size
        for m in self:
            if isinstance(m, nn.ConvTranspose2d):
                init_deconv_(m, "relu" if act else "linear")


def bilinear_subpixel_weight(channels: int, scale: int = 2) -> torch.Tensor:
    r"""The 3×3 conv weight ``(s²C, C, 3, 3)`` that makes a sub-pixel stage *be* bilinear interpolation.

    ``PixelShuffle(s)(conv2d(pad(x, 1, "replicate"), W))`` equals
    ``F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)`` exactly (with the zero
    padding of ``srlearn.nn.Upsampler`` it differs only on the one-pixel LR border). Output phase ``a``
    of an LR pixel ``i`` sits at ``i + d``, ``d = (a + ½)/s − ½ ∈ (−½, ½)``: weights ``1 − |d|`` on ``i``
    and ``|d|`` on the neighbour on ``d``'s side, inside a 3×3 window. So bilinear up-sampling is one
    point in the space a sub-pixel up-sampler learns in (notebook 01, "What the reviews asked").
    """
    channels, scale = _checks.positive_int("channels", channels), _checks.positive_int("scale", scale)
    taps = torch.zeros(scale, 3, dtype=torch.float64)            # per phase: weights on i-1, i, i+1
    for a in range(scale):
        d = (a + 0.5) / scale - 0.5
        taps[a, 1] = 1 - abs(d)
        taps[a, 0 if d < 0 else 2] += abs(d)
    w = torch.zeros(channels * scale * scale, channels, 3, 3, dtype=torch.float64)
    for c in range(channels):
        for a in range(scale):
            for b in range(scale):
                w[c * scale * scale + a * scale + b, c] = torch.outer(taps[a], taps[b])
    return w.float()
