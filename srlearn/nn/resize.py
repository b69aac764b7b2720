"""MIRNet's residual resizing modules and the anti-aliased (blur-then-stride) down-sampling they use.

A stride-2 layer keeps one pixel in four. Whatever the input holds above the new Nyquist frequency
(a quarter of a cycle per input pixel) folds back as false low frequencies: aliasing. The fix of
Zhang ("Making convolutional networks shift-invariant again", ICML 2019) is classical signal
processing: low-pass first, then sub-sample. MIRNet [papers.md §3.2; C: ``utils/antialias.py``, taken
from adobe/antialiased-cnns] builds every ×½ path that way and pairs each resampling with a learned
branch and a cheap one whose sum is the output (a residual pair):

    Down(x) = Conv1×1_{C→2C}(Blur↓(PReLU(Conv3×3(PReLU(Conv1×1(x))))))  +  Conv1×1_{C→2C}(Blur↓(x))
    Up(x)   = Conv1×1_{C→C/2}(PReLU(ConvT3×3↑2(PReLU(Conv1×1(x)))))     +  Conv1×1_{C→C/2}(Bilinear↑2(x))

×4 is two ×2 modules in a row (channels 2C then 4C down, C/2 then C/4 up). Every convolution is
bias-free, as in the official code. Derived in ``notebooks/04_mirnet_skff_dau.ipynb``, sections
"1. Aliasing first" and "2. Residual resizing modules".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["binomial_kernel", "BlurDownsample", "ResidualDownsample", "ResidualUpsample",
           "resize_down", "resize_up"]


def binomial_kernel(size: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""The normalised 2-D binomial low-pass filter ``b bᵀ / (Σb)²`` of side ``size``.

    ``b`` is row ``size − 1`` of Pascal's triangle: [1, 2, 1] for 3 (MIRNet's choice), [1, 3, 3, 1] for
    4, [1, 4, 6, 4, 1] for 5. For 3 the kernel is [[1, 2, 1], [2, 4, 2], [1, 2, 1]] / 16: a discrete
    Gaussian of σ² = ½ whose frequency response ``cos²(πf)`` in each axis is exactly 0 at the Nyquist
    frequency f = ½ cycle/pixel. Returns a (size, size) tensor summing to 1.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer (3 in MIRNet), got {size!r}")
    b = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    k = b[:, None] * b[None, :]
    return (k / k.sum()).to(dtype)


class BlurDownsample(nn.Module):
    r"""Anti-aliased down-sampling: reflect-pad, depthwise binomial blur, keep every ``stride``-th pixel.

    .. math::  y_c = \big(\mathrm{pad}_{\text{reflect}}(x_c) \ast \tfrac{1}{16}
               \begin{bmatrix}1&2&1\\2&4&2\\1&2&1\end{bmatrix}\big)\!\downarrow_{2}

    (``size=3``, ``stride=2``: MIRNet's ``downsamp(channels, filt_size=3, stride=2)`` [papers.md §3.2]).
    Padding is ⌊(size−1)/2⌋ before and ⌈(size−1)/2⌉ after, so an H×W map becomes ⌈H/2⌉×⌈W/2⌉. The kernel
    is a buffer, not a parameter: it is fixed, moves with ``.to()`` and is saved in the state dict.
    Reflect padding needs H, W > the padding (≥ 2 here); a smaller map gets a clear error.
    Notebook: section "1. Aliasing first".
    """

    def __init__(self, channels: int, size: int = 3, stride: int = 2):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        self.channels, self.size, self.stride = channels, size, stride
        self.register_buffer("kernel", binomial_kernel(size)[None, None].repeat(channels, 1, 1, 1))
        self.pad = ((size - 1) // 2, (size - 1) - (size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"BlurDownsample expects a (B, {self.channels}, H, W) map, got {tuple(x.shape)}")
        if min(x.shape[-2:]) <= max(self.pad):
            raise ValueError(f"BlurDownsample needs H and W > {max(self.pad)} for reflect padding, "
                             f"got {tuple(x.shape[-2:])}")
        lo, hi = self.pad
        x = F.pad(x, (lo, hi, lo, hi), mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.stride, groups=self.channels)


class ResidualDownsample(nn.Module):
    r"""×½ resolution, C → 2C channels: a learned branch plus an anti-aliased shortcut.

    .. math::  \mathrm{Down}(x) = W^{top}_{1×1}\,\mathrm{Blur}{\downarrow}\big(\phi(W_{3×3}\,\phi(W_{1×1}x))\big)
               + W^{bot}_{1×1}\,\mathrm{Blur}{\downarrow}(x)

    φ = PReLU (one slope each), no biases [papers.md §3.2; C: ``ResidualDownSample``]. The blur sits
    *after* the 3×3 convolution and *before* the stride, so neither branch sub-samples an un-filtered
    map. Notebook: section "2. Residual resizing modules".
    """

    def __init__(self, channels: int, bias: bool = False):
        super().__init__()
        c = channels
        self.top = nn.Sequential(nn.Conv2d(c, c, 1, bias=bias), nn.PReLU(),
                                 nn.Conv2d(c, c, 3, padding=1, bias=bias), nn.PReLU(),
                                 BlurDownsample(c), nn.Conv2d(c, 2 * c, 1, bias=bias))
        self.bot = nn.Sequential(BlurDownsample(c), nn.Conv2d(c, 2 * c, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class ResidualUpsample(nn.Module):
    r"""×2 resolution, C → C/2 channels: a learned transposed convolution plus a bilinear shortcut.

    .. math::  \mathrm{Up}(x) = W^{top}_{1×1}\,\phi\big(W^{T}_{3×3,\uparrow 2}\,\phi(W_{1×1}x)\big)
               + W^{bot}_{1×1}\,\mathrm{Bilinear}{\uparrow}2(x)

    The transposed convolution has kernel 3, stride 2, padding 1, output padding 1 (exactly 2H×2W);
    bilinear interpolation with ``align_corners=False`` [papers.md §3.2; C: ``ResidualUpSample``].
    Notebook: section "2. Residual resizing modules".
    """

    def __init__(self, channels: int, bias: bool = False):
        super().__init__()
        if channels % 2:
            raise ValueError(f"ResidualUpsample halves the channels: channels must be even, got {channels}")
        c = channels
        self.top = nn.Sequential(nn.Conv2d(c, c, 1, bias=bias), nn.PReLU(),
                                 nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1, bias=bias),
                                 nn.PReLU(), nn.Conv2d(c, c // 2, 1, bias=bias))
        self.bot = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 nn.Conv2d(c, c // 2, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


def _steps(factor: int) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2 or factor & (factor - 1):
        raise ValueError(f"factor must be a power of two >= 2 (2, 4, 8, ...), got {factor!r}")
    return int(math.log2(factor))


def resize_down(channels: int, factor: int, bias: bool = False) -> nn.Sequential:
    """``factor``× down-sampling (a power of two) as log2(factor) :class:`ResidualDownsample` steps;
    channels double at each step (C → factor·C). MIRNet's ``DownSample(C, factor)``."""
    return nn.Sequential(*[ResidualDownsample(channels * 2 ** k, bias) for k in range(_steps(factor))])


def resize_up(channels: int, factor: int, bias: bool = False) -> nn.Sequential:
    """``factor``× up-sampling (a power of two) as log2(factor) :class:`ResidualUpsample` steps;
    channels halve at each step (C → C/factor). MIRNet's ``UpSample(C, factor)``."""
    n = _steps(factor)
    if channels % factor:
        raise ValueError(f"up-sampling {channels} channels by {factor} halves them {n} times: "
                         f"channels must be a multiple of {factor}")
    return nn.Sequential(*[ResidualUpsample(channels // 2 ** k, bias) for k in range(n)])
