"""srlearn.bench.counting: FLOP closed forms against the counter, receptive fields, sampling paths, memory;
srlearn.nn.bilinear_subpixel_weight against F.interpolate."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srlearn
from srlearn.bench import counting
from srlearn.bench.counting import (conv2d_flops, conv_transpose2d_flops, count_flops, distinct_points,
                                    measured_receptive_field, receptive_field, saved_tensor_mib, tap_path_counts,
                                    upsampler_flops)


def test_conv_flops_match_the_counter():
    conv = nn.Conv2d(5, 7, 3, padding=1)
    assert count_flops(conv, torch.zeros(1, 5, 11, 13)) == conv2d_flops(5, 7, 3, 11, 13)
    grouped = nn.Conv2d(6, 4, 3, padding=1, groups=2)
    assert count_flops(grouped, torch.zeros(1, 6, 8, 8)) == conv2d_flops(6, 4, 3, 8, 8, groups=2)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_deconv_flops_match_the_counter(k):
    p, op = srlearn.nn.deconv_padding(k, 2)
    deconv = nn.ConvTranspose2d(6, 5, k, stride=2, padding=p, output_padding=op)
    assert count_flops(deconv, torch.zeros(1, 6, 9, 10)) == conv_transpose2d_flops(6, 5, k, 9, 10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsampler_flops_match_the_package_upsamplers(scale):
    x = torch.zeros(1, 8, 6, 7)
    assert count_flops(srlearn.nn.Upsampler(scale, 8), x) == upsampler_flops("sub-pixel", scale, 8, 6, 7)
    assert count_flops(srlearn.nn.DeconvUpsampler(scale, 8), x) == upsampler_flops("deconv", scale, 8, 6, 7)
    assert count_flops(srlearn.nn.DeconvUpsampler(scale, 8, kernel_size=3), x) == \
        upsampler_flops("deconv", scale, 8, 6, 7, kernel=3)
    # the sub-pixel stage costs (k_conv / k_deconv)^2 * s^2 = 9 x a 2x2 deconvolution at x2 (C -> 4C, 3x3)
    if scale == 2:
        assert upsampler_flops("sub-pixel", 2, 8, 6, 7) == 9 * upsampler_flops("deconv", 2, 8, 6, 7)


def test_flop_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="kind"):
        upsampler_flops("bilinear", 2, 8, 4, 4)
    with pytest.raises(ValueError, match="groups"):
        conv2d_flops(5, 4, 3, 4, 4, groups=2)
    with pytest.raises(ValueError, match="positive"):
        conv2d_flops(0, 4, 3, 4, 4)


def test_receptive_field_closed_form_and_measured_agree():
    layers = [(3, 1), (3, 2), (5, 1, 2), (3, 1)]
    assert receptive_field(layers) == 1 + 2 + 2 + 4 * 2 * 2 + 2 * 2
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Conv2d(3, 3, 3, stride=2, padding=1),
                        nn.Conv2d(3, 3, 5, padding=4, dilation=2), nn.Tanh(), nn.Conv2d(3, 1, 3, padding=1))
    assert measured_receptive_field(net, (1, 2, 64, 64)) == (receptive_field(layers),) * 2
    assert next(net.parameters()).dtype == torch.float32          # restored after the float64 probe
    assert receptive_field([(3, 1)] * 7) == 15
    with pytest.raises(ValueError, match="kernel, stride"):
        receptive_field([(3,)])


def test_tap_path_counts_three_3x3_layers():
    counts = tap_path_counts(3, 3)
    assert counts.shape == (7, 7)
    assert int(counts.sum()) == 9 ** 3 == 729
    assert int(counts[3, 3]) == 49 and int(counts.max()) == 49 and int(counts[0, 0]) == 1
    assert int((counts > 0).sum()) == 49
    assert tap_path_counts(1, 3).tolist() == [[1, 1, 1]] * 3
    assert int(tap_path_counts(2, 2).sum()) == 16


def test_distinct_points():
    pts = torch.tensor([[0.0, 0.0], [0.0, 1e-5], [1.0, 0.0]])
    assert distinct_points(pts) == 2
    assert distinct_points(pts, decimals=6) == 3
    with pytest.raises(ValueError, match="N x 2"):
        distinct_points(torch.zeros(3))


def test_saved_tensor_mib_counts_what_backward_keeps():
    x = torch.randn(1, 1, 256, 256, requires_grad=True)       # 256 KiB
    assert saved_tensor_mib(lambda: (x * x).sum()) == pytest.approx(0.25)
    assert saved_tensor_mib(lambda: (x + 1).sum()) == 0.0      # addition saves nothing
    conv = nn.Conv2d(4, 8, 3, padding=1)
    y = torch.randn(2, 4, 32, 32)
    expected = (y.numel() + conv.weight.numel()) * 4 / 2 ** 20   # conv saves its input and its weight
    assert saved_tensor_mib(lambda: conv(y).sum()) == pytest.approx(expected)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bilinear_subpixel_weight_is_bilinear_interpolation(scale):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 9, 11)
    w = srlearn.nn.bilinear_subpixel_weight(3, scale)
    assert w.shape == (3 * scale * scale, 3, 3, 3)
    out = F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w), scale)
    ref = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, ref)
    # with the zero padding of srlearn.nn.Upsampler only the one-LR-pixel border differs
    up = srlearn.nn.Upsampler(2, 3)
    if scale == 2:
        with torch.no_grad():
            up[0].weight.copy_(w); up[0].bias.zero_()
        torch.testing.assert_close(up(x)[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2])
        assert not torch.allclose(up(x), ref)


def test_counting_module_is_documented():
    assert "729" in counting.__doc__ and "49" in counting.__doc__
