r"""The Y-channel pipeline: run a luma-only network on RGB images, colour from bicubic.

SRCNN-era networks, SRDenseNet among them (papers.md §2.1), super-resolve only the luma Y of BT.601
YCbCr: the eye is most sensitive to it, the benchmarks score only it, and one channel is a third of
the work. To *show* results in colour (and to go through the package's RGB evaluation), the chroma
Cb, Cr of the LR image is up-sampled with MATLAB bicubic and recombined with the network's Y:

.. math::  (Y, C_b, C_r) = T(\mathrm{RGB}),\qquad
           \widehat{\mathrm{RGB}} = T^{-1}\big(f_\theta(Y),\ \mathrm{bic}_s(C_b),\ \mathrm{bic}_s(C_r)\big)

with ``T`` the studio-swing BT.601 transform of MATLAB ``rgb2ycbcr`` for values in [0, 1] — Y in
[16, 235]/255, Cb/Cr in [16, 240]/255 — whose luma row is exactly ``srlearn.metrics.rgb_to_y``
(tested). ``T^{-1}`` is its exact matrix inverse (not the rounded 1.164/1.596 coefficients).

``YChannelSR`` dispatches on the channel count, so one model serves both halves of training:

* ``(B, 1, H, W)``: a batch of Y planes in [0, 1] → the inner network's Y (training on Y, the paper's
  MSE-on-Y loss: ``srlearn.experiments.srdensenet.YPatches`` makes such items);
* ``(B, 3, H, W)``: RGB in [0, 1] → RGB (validation, evaluation, figures), through the pipeline above.

Why not train on RGB through the pipeline? The RGB loss would also see the *bicubic chroma* error,
which the network cannot change but can partly offset by bending Y (every RGB channel contains Y);
the Y-only loss has no such pull. Derived in notebook 03, section "6. Train".
"""
from __future__ import annotations

import torch
from torch import nn

from ..metrics import BT601, BT601_OFFSET

__all__ = ["RGB_TO_YCBCR", "YCBCR_OFFSET", "rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_luma", "YChannelSR"]

#: MATLAB ``rgb2ycbcr`` for R, G, B in [0, 1], rows Y, Cb, Cr, divided by 255 so outputs are in [0, 1].
RGB_TO_YCBCR = torch.tensor(BT601, dtype=torch.float64) / 255.0
YCBCR_OFFSET = torch.tensor(BT601_OFFSET, dtype=torch.float64) / 255.0
_YCBCR_TO_RGB = torch.linalg.inv(RGB_TO_YCBCR)


def _check_channels(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"{who} takes a float (B, 3, H, W) tensor in [0, 1], got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,bchw->bohw", matrix.to(device=x.device, dtype=x.dtype), x)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1], ``(B, 3, H, W)`` → YCbCr (BT.601 studio swing) in [0, 1], same shape."""
    _check_channels(rgb, "rgb_to_ycbcr")
    return _apply(RGB_TO_YCBCR, rgb) + YCBCR_OFFSET.to(device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """The exact inverse of :func:`rgb_to_ycbcr` (no clamping: out-of-gamut values stay as they are)."""
    _check_channels(ycbcr, "ycbcr_to_rgb")
    return _apply(_YCBCR_TO_RGB, ycbcr - YCBCR_OFFSET.to(device=ycbcr.device, dtype=ycbcr.dtype).view(1, 3, 1, 1))


def rgb_to_luma(rgb: torch.Tensor) -> torch.Tensor:
    """Only the Y row of :func:`rgb_to_ycbcr`: ``(..., 3, H, W)`` RGB in [0, 1] → ``(..., 1, H, W)`` Y in [0, 1]."""
    if not isinstance(rgb, torch.Tensor) or rgb.dim() < 3 or rgb.shape[-3] != 3 or not rgb.is_floating_point():
        raise ValueError(f"rgb_to_luma takes a float (..., 3, H, W) tensor in [0, 1], got "
                         f"{getattr(rgb, 'dtype', type(rgb).__name__)} {tuple(getattr(rgb, 'shape', ()))}")
    w = RGB_TO_YCBCR[0].to(device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
    return (rgb * w).sum(dim=-3, keepdim=True) + float(YCBCR_OFFSET[0])


class YChannelSR(nn.Module):
    """Wrap a 1-channel SR network ``net`` (``net.scale`` required) so it takes and returns RGB.

    1-channel input: Y in, Y out (``net`` itself). 3-channel input: the pipeline of the module docstring.
    The chroma is up-sampled with ``srlearn.data.imresize_torch`` (MATLAB bicubic, float path).
    """

    input_channels = None   # Y alone or RGB: forward checks its own input

    def __init__(self, net: nn.Module):
        super().__init__()
        if not hasattr(net, "scale"):
            raise ValueError("YChannelSR needs the inner network's up-scaling factor as `net.scale`")
        self.net = net
        self.scale = int(net.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"a Y-channel model takes (B, 1, H, W) luma or (B, 3, H, W) RGB in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            return self.net(x)
        from ..data.resize import imresize_torch   # data is a lower floor
        ycc = rgb_to_ycbcr(x)
        y = self.net(ycc[:, :1])
        chroma = imresize_torch(ycc[:, 1:], self.scale)
        return ycbcr_to_rgb(torch.cat([y, chroma.to(y.dtype)], dim=1))
