r"""``srlearn bench upsampling``: deconvolve at the end (LR space) vs interpolate first (HR space).

SRDenseNet's argument for deconvolution layers (after FSRCNN): SRCNN and VDSR first enlarge the image
by bicubic interpolation and run every convolution on the ``r·H × r·W`` grid; a network that works on
the ``H × W`` LR grid and up-samples only at the end does the same convolutions on ``r²`` times fewer
pixels, so it saves about a factor ``r²`` of work — "about", because the up-sampling layers and the
reconstruction run at (partly) HR size anyway.

Two networks with the same convolutions (head 3×3 1→C, ``depth`` 3×3 C→C + ReLU, reconstruction 3×3
C→1) are compared on a 1-channel ``size × size`` LR input:

* ``lr-space``: head and body on the LR grid → ``DeconvUpsampler`` (stride-2 2×2 deconvolutions, or
  one stride-r stage for r = 3) → reconstruction at HR;
* ``hr-space``: bicubic ``F.interpolate`` to HR → head, body and reconstruction on the HR grid.

``gflop`` is *counted* by ``torch.utils.flop_counter.FlopCounterMode`` on a forward pass (2 FLOPs per
multiply-add of every convolution and transposed convolution; the bicubic interpolation is not counted:
16 multiply-adds per HR pixel, < 0.1 % here). ``ms`` is measured (median, ``time_call``) — on the CPU, or on
a GPU with ``--device cuda``. ``flop_ratio = hr-space / lr-space`` sits beside ``r²``. Measured, never
asserted: the tests check only the counting (against the closed form) and the direction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..nn.common import conv3x3
from ..nn.upsample import DeconvUpsampler
from . import register_bench, time_call


def _body(channels: int, depth: int) -> list[nn.Module]:
    layers: list[nn.Module] = [conv3x3(1, channels), nn.ReLU(inplace=True)]
    for _ in range(depth):
        layers += [conv3x3(channels, channels), nn.ReLU(inplace=True)]
    return layers


class LRSpaceNet(nn.Sequential):
    """Convolutions on the LR grid, deconvolution up-sampling at the end (FSRCNN / SRDenseNet layout)."""

    def __init__(self, scale: int, channels: int = 64, depth: int = 8, deconv_kernel: int | None = None):
        super().__init__(*_body(channels, depth), DeconvUpsampler(scale, channels, deconv_kernel),
                         conv3x3(channels, 1))
        self.scale = scale


class HRSpaceNet(nn.Module):
    """Bicubic interpolation first, every convolution on the HR grid (SRCNN / VDSR layout)."""

    def __init__(self, scale: int, channels: int = 64, depth: int = 8):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(*_body(channels, depth), conv3x3(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False))


def counted_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``x``, counted by ``FlopCounterMode`` (no grad)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def closed_form_flops(kind: str, scale: int, size: int, channels: int, depth: int,
                      deconv_kernel: int | None = None) -> int:
    """The same count on paper: ``2·C_in·C_out·k²·H_out·W_out`` per conv, ``2·C_in·C_out·k²·H_in·W_in`` per
    transposed conv (every input pixel stamps a k×k kernel)."""
    if kind not in ("lr-space", "hr-space"):
        raise ValueError(f"kind must be 'lr-space' or 'hr-space', got {kind!r}")
    c, hr = channels, size * scale
    def body(n):   # the head (1 -> C) and the depth C -> C convolutions on an n x n grid
        return 2 * 9 * (1 * c + depth * c * c) * n * n
    recon = 2 * 9 * c * 1 * hr * hr
    if kind == "hr-space":
        return body(hr) + recon
    strides = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
    up, n = 0, size
    for s in strides:
        k = s if deconv_kernel is None else deconv_kernel
        up += 2 * c * c * k * k * n * n
        n *= s
    return body(size) + up + recon


@register_bench("upsampling")
def bench_upsampling(device: str | torch.device = "cpu", scales=(2, 3, 4, 8), size: int = 48, channels: int = 64,
                     depth: int = 8, quick: bool = False, repeat: int = 5) -> list[dict]:
    """Counted GFLOP and measured forward time of ``lr-space`` vs ``hr-space`` for each scale."""
    dev = torch.device(device)
    if quick:
        scales, size, channels, depth, repeat = tuple(s for s in scales if s in (2, 4)), 24, 32, 4, 3
    rows = []
    torch.manual_seed(0)
    x = torch.rand(1, 1, size, size, device=dev)
    for r in scales:
        nets = {"lr-space": LRSpaceNet(r, channels, depth), "hr-space": HRSpaceNet(r, channels, depth)}
        flops, ms = {}, {}
        for kind, net in nets.items():
            net = net.to(dev).eval()
            flops[kind] = counted_flops(net, x)
            with torch.no_grad():
                ms[kind] = time_call(lambda: net(x), dev, repeat=repeat, warmup=1)
        for kind in nets:
            rows.append({"scale": r, "layout": kind, "input": f"1x{size}x{size}", "output": f"{size * r}x{size * r}",
                         "device": dev.type, "gflop": flops[kind] / 1e9, "ms": ms[kind],
                         "flop_ratio": flops["hr-space"] / flops["lr-space"] if kind == "hr-space" else None,
                         "time_ratio": ms["hr-space"] / ms["lr-space"] if kind == "hr-space" else None,
                         "r2": r * r if kind == "hr-space" else None})
    return rows
