"""srlearn.metrics against independent formulations (BT.601 definition, scikit-image, scipy)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srlearn import metrics as M

RNG = np.random.default_rng(0)


def rand_u8(*shape, rng=RNG):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def noisy(a, sigma=12.0, rng=RNG):
    return np.clip(np.round(a.astype(np.float64) + rng.normal(0, sigma, a.shape)), 0, 255).astype(np.uint8)


def y_bt601(rgb):
    """BT.601 studio swing from its definition: luma with Kr = 0.299, Kb = 0.114 on 219 levels above 16."""
    r, g, b = (np.asarray(rgb, np.float64)[..., i] for i in range(3))
    return 16.0 + 219.0 * (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


# ------------------------------------------------------------------------------------------------ rgb_to_y
def test_rgb_to_y_black_white_and_dtype():
    assert M.rgb_to_y(np.zeros(3, np.uint8)) == 16.0
    assert M.rgb_to_y(np.full(3, 255, np.uint8)) == pytest.approx(235.0, abs=1e-12)
    assert M.rgb_to_y(np.full((2, 2, 3), 255.0)).dtype == np.float64


def test_rgb_to_y_matches_definition_and_skimage():
    a = rand_u8(17, 13, 3)
    y = M.rgb_to_y(a)
    np.testing.assert_allclose(y, y_bt601(a), rtol=0, atol=1e-11)
    np.testing.assert_allclose(y, rgb2ycbcr(a / 255.0)[..., 0], rtol=0, atol=1e-10)
    assert not np.array_equal(y, np.round(y))  # never rounded


def test_rgb_to_y_edsr_difference_form():
    """EDSR/torchSR apply (65.738, 129.057, 25.064)/256 to the difference (sr-protocol §2.1)."""
    a, b = rand_u8(20, 20, 3), rand_u8(20, 20, 3)
    ours = M.rgb_to_y(a) - M.rgb_to_y(b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    edsr = diff @ (np.array([65.738, 129.057, 25.064]) / 256)
    scale = np.abs(diff) @ (np.array([65.738, 129.057, 25.064]) / 256)
    assert np.all(np.abs(ours - edsr) <= 4e-6 * scale + 1e-12)
    assert np.abs(ours - edsr).max() > 0  # different coefficients, only nearly equal


def test_rgb_to_y_rejects_bad_shape():
    with pytest.raises(ValueError, match="3 channels"):
        M.rgb_to_y(np.zeros((3, 4, 4)))
    with pytest.raises(TypeError):
        M.rgb_to_y(torch.zeros(4, 4, 3))


# ---------------------------------------------------------------------------------------------------- PSNR
def test_psnr_y_and_rgb_match_independent_formulas():
    hr = rand_u8(40, 36, 3)
    sr = noisy(hr)
    c = 3
    ys, yh = y_bt601(sr)[c:-c, c:-c], y_bt601(hr)[c:-c, c:-c]
    expect_y = 10 * math.log10(255.0 ** 2 / np.mean((ys - yh) ** 2))
    assert M.psnr(sr, hr, crop=c) == pytest.approx(expect_y, abs=1e-9)
    assert M.psnr(sr, hr, crop=c) == pytest.approx(peak_signal_noise_ratio(yh, ys, data_range=255), abs=1e-9)
    expect_rgb = peak_signal_noise_ratio(hr[c:-c, c:-c], sr[c:-c, c:-c], data_range=255)
    assert M.psnr(sr, hr, crop=c, y_only=False) == pytest.approx(expect_rgb, abs=1e-9)


def test_psnr_identical_is_inf():
    a = rand_u8(8, 8, 3)
    assert M.psnr(a, a) == math.inf
    assert M.psnr(a, a, y_only=False) == math.inf


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_psnr_crop_removes_each_side(side):
    hr = rand_u8(20, 24, 3)
    sr = hr.copy()
    sl = {"top": np.s_[:2], "bottom": np.s_[-2:], "left": np.s_[:, :2], "right": np.s_[:, -2:]}[side]
    sr[sl] = 255 - sr[sl]
    assert math.isfinite(M.psnr(sr, hr, crop=1))
    assert M.psnr(sr, hr, crop=2) == math.inf


def test_gray_is_replicated_and_gains_exactly_20log10_255_over_219():
    hr = rand_u8(30, 30)
    sr = noisy(hr)
    y_psnr = M.psnr(sr, hr, crop=2)
    gray_psnr = peak_signal_noise_ratio(hr[2:-2, 2:-2], sr[2:-2, 2:-2], data_range=255)
    assert y_psnr - gray_psnr == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)
    # sr-protocol §8.11 writes 1.3224 dB; the value of 20·log10(255/219) is 1.32192 dB (§2.3: "1.322")
    rgb = np.repeat(sr[..., None], 3, 2), np.repeat(hr[..., None], 3, 2)
    assert M.psnr(sr, hr, crop=2) == M.psnr(*rgb, crop=2)
    assert M.psnr(sr[..., None], hr, crop=2) == y_psnr  # HxWx1 counts as gray
    assert M.psnr(sr, hr, crop=2, y_only=False) == pytest.approx(gray_psnr, abs=1e-9)


def test_float_inputs_need_allow_float_and_integral_values():
    hr = rand_u8(16, 16, 3)
    sr = noisy(hr)
    with pytest.raises(TypeError, match="to_uint8"):
        M.psnr(sr.astype(np.float32), hr)
    assert M.psnr(sr.astype(np.float64), hr.astype(np.float32), allow_float=True) == M.psnr(sr, hr)
    for bad, what in [(sr / 255.0, "non-integral"), (np.minimum(sr, 200) + 0.25, "non-integral"),
                      (sr.astype(float) + 300, "outside"), (np.where(sr > 9, np.nan, sr * 1.0), "NaN"),
                      (sr.astype(float) - 256, "outside")]:
        with pytest.raises(ValueError, match=what) as info:
            M.psnr(bad, hr, allow_float=True)
        assert "to_uint8" in str(info.value) or what == "NaN"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.ssim(sr / 255.0, hr, allow_float=True)
    with pytest.raises(ValueError, match="0, 255"):
        M.psnr(sr.astype(np.int32) + 1, hr)
    with pytest.raises(TypeError, match="psnr_torch"):
        M.psnr(torch.zeros(16, 16, 3), hr)


def test_shape_and_crop_errors():
    hr = rand_u8(16, 16, 3)
    with pytest.raises(ValueError, match="never resize"):
        M.psnr(hr[:15], hr)
    with pytest.raises(ValueError, match="HxWx3"):
        M.psnr(np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match="leaves 0x0"):
        M.psnr(hr, hr, crop=8)
    with pytest.raises(ValueError, match="non-negative"):
        M.psnr(hr, hr, crop=-1)
    with pytest.raises(ValueError, match="non-negative"):
        M.psnr(hr, hr, crop=1.5)
    with pytest.raises(ValueError, match="SSIM window"):
        M.ssim(hr, hr, crop=3)  # 10x10 left < 11x11 window


def test_psnr_ntire_is_rgb_with_scale_plus_6_shave():
    hr = rand_u8(40, 40, 3)
    sr = hr.copy()
    sr[:10] = 255 - sr[:10]  # only the 10-px top border differs
    assert M.psnr_ntire(sr, hr, scale=4) == math.inf  # shave 10
    assert math.isfinite(M.psnr_ntire(sr, hr, scale=3))  # shave 9
    sr2 = noisy(hr)
    expect = peak_signal_noise_ratio(hr[8:-8, 8:-8], sr2[8:-8, 8:-8], data_range=255)
    assert M.psnr_ntire(sr2, hr, scale=2) == pytest.approx(expect, abs=1e-9)


# ---------------------------------------------------------------------------------------------------- SSIM
def ssim_scipy(x, y):
    """Wang et al.'s ssim_index written out: 2-D window from its formula, scipy 'valid' convolution."""
    r = np.arange(-5, 6)
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    w /= w.sum()
    f = lambda t: convolve2d(t, w, mode="valid")  # noqa: E731 (w is symmetric: convolution = correlation)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    return (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean()


SK = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_matches_skimage_and_scipy(crop):
    hr = rand_u8(45, 38, 3)
    sr = noisy(hr, 20)
    sl = np.s_[crop:hr.shape[0] - crop, crop:hr.shape[1] - crop]
    ys, yh = y_bt601(sr)[sl], y_bt601(hr)[sl]
    ours = M.ssim(sr, hr, crop=crop)
    assert ours == pytest.approx(structural_similarity(ys, yh, **SK), abs=1e-7)
    assert ours == pytest.approx(ssim_scipy(ys, yh), abs=1e-10)
    ours_rgb = M.ssim(sr, hr, crop=crop, y_only=False)
    s, h = sr[sl].astype(float), hr[sl].astype(float)
    assert ours_rgb == pytest.approx(structural_similarity(s, h, channel_axis=-1, **SK), abs=1e-7)
    assert ours_rgb == pytest.approx(np.mean([ssim_scipy(s[..., c], h[..., c]) for c in range(3)]), abs=1e-10)
    assert 0.0 < ours < 1.0


def test_ssim_identical_is_one_and_window():
    a = rand_u8(20, 20, 3)
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    g = M.gaussian_window()
    r = np.arange(-5, 6)
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.5)
    np.testing.assert_allclose(np.outer(g, g), w / w.sum(), rtol=0, atol=1e-15)


# ------------------------------------------------------------------------------------------------ protocol
def test_protocol_strings():
    assert M.protocol(2) == "Y-BT601/shave=2/uint8/MATLAB-BI"
    assert M.protocol(4, y_only=False) == "RGB/shave=4/uint8/MATLAB-BI"
    assert M.protocol(4, ntire=True) == "RGB/shave=10/uint8/MATLAB-BI/NTIRE-DIV2K-val"
    assert M.protocol(4, degradation="PIL-BI") == "Y-BT601/shave=4/uint8/PIL-BI"
    assert M.PROTOCOL == "Y-BT601/shave=s/uint8/MATLAB-BI"
    for bad in (0, 2.0, True, "4"):
        with pytest.raises(ValueError, match="scale"):
            M.protocol(bad)


# --------------------------------------------------------------------------------------------------- torch
def quantise_np(t):
    """[0, 1] float NCHW tensor -> list of uint8 HxWx3 (or HxW) arrays, half up, by NumPy."""
    a = np.floor(np.clip(t.double().numpy(), 0, 1) * 255 + 0.5).astype(np.uint8)
    return [np.moveaxis(x, 0, -1).squeeze(-1) if x.shape[0] == 1 else np.moveaxis(x, 0, -1) for x in a]


@pytest.mark.parametrize("channels,y_only,crop", [(3, True, 2), (3, False, 0), (1, True, 3)])
def test_torch_metrics_equal_numpy(channels, y_only, crop):
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(3, channels, 24, 28, generator=g)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=g)).float()  # leaves [0, 1]: clamped inside
    p = M.psnr_torch(sr, hr, crop=crop, y_only=y_only)
    s = M.ssim_torch(sr, hr, crop=crop, y_only=y_only)
    assert p.shape == (3,) and p.dtype == torch.float64 and s.shape == (3,)
    for i, (a, b) in enumerate(zip(quantise_np(sr), quantise_np(hr))):
        assert p[i].item() == pytest.approx(M.psnr(a, b, crop=crop, y_only=y_only), abs=1e-6)
        assert s[i].item() == pytest.approx(M.ssim(a, b, crop=crop, y_only=y_only), abs=1e-9)


def test_torch_quantisation_rounds_ties_up_and_inf_when_equal():
    k = torch.arange(0, 254, dtype=torch.float64)
    tie = ((k + 0.5) / 255).view(1, 1, 1, -1).expand(1, 3, 12, -1)  # x*255 is exactly k + 0.5
    up = ((k + 1) / 255).view(1, 1, 1, -1).expand(1, 3, 12, -1)
    even = (torch.round(k + 0.5) / 255).view(1, 1, 1, -1).expand(1, 3, 12, -1)
    assert M.psnr_torch(tie, up).item() == math.inf
    assert math.isfinite(M.psnr_torch(tie, even).item())


def test_torch_errors():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(TypeError, match="float"):
        M.psnr_torch((x * 255).to(torch.uint8), x)
    with pytest.raises(ValueError, match="batch axis"):
        M.psnr_torch(x[0], x[0])
    with pytest.raises(ValueError, match="never resize"):
        M.psnr_torch(x[..., :15], x)
    with pytest.raises(ValueError, match="NaN"):
        M.psnr_torch(x * float("nan"), x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        M.ssim_torch(np.zeros((1, 3, 16, 16)), x)


# --------------------------------------------------------------------------------- published bicubic (golden)
def test_set5_bicubic_baseline():
    """Set5 bicubic: MATLAB-made uint8 LR, MATLAB bicubic up, rounded, Y-PSNR with shave = scale.

    Published 33.66 / 30.39 / 28.42 dB, SSIM x4 0.8111 [sr-protocol.md §2.3]. Needs the five HR PNGs,
    which srlearn never ships or downloads: point SRLEARN_SET5_DIR at a folder holding them.
    """
    folder = os.environ.get("SRLEARN_SET5_DIR")
    if not folder:
        pytest.skip("SRLEARN_SET5_DIR is not set (a folder with the 5 Set5 HR PNGs; srlearn ships no benchmark images)")
    from srlearn.data.images import load_image, modcrop
    from srlearn.data.resize import imresize

    files = sorted(Path(folder).glob("*.png"))
    assert len(files) == 5, f"expected the 5 Set5 HR PNGs in {folder}, found {[f.name for f in files]}"
    expected = {2: 33.66, 3: 30.39, 4: 28.42}
    for s, want in expected.items():
        ps, ss = [], []
        for f in files:
            hr = modcrop(load_image(f), s)
            assert hr.dtype == np.uint8 and hr.shape[0] % s == 0 and hr.shape[1] % s == 0
            lr = imresize(hr, 1 / s, mode="uint8")
            up = imresize(lr, s, mode="float")
            sr = np.clip(np.floor(np.asarray(up, np.float64) + 0.5), 0, 255).astype(np.uint8)
            ps.append(M.psnr(sr, hr, crop=s))
            ss.append(M.ssim(sr, hr, crop=s))
        assert np.mean(ps) == pytest.approx(want, abs=0.02), (s, np.mean(ps))
        if s == 4:
            assert np.mean(ss) == pytest.approx(0.8111, abs=0.001)


def test_protocol_object_names_and_scores_like_the_functions():
    from srlearn.metrics import Protocol, protocol, psnr, ssim
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    sr_proto = Protocol(scale=2)
    assert str(sr_proto) == protocol(2) and sr_proto.shave == 2 and sr_proto.baseline == "bicubic"
    assert sr_proto.score(sr, hr) == {"psnr": psnr(sr, hr, crop=2), "ssim": ssim(sr, hr, crop=2)}
    denoise = Protocol(scale=1, crop=0, y_only=False, baseline="noisy input",
                       name="RGB/shave=0/uint8/AWGN-sigma25-clipped")
    assert denoise.shave == 0 and str(denoise) == "RGB/shave=0/uint8/AWGN-sigma25-clipped"
    assert denoise.psnr(sr, hr) == psnr(sr, hr, crop=0, y_only=False) != sr_proto.psnr(sr, hr)
    assert denoise.metric_label == "RGB PSNR (dB)" and sr_proto.metric_label == "Y-PSNR (dB)"
    assert str(Protocol(scale=1, crop=0)) == "Y-BT601/shave=0/uint8/MATLAB-BI"   # never shave=1 for crop 0
    with pytest.raises(ValueError, match="disagrees with crop=0"):
        Protocol(scale=1, crop=0, y_only=False, name="RGB/shave=1/uint8/AWGN")
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        Protocol(scale=2.5)
    with pytest.raises(ValueError, match="crop must be an integer"):
        Protocol(scale=2, crop=-1)
