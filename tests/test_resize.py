"""MATLAB bicubic (srlearn.data.resize) against formulations written independently here.

References: (a) a per-pixel loop over the textbook definition with exact rational coordinates
(``_ref_resize``); (b) the pure-PyTorch recipe of papers.md §0 (symmetric pad, anti-aliased
``F.interpolate``, crop); (c) analytic properties of the Keys kernel (partition of unity, linear
reproduction). sr-protocol.md §8 items 1, 3, 5, 17.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlearn.data.resize import (cubic, fast_bicubic_down, imresize, imresize_torch, output_size,
                                 resize_weights)

# --------------------------------------------------------------------------- independent reference


def _keys(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
    if t <= 2:
        return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
    return 0.0


def _reflect(j: int, n: int) -> int:
    """1-based index mirrored about the half-pixel borders (edge repeated), as often as needed."""
    while not 1 <= j <= n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _ref_line(line, scale: Fraction, out_len: int):
    """One output line, pixel by pixel, from the definition; ``scale`` is an exact Fraction."""
    n = len(line)
    shrink = scale < 1
    half = 2 / scale if shrink else Fraction(2)
    out = []
    for x in range(1, out_len + 1):
        u = (x - Fraction(1, 2)) / scale + Fraction(1, 2)          # = x/scale + (1 - 1/scale)/2
        num = den = 0.0
        for j in range(math.floor(u - half), math.ceil(u + half) + 1):
            w = float(scale) * _keys(float((u - j) * scale)) if shrink else _keys(float(u - j))
            num += w * float(line[_reflect(j, n) - 1])
            den += w
        out.append(num / den)
    return out


def _half_away(v: float) -> float:
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def _ref_resize(img, scale: Fraction, rounding=None, clip=True):
    """Rows pass then columns pass of ``_ref_line``; ``rounding`` (a function) applied after each pass."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape[:2]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    chans = img.reshape(h, w, -1)
    out = np.empty((oh, ow, chans.shape[2]))
    for c in range(chans.shape[2]):
        rows = np.array([_ref_line(chans[:, col, c], scale, oh) for col in range(w)]).T     # oh x w
        if rounding is not None:
            rows = np.vectorize(rounding)(rows)
            rows = np.clip(rows, 0, 255) if clip else rows
        cols = np.array([_ref_line(rows[r], scale, ow) for r in range(oh)])               # oh x ow
        if rounding is not None:
            cols = np.clip(np.vectorize(rounding)(cols), 0, 255)
        out[:, :, c] = cols
    return out.reshape((oh, ow) + img.shape[2:])


SCALES = [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(2), Fraction(3), Fraction(4),
          Fraction(3, 4), Fraction(3, 2)]


# --------------------------------------------------------------------------- kernel and weights


def test_cubic_kernel_values_and_properties():
    assert cubic(0.0) == 1.0 and cubic(1.0) == 0.0 and cubic(2.0) == 0.0 and cubic(2.5) == 0.0
    assert cubic(0.5) == pytest.approx(0.5625, abs=1e-15)       # 1.5/8 - 2.5/4 + 1
    assert cubic(1.5) == pytest.approx(-0.0625, abs=1e-15)      # a = -0.5: -0.5*3.375 + 2.5*2.25 - 6 + 2
    x = np.linspace(-3, 3, 601)
    np.testing.assert_array_equal(cubic(x), cubic(-x))
    # Keys' kernel interpolates: partition of unity and exact reproduction of linear functions
    t = np.linspace(0, 1, 37)[:, None]
    j = np.arange(-3, 5)[None, :]
    np.testing.assert_allclose(cubic(t - j).sum(1), 1.0, atol=1e-14)
    np.testing.assert_allclose((j * cubic(t - j)).sum(1), t[:, 0], atol=1e-14)
    # and is not OpenCV's a = -0.75 kernel
    assert cubic(1.5) != pytest.approx(-0.75 * (1.5 ** 3 - 5 * 1.5 ** 2 + 8 * 1.5 - 4))


@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("in_len", [48, 50, 7])
def test_weights_shrink_rows_sum_to_one_with_4s_taps(s, in_len):
    w, idx = resize_weights(in_len, output_size(in_len, 1 / s), 1 / s)
    assert w.shape == idx.shape == (math.ceil(in_len / s), 4 * s)
    assert np.abs(w.sum(1) - 1).max() < 1e-12
    assert idx.min() >= 0 and idx.max() < in_len
    # a row whose taps stay inside the image uses consecutive input pixels; rows at the border mirror
    inside = [r for r in range(w.shape[0]) if np.all(np.diff(idx[r]) == 1)]
    if in_len >= 8 * s:
        assert inside and len(inside) < w.shape[0]


@pytest.mark.parametrize("scale", [2, 3, 4, 1.5, 1])
def test_weights_enlarge_have_4_taps(scale):
    w, idx = resize_weights(20, output_size(20, scale), scale)
    assert w.shape[1] == 4
    assert np.abs(w.sum(1) - 1).max() < 1e-12


def test_weights_equal_reference_rows():
    # The dense weight matrix applied to the unit vectors reproduces the reference loop exactly.
    for scale in (Fraction(1, 3), Fraction(2), Fraction(3, 4)):
        n = 11
        m = output_size(n, float(scale))
        w, idx = resize_weights(n, m, float(scale))
        dense = np.zeros((m, n))
        np.add.at(dense, (np.arange(m)[:, None], idx), w)
        ref = np.array([_ref_line(np.eye(n)[k], scale, m) for k in range(n)]).T
        np.testing.assert_allclose(dense, ref, atol=1e-13)


def test_output_size_is_ceil():
    assert output_size(7, 0.5) == 4 and output_size(10, 1 / 3) == 4 and output_size(5, 2) == 10
    assert output_size(10, 0.3) == 3           # 10 * 0.3 = 3.0000000000000004 in binary: no extra pixel
    for n in range(3, 3001, 3):
        assert output_size(n, 1 / 3) == n // 3
    for n in range(1, 200):
        for s in (2, 3, 4):
            assert output_size(n, 1 / s) == -(-n // s)
    assert imresize(np.zeros((17, 22)), 1 / 3).shape == (6, 8)
    assert imresize(np.zeros((17, 22, 3)), 3).shape == (51, 66, 3)


# --------------------------------------------------------------------------- float path


@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_float_equals_pixel_loop_reference(scale):
    rng = np.random.default_rng(1)
    img = rng.random((13, 17, 2))
    out = imresize(img, float(scale))
    ref = _ref_resize(img, scale)
    assert out.shape == ref.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_float_equals_torch_symmetric_pad_recipe(s):
    # papers.md §0: pad 2s symmetric, anti-aliased F.interpolate, crop 2 LR px; (and for up: pad 2, crop 2s)
    rng = np.random.default_rng(s)
    img = rng.random((36, 48, 3))

    def torch_resize(a, size):
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
        r = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True)
        return r[0].numpy().transpose(1, 2, 0)

    pad = np.pad(img, ((2 * s, 2 * s), (2 * s, 2 * s), (0, 0)), mode="symmetric")
    down = torch_resize(pad, (pad.shape[0] // s, pad.shape[1] // s))[2:-2, 2:-2]
    np.testing.assert_allclose(imresize(img, 1 / s), down, rtol=0, atol=1e-12)

    pad = np.pad(img, ((2, 2), (2, 2), (0, 0)), mode="symmetric")
    up = torch_resize(pad, (pad.shape[0] * s, pad.shape[1] * s))[2 * s:-2 * s, 2 * s:-2 * s]
    np.testing.assert_allclose(imresize(img, s), up, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 3, 4])
def test_linear_ramp_lands_on_the_coordinate_map(scale):
    # A linear image is reproduced exactly away from the borders, so output pixel x must carry the value of
    # input coordinate u = x/scale + (1 - 1/scale)/2 (1-based): checks the map without any loop reference.
    h, w = 40, 52
    i, j = np.meshgrid(np.arange(1, h + 1), np.arange(1, w + 1), indexing="ij")
    img = 0.7 * i - 0.3 * j + 5.0
    out = imresize(img, scale)
    x, y = np.meshgrid(np.arange(1, out.shape[0] + 1), np.arange(1, out.shape[1] + 1), indexing="ij")
    u, v = x / scale + 0.5 * (1 - 1 / scale), y / scale + 0.5 * (1 - 1 / scale)
    expected = 0.7 * u - 0.3 * v + 5.0
    b = math.ceil(3 * max(1, scale))            # output pixels whose taps touch the border
    np.testing.assert_allclose(out[b:-b, b:-b], expected[b:-b, b:-b], rtol=0, atol=1e-10)
    assert np.abs(out[0, 0] - expected[0, 0]) > 1e-3      # the mirrored border is not linear


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2])
def test_float_commutes_with_the_8_dihedral_transforms(scale):
    # Holds when H*scale and W*scale are integers (after modcrop); otherwise the sampling grid is anchored
    # at the top-left pixel and a flip moves it, which is checked at the end.
    rng = np.random.default_rng(7)
    img = rng.random((24, 36, 3))
    transforms = []
    for k in range(8):
        def t(a, k=k):
            a = a[:, ::-1] if k & 1 else a
            a = a[::-1] if k & 2 else a
            return a.transpose(1, 0, 2) if k & 4 else a
        transforms.append(t)
    base = imresize(img, scale)
    for t in transforms:
        np.testing.assert_allclose(imresize(np.ascontiguousarray(t(img)), scale), t(base), rtol=0, atol=1e-10)
    if scale < 1:
        odd = img[:23, :35]                          # not a multiple of 1/scale
        flipped = imresize(np.ascontiguousarray(odd[:, ::-1]), scale)
        assert np.abs(flipped - imresize(odd, scale)[:, ::-1]).max() > 1e-3


def test_constant_image_stays_constant_and_dtypes():
    img = np.full((9, 14, 3), 0.4, dtype=np.float32)
    for scale in (0.5, 1 / 3, 3):
        out = imresize(img, scale)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, 0.4, atol=1e-6)
    u8 = np.full((9, 14, 3), 200, dtype=np.uint8)
    out = imresize(u8, 0.5)                         # uint8 in float mode: float64 on the [0, 255] scale
    assert out.dtype == np.float64 and np.allclose(out, 200.0, atol=1e-12)
    assert imresize(u8, 0.5, mode="uint8").dtype == np.uint8
    assert np.all(imresize(u8, 0.25, mode="uint8") == 200)
    assert imresize(np.full((1, 1), 3.0), 4).shape == (4, 4)          # tiny images mirror onto themselves
    np.testing.assert_allclose(imresize(np.full((1, 1), 3.0), 4), 3.0)


# --------------------------------------------------------------------------- uint8 path


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(2), Fraction(3)],
                         ids=str)
def test_uint8_equals_reference_with_rounding_after_each_pass(scale):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(14, 19, 3), dtype=np.uint8)
    out = imresize(img, float(scale), mode="uint8")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _ref_resize(img, scale, rounding=_half_away).astype(np.uint8))


def test_uint8_rounds_ties_half_away_from_zero():
    # x2 weights are multiples of 1/256, so integer inputs hit exact .5 ties; half-to-even must differ.
    rng = np.random.default_rng(11)
    img = rng.integers(0, 256, size=(32, 32, 1), dtype=np.uint8)
    out = imresize(img, 0.5, mode="uint8")
    half_away = _ref_resize(img, Fraction(1, 2), rounding=_half_away)
    half_even = _ref_resize(img, Fraction(1, 2), rounding=lambda v: float(np.round(v)))
    np.testing.assert_array_equal(out, half_away)
    assert np.any(out != half_even)


def test_uint8_clips_the_intermediate_pass():
    # Black/white blocks: the negative lobes overshoot beyond [0, 255] in the rows pass; MATLAB saturates
    # that intermediate, so the uint8 path differs from rounding the float path once at the end.
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 2, size=(8, 10)).astype(np.uint8) * 255
    img = np.kron(blocks, np.ones((3, 3), dtype=np.uint8))
    for scale in (Fraction(1, 2), Fraction(1, 3), Fraction(2)):
        out = imresize(img, float(scale), mode="uint8")
        once = np.clip(np.floor(imresize(img, float(scale)) + 0.5), 0, 255)
        assert np.any(out != once)
        np.testing.assert_array_equal(out, _ref_resize(img, scale, rounding=_half_away))
        no_clip = _ref_resize(img, scale, rounding=_half_away, clip=False)
        assert np.any(out != no_clip)               # the intermediate clip itself matters here


# --------------------------------------------------------------------------- torch paths


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 3, 4])
def test_imresize_torch_equals_numpy(scale):
    rng = np.random.default_rng(2)
    img = rng.random((2, 3, 15, 21))
    ref = np.stack([imresize(a.transpose(1, 2, 0), scale).transpose(2, 0, 1) for a in img])
    out64 = imresize_torch(torch.from_numpy(img), scale)
    assert out64.dtype == torch.float64 and tuple(out64.shape) == ref.shape
    np.testing.assert_allclose(out64.numpy(), ref, rtol=0, atol=1e-10)
    out32 = imresize_torch(torch.from_numpy(img[0]).float(), scale)       # CxHxW, float32
    np.testing.assert_allclose(out32.numpy(), ref[0], rtol=0, atol=1e-5)


def test_imresize_torch_is_differentiable():
    x = torch.rand(1, 1, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 0.5), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 3), (x,), fast_mode=True)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_fast_bicubic_down_matches_interior_only(s):
    rng = np.random.default_rng(s)
    img = rng.random((3, 48, 60)).astype(np.float32)
    fast = fast_bicubic_down(torch.from_numpy(img), s).numpy()
    exact = imresize(img.transpose(1, 2, 0), 1 / s).transpose(2, 0, 1)
    assert fast.shape == exact.shape
    np.testing.assert_allclose(fast[:, 4:-4, 4:-4], exact[:, 4:-4, 4:-4], rtol=0, atol=1e-5)
    border = np.ones(fast.shape[1:], dtype=bool)
    border[4:-4, 4:-4] = False
    assert np.abs(fast - exact)[:, border].max() > 1e-3


# --------------------------------------------------------------------------- errors


def test_errors():
    img = np.zeros((8, 8, 3))
    for bad in (0, -0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            imresize(img, bad)
    for bad in ("2", True, None):
        with pytest.raises(TypeError, match="scale"):
            imresize(img, bad)
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros(8), 0.5)
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros((1, 8, 8, 3)), 0.5)
    with pytest.raises(ValueError, match="too small"):
        imresize(np.zeros((0, 8)), 0.5)
    for bad_val in (np.nan, np.inf):
        a = img.copy()
        a[3, 3, 1] = bad_val
        with pytest.raises(ValueError, match="NaN"):
            imresize(a, 0.5)
    for dt in (np.int32, np.float16, bool, np.uint16):
        with pytest.raises(TypeError, match="dtype"):
            imresize(np.zeros((8, 8), dtype=dt), 0.5)
    with pytest.raises(TypeError, match="uint8"):
        imresize(img, 0.5, mode="uint8")
    with pytest.raises(ValueError, match="mode"):
        imresize(img, 0.5, mode="double")
    with pytest.raises(TypeError, match="imresize_torch"):
        imresize(torch.zeros(8, 8), 0.5)
    with pytest.raises(TypeError, match="floating"):
        imresize_torch(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match="NxCxHxW"):
        imresize_torch(torch.zeros(8, 8), 0.5)
    with pytest.raises(ValueError, match="scale"):
        imresize_torch(torch.zeros(3, 8, 8), -2)
    with pytest.raises(ValueError, match="not 0.5"):
        fast_bicubic_down(torch.zeros(3, 8, 8), 0.5)
    with pytest.raises(ValueError, match="multiples"):
        fast_bicubic_down(torch.zeros(3, 9, 8), 2)
    with pytest.raises(ValueError, match="in_len"):
        resize_weights(0, 3, 0.5)
