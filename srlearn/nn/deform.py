"""Deformable convolution, modulated (DCNv2, Zhu et al. CVPR 2019), in pure PyTorch.

Derived step by step in ``notebooks/05_ssen_deformable_offsets.ipynb``: bilinear sampling (section 2),
one deformable convolution from scratch (section 3), modulation (section 4), equality with this module
(section 5).

- :func:`deform_conv2d`: the operator, with ``torchvision.ops.deform_conv2d``'s signature and semantics,
  running on any device PyTorch runs on (no compiled extension). ``backend="torchvision"`` dispatches to
  torchvision's kernel where it can be imported; the pure path is the default and the reference.
- :func:`sampling_positions`: where every kernel tap of every output pixel reads the input.
- :class:`ModulatedDeformConv2d`: the layer; its offset/mask head (:class:`OffsetMaskHead`) starts at zero.

Compatibility with torchvision/mmcv/BasicSR is exact where they agree (sr-protocol.md §5.2); where the
"pack" layers differ among themselves we say which one we follow, in :class:`ModulatedDeformConv2d`.
"""
from __future__ import annotations

import contextlib
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["deform_conv2d", "sampling_positions", "ModulatedDeformConv2d", "OffsetMaskHead", "BACKENDS"]

BACKENDS = ("pure", "torchvision")


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(value[0]), int(value[1])


def _output_size(h, w, kh, kw, stride, padding, dilation) -> tuple[int, int]:
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return ho, wo


def _check(input, offset, weight, bias, mask, stride, padding, dilation):
    """Validate shapes as torchvision does (groups and offset groups are inferred); return the geometry."""
    for name, t in (("input", input), ("offset", offset), ("weight", weight)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"stride and dilation must be >= 1 and padding >= 0, got stride={stride}, "
                         f"padding={padding}, dilation={dilation}")
    b, c, h, w = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c_per_group < 1 or c % c_per_group:
        raise ValueError(f"weight {tuple(weight.shape)} expects input channels in groups of {c_per_group}, "
                         f"but the input has {c} channels")
    groups = c // c_per_group
    if c_out % groups:
        raise ValueError(f"{c_out} output channels cannot be split into the {groups} weight groups "
                         f"implied by input {c} / weight.shape[1] {c_per_group}")
    k = kh * kw
    ho, wo = _output_size(h, w, kh, kw, stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"a {h}x{w} input is too small for a {kh}x{kw} kernel with padding {padding} and "
                         f"dilation {dilation}")
    if offset.shape[1] % (2 * k) or offset.shape[1] == 0:
        raise ValueError(f"offset must have 2 * offset_groups * {kh}*{kw} channels (interleaved (dy, dx) per "
                         f"tap), got {offset.shape[1]}")
    g = offset.shape[1] // (2 * k)
    if c % g:
        raise ValueError(f"{c} input channels cannot be split into the {g} offset groups implied by "
                         f"offset's {offset.shape[1]} channels")
    if tuple(offset.shape) != (b, 2 * g * k, ho, wo):
        raise ValueError(f"offset must be (B={b}, {2 * g * k}, H_out={ho}, W_out={wo}) for this input, kernel, "
                         f"stride, padding and dilation; got {tuple(offset.shape)}")
    if mask is not None and (not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (b, g * k, ho, wo)):
        raise ValueError(f"mask must be (B={b}, offset_groups*{kh}*{kw}={g * k}, {ho}, {wo}) or None, got "
                         f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (c_out,)):
        raise ValueError(f"bias must be a ({c_out},) tensor or None, got "
                         f"{tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__}")
    return stride, padding, dilation, groups, g


def sampling_positions(offset: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1) -> torch.Tensor:
    r"""Absolute input coordinates read by each tap: ``(B, G, KH*KW, H_out, W_out, 2)`` as ``(y, x)``.

    .. math::  y = o_y s_h - p_h + i\,d_h + \Delta y_k, \qquad x = o_x s_w - p_w + j\,d_w + \Delta x_k,
               \qquad k = i \cdot KW + j

    with offset channel ``g*2K + 2k`` holding Δy and ``g*2K + 2k + 1`` holding Δx: interleaved
    (dy, dx) pairs, y first, tap-major within each offset group (torchvision's layout,
    sr-protocol.md §5.2). Notebook 05, section 3 draws these points over an image.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    b, ch, ho, wo = offset.shape
    k = kh * kw
    g = ch // (2 * k)
    dev, dt = offset.device, offset.dtype
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dh).repeat_interleave(kw)       # i*d_h for k = i*KW + j
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dw).repeat(kh)                  # j*d_w
    base_y = torch.arange(ho, device=dev, dtype=dt) * sh - ph
    base_x = torch.arange(wo, device=dev, dtype=dt) * sw - pw
    off = offset.reshape(b, g, k, 2, ho, wo)
    y = base_y.view(1, 1, 1, ho, 1) + tap_y.view(1, 1, k, 1, 1) + off[:, :, :, 0]
    x = base_x.view(1, 1, 1, 1, wo) + tap_x.view(1, 1, k, 1, 1) + off[:, :, :, 1]
    return torch.stack((y, x), dim=-1)


def _deform_conv2d_pure(x, offset, weight, bias, stride, padding, dilation, mask, groups, g):
    b, c, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    k = kh * kw
    ho, wo = offset.shape[-2:]
    pos = sampling_positions(offset, (kh, kw), stride, padding, dilation)        # (B, G, K, Ho, Wo, 2)
    # Anything at y <= -1, y >= H, x <= -1 or x >= W reads zero (all four neighbours are outside), and so
    # has zero gradient; clamping to [-2, H + 1] keeps that and keeps huge offsets finite in grid_sample.
    y = pos[..., 0].clamp(-2.0, h + 1.0)
    xx = pos[..., 1].clamp(-2.0, w + 1.0)
    # grid_sample's align_corners=False maps pixel centre i to (2i + 1)/n - 1; the grid's last dim is (x, y).
    grid = torch.stack(((2 * xx + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1).reshape(b * g, k * ho, wo, 2)
    cols = F.grid_sample(x.reshape(b * g, c // g, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)                                      # (B*G, C/G, K*Ho, Wo)
    cols = cols.reshape(b, g, c // g, k, ho, wo)
    if mask is not None:
        cols = cols * mask.reshape(b, g, 1, k, ho, wo)                             # m_k scales the sample
    # channel c is in offset group c // (C/G) and weight group c // Cg; column index c'·K + k in both operands
    cols = cols.reshape(b, groups, cg * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, c_out // groups, cg * k), cols)     # (B, groups, C_out/groups, N)
    out = out.reshape(b, c_out, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)                                         # the bias is not modulated
    return out


def _no_autocast(device_type: str):
    try:
        return torch.autocast(device_type, enabled=False)
    except (RuntimeError, ValueError):            # a device type autocast does not know
        return contextlib.nullcontext()


def deform_conv2d(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, mask: torch.Tensor | None = None, *,
                  backend: str = "pure") -> torch.Tensor:
    r"""Deformable convolution v2 (v1 when ``mask is None``), torchvision's signature and semantics.

    .. math::  y(p) = b + \sum_{k=1}^{K} w_k \cdot x(p_0 + p_k + \Delta p_k(p)) \cdot m_k(p)

    ``x(·)`` is bilinear interpolation of the input with zeros outside the image: a sample at
    ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` is exactly zero, and inside that band each of the
    four neighbours that falls outside counts as zero (torchvision's CPU/CUDA kernels, mmcv and BasicSR
    all do this, sr-protocol.md §5.2). Shapes, all inferred as in torchvision:

    * input ``(B, C_in, H, W)``; weight ``(C_out, C_in / groups, KH, KW)`` (``groups`` is inferred);
    * offset ``(B, 2 * G * KH * KW, H_out, W_out)``: for offset group ``g`` and tap ``k = i*KW + j``,
      channel ``g*2K + 2k`` is Δy (rows) and ``g*2K + 2k + 1`` is Δx (columns); input channel ``c``
      belongs to offset group ``c // (C_in / G)``;
    * mask ``(B, G * KH * KW, H_out, W_out)`` or None, channel ``g*K + k``; it multiplies the sample,
      not the bias.

    ``backend="pure"`` (default): sampling with ``F.grid_sample`` (coordinates mapped for
    ``align_corners=False``: ``(2x + 1)/W - 1``) then one batched matrix product with the weight — im2col memory
    ``B·C_in·K·H_out·W_out``, like torchvision's kernel. Under autocast, and for float16/bfloat16 inputs,
    it computes in float32 and returns the input's dtype, as torchvision's autocast wrapper does: a
    bfloat16 coordinate near 100 would be off by up to 0.25 px. ``backend="torchvision"`` calls
    ``torchvision.ops.deform_conv2d`` (raises if torchvision cannot be imported).

    Bilinear sampling is not differentiable where a coordinate is an integer (a kink); there the
    gradient with respect to the offset is the one-sided one of the floor cell, as in torchvision.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    stride, padding, dilation, groups, g = _check(input, offset, weight, bias, mask, stride, padding, dilation)
    if backend == "torchvision":
        try:
            from torchvision.ops import deform_conv2d as tv_deform_conv2d
        except Exception as e:   # a broken torchvision raises RuntimeError/OSError at import, not only ImportError
            raise RuntimeError(f"backend='torchvision' asked for, but torchvision cannot be imported "
                               f"({type(e).__name__}: {e}); use backend='pure' (the default)") from None
        return tv_deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)
    dtype = input.dtype
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    cast = lambda t: None if t is None else t.to(compute)
    with _no_autocast(input.device.type):
        out = _deform_conv2d_pure(cast(input), cast(offset), cast(weight), cast(bias), stride, padding,
                                  dilation, cast(mask), groups, g)
    return out.to(dtype)


class OffsetMaskHead(nn.Module):
    r"""Predicts the offsets and masks of a deformable layer from a feature map (the "pack" head).

    .. math::  [o, \mu] = \lambda \cdot \mathrm{conv}(f), \qquad \Delta p = \beta \tanh(o / \beta)
               \;(\text{or } o \text{ unbounded}), \qquad m = \sigma(\mu)

    One convolution (same kernel, stride, padding and dilation as the deformable layer, so its output
    has the layer's output size) to ``3 G K`` channels (``2 G K`` without modulation), weights and bias
    **zero**: at initialisation Δp = 0 and m = σ(0) = 0.5 (mmcv/BasicSR, sr-protocol.md §5.3). The first
    ``2GK`` channels are the offsets, read in torchvision's interleaved (dy, dx) layout — the same
    channels mmcv calls ``cat(o1, o2)``, which are *not* "all dy, then all dx".

    ``lr_mul`` (λ) multiplies the raw output: under Adam, whose step size does not depend on the
    gradient's scale, this scales the head's effective learning rate by λ (EDVR trains its offset convs at
    a lower lr for stability; sr-protocol.md §5.4). ``max_offset`` (β) bounds the offsets softly;
    BasicVSR++ uses ``β·tanh(o)``, we use ``β·tanh(o/β)`` so that a bounded head equals an unbounded
    one for small offsets (slope 1 at 0) and the bound only changes large ones.
    Returns ``(offset, mask)``, ``mask`` None without modulation.
    """

    def __init__(self, in_channels: int, offset_groups: int, kernel_size, stride=1, padding=0, dilation=1,
                 modulated: bool = True, max_offset: float | None = None, lr_mul: float = 1.0):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        if max_offset is not None and not max_offset > 0:
            raise ValueError(f"max_offset must be > 0 (or None: unbounded), got {max_offset!r}")
        if not lr_mul > 0:
            raise ValueError(f"lr_mul must be > 0, got {lr_mul!r}")
        self.k, self.groups, self.modulated = kh * kw, int(offset_groups), bool(modulated)
        self.max_offset, self.lr_mul = max_offset, float(lr_mul)
        self.conv = nn.Conv2d(in_channels, (3 if modulated else 2) * self.groups * self.k, (kh, kw),
                              stride=stride, padding=padding, dilation=dilation)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, feat: torch.Tensor):
        raw = self.conv(feat) * self.lr_mul
        n = 2 * self.groups * self.k
        offset = raw[:, :n]
        if self.max_offset is not None:
            offset = self.max_offset * torch.tanh(offset / self.max_offset)
        mask = torch.sigmoid(raw[:, n:]) if self.modulated else None
        return offset, mask


class ModulatedDeformConv2d(nn.Module):
    r"""A modulated deformable convolution layer whose offsets and masks come from a feature map.

    .. math::  (\Delta p, m) = \mathrm{head}(f), \qquad y = \mathrm{DCN}(x;\, \Delta p, m)

    ``forward(x, feat=None)``: ``feat`` is what the head looks at — ``x`` itself when None (mmcv's
    ``ModulatedDeformConv2dPack``), or another map (BasicSR's ``DCNv2Pack(x, feat)``; in SSEN the output
    of the dynamic offset estimator, whose channels are ``offset_in_channels``). A freshly built layer
    returns ``0.5 · conv2d(x, W) + b``: the mask scales the samples, not the bias (sr-protocol.md §8 item 23).
    ``modulated=False`` drops the mask (DCNv1, as mmcv's ``DeformConv2d``). The weight is initialised as
    ``nn.Conv2d``'s (kaiming-uniform, a = √5), as torchvision's ``DeformConv2d``.

    Training deformable layers is known to be unstable (EDVR issues, sr-protocol.md §5.4): the head starts
    at zero, ``max_offset`` bounds the offsets, ``offset_lr_mul`` slows the head, and a ``RuntimeWarning``
    is raised when the mean absolute offset exceeds ``warn_offset`` (50, BasicSR's threshold; the
    offsets are then usually meaningless; the check costs one host sync per forward on a GPU, and
    ``warn_offset=None`` skips it). ``last_offset_abs_mean`` holds the last value (a 0-d tensor).
    ``padding=None`` pads to keep the size at stride 1 (``dilation·(k-1)/2``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, offset_groups: int = 1, bias: bool = True, offset_in_channels: int | None = None,
                 modulated: bool = True, max_offset: float | None = None, offset_lr_mul: float = 1.0,
                 warn_offset: float | None = 50.0, backend: str = "pure"):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        dilation = _pair(dilation, "dilation")
        if padding is None:
            padding = (dilation[0] * (kh - 1) // 2, dilation[1] * (kw - 1) // 2)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must be divisible "
                             f"by groups {groups}")
        if offset_groups < 1 or in_channels % offset_groups:
            raise ValueError(f"in_channels {in_channels} must be divisible by offset_groups {offset_groups}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation = _pair(stride, "stride"), _pair(padding, "padding"), dilation
        self.groups, self.offset_groups, self.backend, self.warn_offset = groups, offset_groups, backend, warn_offset
        conv = nn.Conv2d(in_channels, out_channels, (kh, kw), groups=groups, bias=bias)   # for its init only
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if bias else None
        self.offset_head = OffsetMaskHead(offset_in_channels or in_channels, offset_groups, (kh, kw), self.stride,
                                          self.padding, self.dilation, modulated, max_offset, offset_lr_mul)
        self.last_offset_abs_mean: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, feat: torch.Tensor | None = None) -> torch.Tensor:
        offset, mask = self.offset_head(x if feat is None else feat)
        self._watch(offset)
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask,
                             backend=self.backend)

    def _watch(self, offset: torch.Tensor) -> None:
        self.last_offset_abs_mean = offset.detach().abs().mean()
        if self.warn_offset is not None and bool(self.last_offset_abs_mean > self.warn_offset):   # host sync
            warnings.warn(f"deformable offsets: mean |offset| = {float(self.last_offset_abs_mean):.1f} px > "
                          f"{self.warn_offset:g}; training is probably diverging (lower the lr of the offset "
                          f"head with offset_lr_mul, bound the offsets with max_offset, or resume from an "
                          f"earlier checkpoint)", RuntimeWarning, stacklevel=2)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"offset_groups={self.offset_groups}, modulated={self.offset_head.modulated}, "
                f"max_offset={self.offset_head.max_offset}, backend={self.backend!r}")
