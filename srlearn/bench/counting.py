r"""Deterministic costs and structure, counted rather than timed: the numbers the notebooks state.

A wall-clock time depends on the machine, its load and the library's kernels; a count does not. The
notebooks show these counts as their main cost figures and assert the numbers their prose states, so
text and code cannot drift apart (CPU times appear only as footnotes, each interpreted).

* FLOPs: ``count_flops`` runs a forward pass under ``torch.utils.flop_counter.FlopCounterMode``
  (2 FLOPs per multiply-add of every convolution, transposed convolution and matrix product; element-wise
  operations, pooling, interpolation and pixel shuffles are not counted); the closed forms
  ``conv2d_flops``, ``conv_transpose2d_flops`` and ``upsampler_flops`` give the same numbers on paper.
* Memory: ``saved_tensor_mib`` adds up the tensors autograd keeps for the backward pass — the activation
  memory of one training step, deterministic and machine-independent (a measured peak, as in
  ``srlearn.bench.soca.peak_memory_mib``, adds the allocator's and the library's own buffers).
* Structure: ``receptive_field`` (closed form for a chain of convolutions) and
  ``measured_receptive_field`` (by back-propagating from one output pixel); ``tap_path_counts`` — how many
  of the ``k^{2n}`` sampling paths of ``n`` stacked ``k×k`` convolutions reach each input offset (three 3×3
  layers: 729 paths onto 49 distinct positions, 49 of them onto the centre); ``distinct_points``.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MiB = 2 ** 20

__all__ = ["count_flops", "conv2d_flops", "conv_transpose2d_flops", "upsampler_flops", "saved_tensor_mib",
           "receptive_field", "measured_receptive_field", "tap_path_counts", "distinct_points"]


def _positive(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


def count_flops(fn_or_model: Callable | nn.Module, *inputs) -> int:
    """FLOPs of one call ``fn_or_model(*inputs)`` counted by ``FlopCounterMode`` (no grad).

    Pass a module with its inputs, or a zero-argument function (e.g. a forward and backward step).
    """
    with FlopCounterMode(display=False) as counter:
        if inputs:
            with torch.no_grad():
                fn_or_model(*inputs)
        else:
            fn_or_model()
    return int(counter.get_total_flops())


def conv2d_flops(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """``2·(C_in/groups)·C_out·k²·H_out·W_out``: one multiply-add per weight per output pixel."""
    for name, v in (("c_in", c_in), ("c_out", c_out), ("kernel", kernel), ("h_out", h_out), ("w_out", w_out),
                    ("groups", groups)):
        _positive(name, v)
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    return 2 * (c_in // groups) * c_out * kernel * kernel * h_out * w_out


def conv_transpose2d_flops(c_in: int, c_out: int, kernel: int, h_in: int, w_in: int) -> int:
    """``2·C_in·C_out·k²·H_in·W_in``: every *input* pixel stamps a ``k×k`` kernel per channel pair."""
    for name, v in (("c_in", c_in), ("c_out", c_out), ("kernel", kernel), ("h_in", h_in), ("w_in", w_in)):
        _positive(name, v)
    return 2 * c_in * c_out * kernel * kernel * h_in * w_in


def _stages(scale: int) -> list[int]:
    _positive("scale", scale)
    if scale == 1:
        return []
    return [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]


def upsampler_flops(kind: str, scale: int, channels: int, h: int, w: int, kernel: int | None = None) -> int:
    """FLOPs of a ×``scale`` up-sampler on a ``channels × h × w`` map (×2 stages for powers of two).

    ``"sub-pixel"``: per stage of factor ``s`` a 3×3 conv ``C → s²C`` at the stage's input size, then a
    pixel shuffle (free) — ``srlearn.nn.Upsampler`` (EDSR, RCAN, SAN). ``"deconv"``: per stage a
    transposed conv ``C → C`` with a ``kernel`` (default ``s``) — ``srlearn.nn.DeconvUpsampler``.
    """
    _positive("channels", channels), _positive("h", h), _positive("w", w)
    if kind not in ("sub-pixel", "deconv"):
        raise ValueError(f"kind must be 'sub-pixel' or 'deconv', got {kind!r}")
    total = 0
    for s in _stages(scale):
        if kind == "sub-pixel":
            total += conv2d_flops(channels, s * s * channels, 3, h, w)
        else:
            total += conv_transpose2d_flops(channels, channels, s if kernel is None else kernel, h, w)
        h, w = h * s, w * s
    return total


def saved_tensor_mib(fn: Callable[[], torch.Tensor]) -> float:
    """MiB of the tensors autograd saves for the backward of ``fn()`` (deterministic activation memory).

    ``fn`` runs once with grad enabled; every tensor packed for backward is counted once (by storage),
    parameters included when an operation saves them (as a convolution saves its weight).
    """
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor):
        key = (t.untyped_storage().data_ptr(), t.device.type)
        seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / MiB


def receptive_field(layers: Iterable[Sequence[int]]) -> int:
    """Side of the receptive field of a chain of convolutions ``[(kernel, stride[, dilation]), ...]``.

    ``r = 1 + Σ_l (k_l − 1)·d_l·Π_{j<l} s_j`` (layers listed from input to output). Element-wise layers
    (ReLU, attention gates, skips that add an input of a smaller field) do not change it.
    """
    r, jump = 1, 1
    for spec in layers:
        if len(spec) not in (2, 3):
            raise ValueError(f"each layer is (kernel, stride) or (kernel, stride, dilation), got {spec!r}")
        k, s, d = (*spec, 1) if len(spec) == 2 else spec
        _positive("kernel", k), _positive("stride", s), _positive("dilation", d)
        r += (k - 1) * d * jump
        jump *= s
    return r


def measured_receptive_field(model: Callable[[torch.Tensor], torch.Tensor], in_shape: Sequence[int],
                             where: tuple[int, int] | None = None) -> tuple[int, int]:
    """(height, width) of the input region that one output pixel depends on, by back-propagation.

    ``in_shape`` is ``(B, C, H, W)``; ``where`` the output pixel (default: the centre). The input is random
    and the model is run in float64, so a dependence that exists almost surely shows as a non-zero gradient.
    Pick ``in_shape`` large enough that the field does not touch the border.
    """
    if len(in_shape) != 4:
        raise ValueError(f"in_shape must be (B, C, H, W), got {tuple(in_shape)}")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(*in_shape, generator=g, dtype=torch.float64, requires_grad=True)
    params = [p for p in getattr(model, "parameters", lambda: [])()]
    dtypes = [p.dtype for p in params]
    if isinstance(model, nn.Module):
        model.double()
    try:
        out = model(x)
        y, xx = where if where is not None else (out.shape[-2] // 2, out.shape[-1] // 2)
        out[0, :, y, xx].sum().backward()
    finally:
        if isinstance(model, nn.Module) and dtypes:
            model.to(dtypes[0])
    seen = x.grad[0].abs().sum(0) > 0
    rows, cols = torch.nonzero(seen, as_tuple=True)
    if len(rows) == 0:
        return (0, 0)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def tap_path_counts(n_layers: int, kernel: int = 3) -> torch.Tensor:
    """Paths from one output pixel back through ``n_layers`` stacked ``kernel×kernel`` convolutions (stride
    1, zero offsets) that land on each input offset: a ``(n(k−1)+1)²`` integer map summing to ``k^{2n}``.

    Per axis the counts are the coefficients of ``(1 + t + … + t^{k−1})^n``; the map is their outer
    product. Three 3×3 layers: 729 paths, 7×7 = 49 positions, 7·7 = 49 paths onto the centre.
    """
    _positive("n_layers", n_layers), _positive("kernel", kernel)
    axis = torch.ones(1, dtype=torch.int64)
    for _ in range(n_layers):
        nxt = torch.zeros(len(axis) + kernel - 1, dtype=torch.int64)
        for j in range(kernel):
            nxt[j:j + len(axis)] += axis
        axis = nxt
    return torch.outer(axis, axis)


def distinct_points(points: torch.Tensor, decimals: int = 3) -> int:
    """Number of distinct positions among ``points`` (``N × 2``), after rounding to ``decimals``."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be N x 2 (y, x), got shape {tuple(points.shape)}")
    return int(len(torch.unique(points.round(decimals=decimals), dim=0)))
