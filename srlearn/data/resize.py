"""MATLAB-exact bicubic resizing: the "BI" degradation every SISR benchmark is built on.

The benchmark LR images are MATLAB ``imresize(HR, 1/s, 'bicubic')`` of a mod-cropped HR image
[sr-protocol.md §1.1; papers.md §0]. This module re-derives that function from its definition:

* kernel: Keys' cubic convolution with a = -0.5 (``cubic``), support |x| <= 2;
* coordinate map (1-based): output pixel x samples the input at u = x/scale + 0.5 (1 - 1/scale),
  i.e. pixel *areas* are aligned (PyTorch's ``align_corners=False``);
* anti-aliasing when shrinking (scale < 1): the kernel is stretched by 1/scale, h(d) = scale k(scale d),
  so an output pixel mixes 4/scale input taps (8, 12, 16 for x2, x3, x4);
* borders: indices outside the image are mirrored *with the edge pixel repeated* (numpy
  ``mode='symmetric'``, MATLAB's ``[1:n, n:-1:1]`` periodic table); each row of weights is normalised
  to sum 1;
* output size ``ceil(in * scale)`` per axis; separable, rows (height) pass first, then columns.

Two MATLAB behaviours exist and both are offered [sr-protocol.md §1.3]:

* ``mode="uint8"`` is MATLAB on a ``uint8`` image: after *each* pass the result is rounded half away from
  zero and saturated to [0, 255]. This is how the RCAN/SAN benchmark LR files were made (the emulation
  matched the SAN LR PNGs on 100 % of pixels, §1.3).
* ``mode="float"`` is MATLAB on a ``double`` image (BasicSR's ``matlab_functions.imresize``): no rounding
  anywhere; the caller rounds once if it wants uint8. It is linear, commutes with flips and transposes,
  and has a differentiable batched twin, ``imresize_torch``.

Everything is vectorised per axis: ``resize_weights`` gives, for each output pixel, its taps (indices into
the input) and their weights; a pass is a sum over the (at most 4/scale) taps.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["cubic", "output_size", "resize_weights", "imresize", "imresize_torch", "fast_bicubic_down"]

# A scale whose inverse is within this relative distance of an integer n is taken as exactly 1/n, so that
# imresize(x, 1/3) uses the kernel width 12 and the output size in/3 of the mathematical scale, not those of
# the nearest double to 1/3.
_SNAP_TOL = 1e-9


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize``'s ``cubic``)::

        k(x) = 1.5|x|^3 - 2.5|x|^2 + 1            for |x| <= 1
             = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2    for 1 < |x| <= 2
             = 0                                  otherwise

    Works on numpy arrays and Python scalars (returns float64). PyTorch's non-antialiased bicubic and OpenCV
    use a = -0.75 instead [sr-protocol.md §1.4], which is why they do not reproduce MATLAB.
    """
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number (output size / input size, e.g. 0.5 to shrink x2), "
                        f"got {type(scale).__name__}")
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0 (output/input, e.g. 1/4 to shrink x4, 2 to "
                         f"enlarge x2), got {scale}")
    return scale


def _snap(v: float) -> float:
    """``v`` replaced by the nearest integer when it is within ``_SNAP_TOL`` (relative) of it."""
    r = round(v)
    return float(r) if r >= 1 and abs(v - r) <= _SNAP_TOL * v else v


def output_size(in_len: int, scale: float) -> int:
    """MATLAB's output length ``ceil(in_len * scale)``, with a 1e-9 tolerance so that a product that
    should be an integer but lands an ulp above it does not gain a pixel (10 * 0.3 is 3.0000000000000004
    in binary: we return 3, a literal ``ceil`` 4). For the scales 1/s and s of super-resolution there is
    no such case below 10^5 pixels, so the tolerance only guards odd scales."""
    scale = _check_scale(scale)
    inv = _snap(1.0 / scale)
    exact = in_len / inv if scale < 1 else in_len * _snap(scale)
    return max(1, math.ceil(exact - _SNAP_TOL * max(1.0, exact)))


def resize_weights(in_len: int, out_len: int, scale: float):
    """Taps and weights of one 1-D MATLAB bicubic pass: ``(weights, indices)``, both ``(out_len, P)``.

    Output pixel x (1-based) is centred at input coordinate u = x/scale + 0.5 (1 - 1/scale). When shrinking
    (scale < 1, anti-aliasing on, as in MATLAB's default) the kernel is h(d) = scale k(scale d) with width
    4/scale; when enlarging it is k(d) with width 4. The candidate taps are the integers
    floor(u - width/2) + 0 .. P0-1, P0 = ceil(width) + 2 (MATLAB's ``contributions``); each row of weights
    is divided by its sum; then the first and the last candidate column are dropped when they are zero in
    every row, which for an integer width they always are: that leaves exactly 4/scale taps for
    scale = 1/s (s integer) and 4 taps for enlarging [sr-protocol.md §1.1]. For odd s some taps
    have weight exactly 0 because the kernel vanishes at integer arguments (for x3, the taps at distance
    3 and 6 from the centre). MATLAB's ``contributions`` deletes *every* all-zero column, interior ones
    included; a zero weight changes no sum, so the results are identical, and we keep the 4/scale layout
    the literature counts (8/12/16 taps for x2/x3/x4). Indices outside 1..in_len are
    mirrored with the edge repeated (``[1..n, n..1]`` repeated periodically, so even an image smaller than
    the kernel is handled) and returned 0-based. Returned as float64 / int64 numpy arrays.

    For scale = 1/s the inverse is taken as the integer s exactly (see ``_SNAP_TOL``): MATLAB computes
    with the double nearest to 1/3, which changes weights by ~1e-16 only.
    """
    scale = _check_scale(scale)
    for name, v in (("in_len", in_len), ("out_len", out_len)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    in_len, out_len = int(in_len), int(out_len)
    x = np.arange(1, out_len + 1, dtype=np.float64)
    if scale < 1:                                   # shrink: anti-aliased, stretched kernel
        inv = _snap(1.0 / scale)                    # the exact factor s for scale = 1/s
        width = 4.0 * inv
        u = x * inv + 0.5 * (1.0 - inv)
    else:                                           # enlarge (or identity): plain kernel
        inv = 1.0
        width = 4.0
        u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    n_taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(n_taps, dtype=np.float64)[None, :]       # 1-based candidate taps
    w = cubic((u[:, None] - idx) / inv) / inv       # h(d) = scale k(scale d) when shrinking; k(d) else
    w = w / w.sum(axis=1, keepdims=True)
    first = 1 if not np.any(w[:, 0]) else 0         # the two extra candidates: dropped when zero in every row
    last = n_taps - 1 if not np.any(w[:, -1]) else n_taps
    w, idx = w[:, first:last], idx[:, first:last].astype(np.int64)
    period = np.mod(idx - 1, 2 * in_len)            # position in the table [1..n, n..1], 0-based
    idx0 = np.where(period < in_len, period, 2 * in_len - 1 - period)
    return np.ascontiguousarray(w), np.ascontiguousarray(idx0)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8 conversion: round half away from zero, saturate to [0, 255]."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255)


def _pass(img: np.ndarray, weights: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    """One separable pass along ``axis``: out[..i..] = sum_p weights[i, p] * img[..indices[i, p]..]."""
    shape = [1] * img.ndim
    shape[axis] = -1
    out = np.zeros(img.shape[:axis] + (weights.shape[0],) + img.shape[axis + 1:], dtype=np.float64)
    for p in range(weights.shape[1]):               # a loop over the <= 4/scale taps, never over pixels
        out += weights[:, p].reshape(shape) * np.take(img, indices[:, p], axis=axis)
    return out


def imresize(img: np.ndarray, scale: float, mode: str = "float") -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for a numpy ``HxW`` or ``HxWxC`` image.

    ``scale`` is output size / input size (0.5 shrinks x2, 1/3 shrinks x3, 4 enlarges x4); the output is
    ``ceil(H*scale) x ceil(W*scale)`` (``output_size``). The rows (height) pass runs first, then the
    columns pass, each a weighted sum over the taps of ``resize_weights``; channels are independent.

    ``mode="uint8"`` (MATLAB on a uint8 image, the classic benchmark LR files): input must be uint8; after
    each pass the values are rounded half away from zero and clipped to [0, 255]; returns uint8.

    ``mode="float"`` (MATLAB on a double image, BasicSR's path): computed in float64 with no rounding or
    clipping (bicubic overshoots, so values may leave the input range); returns float32 for float32 input,
    float64 otherwise. A uint8 image in float mode is processed as floats in [0, 255] and returned as
    float64 on that scale: the caller rounds (once) if it needs uint8 - that is the double path of
    sr-protocol.md §1.3.

    Raises ``ValueError`` for a non-positive/NaN scale, a wrong number of dimensions, an empty image,
    NaN/Inf pixels or an unknown mode; ``TypeError`` for an unsupported dtype (use uint8, float32 or
    float64) or a non-uint8 image in uint8 mode.
    """
    scale = _check_scale(scale)
    if mode not in ("float", "uint8"):
        raise ValueError(f"mode must be 'float' (no intermediate rounding) or 'uint8' (MATLAB's uint8 path), "
                         f"got {mode!r}")
    if not isinstance(img, np.ndarray):
        raise TypeError(f"imresize takes a numpy array (HxW or HxWxC); got {type(img).__name__} - for torch "
                        f"tensors use imresize_torch")
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be HxW or HxWxC, got shape {img.shape}; resize a batch image by image, "
                         f"or use imresize_torch for NCHW tensors")
    if img.dtype not in (np.uint8, np.float32, np.float64):
        raise TypeError(f"unsupported dtype {img.dtype}: pass uint8, float32 or float64 "
                        f"(e.g. img.astype(np.float64))")
    if mode == "uint8" and img.dtype != np.uint8:
        raise TypeError(f"mode='uint8' emulates MATLAB on a uint8 image and needs uint8 input, got {img.dtype}; "
                        f"convert with np.clip(np.round(x), 0, 255).astype(np.uint8) or use mode='float'")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image is too small to resize: shape {img.shape} has an empty axis")
    if img.dtype != np.uint8 and not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or Inf pixels; clean them (e.g. np.nan_to_num) before resizing")

    out = img.astype(np.float64)
    for axis in (0, 1):                             # rows (height) first, then columns
        n_in = out.shape[axis]
        w, idx = resize_weights(n_in, output_size(n_in, scale), scale)
        out = _pass(out, w, idx, axis)
        if mode == "uint8":
            out = _round_half_away(out)             # MATLAB rounds and saturates after every pass
    if mode == "uint8":
        return out.astype(np.uint8)
    return out.astype(np.float32) if img.dtype == np.float32 else out


@functools.lru_cache(maxsize=128)
def _weight_matrix_np(in_len: int, scale: float) -> np.ndarray:
    """The dense ``(out_len, in_len)`` matrix of one pass (taps scattered, mirrored taps added up)."""
    w, idx = resize_weights(in_len, output_size(in_len, scale), scale)
    m = np.zeros((w.shape[0], in_len), dtype=np.float64)
    np.add.at(m, (np.arange(w.shape[0])[:, None], idx), w)
    m.flags.writeable = False
    return m


@functools.lru_cache(maxsize=128)
def _weight_matrix(in_len: int, scale: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(_weight_matrix_np(in_len, scale), dtype=dtype, device=device)


def imresize_torch(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Batched, differentiable twin of ``imresize(..., mode="float")`` for ``NxCxHxW`` or ``CxHxW`` tensors.

    Each pass is a matrix product with the dense weight matrix of ``resize_weights`` (built once per
    (length, scale, dtype, device) and cached): ``out = A_H @ x @ A_W^T``, rows first as in ``imresize``.
    Floating-point tensors only, any device; no rounding or clipping. NaN/Inf are not checked (it runs
    inside training loops). The ``bicubic`` baseline model calls it with an integer scale to enlarge.
    """
    scale = _check_scale(scale)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"imresize_torch takes a torch tensor (NxCxHxW or CxHxW), got {type(x).__name__}; "
                        f"for numpy images use imresize")
    if x.ndim not in (3, 4):
        raise ValueError(f"tensor must be NxCxHxW or CxHxW, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"imresize_torch needs a floating-point tensor, got {x.dtype}; use x.float() "
                        f"(and divide uint8 images by 255)")
    h, w = x.shape[-2:]
    if h < 1 or w < 1:
        raise ValueError(f"tensor is too small to resize: shape {tuple(x.shape)} has an empty spatial axis")
    a_h = _weight_matrix(int(h), scale, x.dtype, x.device)
    a_w = _weight_matrix(int(w), scale, x.dtype, x.device)
    return torch.matmul(torch.matmul(a_h, x), a_w.transpose(0, 1))


def fast_bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Shrink by the integer factor ``scale`` (2 for x2) with ``F.interpolate(bicubic, antialias=True)``.

    Not MATLAB at the borders. PyTorch's anti-aliased bicubic has MATLAB's kernel (a = -0.5), coordinate
    map and kernel stretching, so in the interior it equals ``imresize(x, 1/scale, mode="float")``; at the
    image border it truncates the kernel and renormalises the weights instead of mirroring the image
    [sr-protocol.md §1.4], so the outermost ~2 LR pixels differ (by several grey levels on sharp
    content). Use it where speed matters more than benchmark fidelity; make benchmark LR with
    ``imresize``. (``antialias=False`` bicubic uses a = -0.75 and no low-pass: never use it to shrink.)

    ``x`` is a float ``NxCxHxW`` or ``CxHxW`` tensor whose H and W are multiples of ``scale`` (mod-crop
    first): PyTorch derives its scale from the sizes, which equals MATLAB's only then.
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale is the integer shrink factor s >= 1 (2 for x2, not 0.5), got {scale!r}; "
                         f"use imresize/imresize_torch for other factors")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim not in (3, 4):
        raise TypeError("fast_bicubic_down takes a floating-point NxCxHxW or CxHxW tensor")
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"H and W ({h}x{w}) must be multiples of scale={scale}; mod-crop the image first "
                         f"(srlearn.data.modcrop)")
    batched = x.unsqueeze(0) if x.ndim == 3 else x
    out = F.interpolate(batched, size=(h // scale, w // scale), mode="bicubic", align_corners=False,
                        antialias=True)
    return out[0] if x.ndim == 3 else out
