"""Dense blocks (srlearn.nn.dense) and deconvolution up-sampling (srlearn.nn.upsample)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srlearn.nn.common as common
from srlearn.nn.dense import DenseBlock, DenseLayer, ResBlock, concat_sources, mean_abs_by_source
from srlearn.nn.upsample import DeconvUpsampler, deconv_padding, init_deconv_, overlap_counts


def conv_params(cin, cout, k=3):
    return cin * cout * k * k + cout


def layer_inputs(block: DenseBlock, x: torch.Tensor) -> list[int]:
    """Channels each layer's convolution actually received (forward pre-hooks)."""
    seen = []
    hooks = [layer.conv.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1])) for layer in block.layers]
    try:
        block(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


# ------------------------------------------------------------------------------------------ dense block
@pytest.mark.parametrize("kw, ins, out", [
    ({}, [20, 5, 10, 15], 20),                                   # SRDenseNet: input feeds layer 1 only
    ({"keep_input": True}, [20, 25, 30, 35], 40),                # DenseNet: input everywhere and in the output
    ({"connectivity": "chain"}, [20, 5, 5, 5], 5),               # plain: no concatenation at all
])
def test_channel_growth(kw, ins, out):
    block = DenseBlock(20, growth=5, n_layers=4, **kw)
    x = torch.randn(2, 20, 7, 9)
    assert block.layer_in_channels == ins
    assert layer_inputs(block, x) == ins                 # what the convolutions really saw
    assert block.out_channels == out and block(x).shape == (2, out, 7, 9)


def test_srdensenet_block_matches_an_explicit_concatenation():
    # independent formulation, written out as the Lornatang reimplementation does: out_l = relu(conv_l(cat(out_1..out_{l-1})))
    torch.manual_seed(0)
    block = DenseBlock(12, growth=4, n_layers=5)
    x = torch.randn(2, 12, 6, 6)
    convs = [layer.conv for layer in block.layers]
    outs = [torch.relu(convs[0](x))]
    for conv in convs[1:]:
        outs.append(torch.relu(conv(torch.cat(outs, 1))))
    torch.testing.assert_close(block(x), torch.cat(outs, 1))
    # keep_input: DenseNet's x_l = H([x_0, ..., x_{l-1}]), output [x_0, ..., x_L]
    dn = DenseBlock(12, growth=4, n_layers=3, keep_input=True)
    feats = [x]
    for layer in dn.layers:
        feats.append(torch.relu(layer.conv(torch.cat(feats, 1))))
    torch.testing.assert_close(dn(x), torch.cat(feats, 1))


def test_block_output_slices_are_the_layer_outputs():
    torch.manual_seed(1)
    block = DenseBlock(8, growth=3, n_layers=4)
    x = torch.randn(1, 8, 5, 5)
    outs = []
    hooks = [layer.register_forward_hook(lambda m, a, o: outs.append(o.clone())) for layer in block.layers]
    y = block(x)
    for h in hooks:
        h.remove()
    for l, o in enumerate(outs):
        torch.testing.assert_close(y[:, 3 * l:3 * (l + 1)], o)


def test_parameter_count_of_the_paper_block():
    # SRDenseNet block: 128 -> 16, then 16·(l-1) -> 16 for l = 2..8  (papers.md §2.1)
    expected = conv_params(128, 16) + sum(conv_params(16 * (l - 1), 16) for l in range(2, 9))
    assert sum(p.numel() for p in DenseBlock(128, 16, 8).parameters()) == expected == 83_072
    # the residual block of the same width, for comparison: two 3x3 128 -> 128 convolutions
    assert sum(p.numel() for p in ResBlock(128).parameters()) == 2 * conv_params(128, 128) == 295_168


def test_residual_block_is_the_one_in_common():
    assert ResBlock is common.ResBlock


def test_gradcheck_float64():
    torch.manual_seed(0)
    block = DenseBlock(3, growth=2, n_layers=3).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


def test_bf16_autocast_and_odd_sizes():
    block = DenseBlock(6, growth=4, n_layers=3)
    x = torch.randn(1, 6, 5, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert y.shape == (1, 12, 5, 7) and torch.isfinite(y.float()).all()


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="connectivity"):
        DenseBlock(4, connectivity="residual")
    with pytest.raises(ValueError, match="keep_input"):
        DenseBlock(4, keep_input=True, connectivity="chain")
    with pytest.raises(ValueError, match="growth"):
        DenseBlock(4, growth=0)
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        DenseBlock(4, growth=2, n_layers=2)(torch.randn(1, 5, 3, 3))


def test_concat_sources_and_mean_abs_by_source():
    a, b = torch.randn(1, 2, 3, 3), torch.randn(1, 3, 3, 3)
    assert concat_sources([a, b], [1]) is b
    torch.testing.assert_close(concat_sources([a, b], [1, 0]), torch.cat([b, a], 1))
    w = torch.zeros(4, 5, 3, 3)
    w[:, :2] = 1.0
    w[:, 2:] = -3.0
    torch.testing.assert_close(mean_abs_by_source(w, [2, 3]), torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match="sum to 4"):
        mean_abs_by_source(w, [2, 2])


def test_feature_reuse_matrix():
    torch.manual_seed(0)
    block = DenseBlock(6, growth=2, n_layers=4)
    m = block.feature_reuse()
    assert m.shape == (4, 5)
    for l in range(1, 5):
        connected = ~torch.isnan(m[l - 1])
        assert connected.nonzero().flatten().tolist() == block.sources[l]
    w3 = block.layers[2].conv.weight            # layer 3 sees layers 1 and 2, 2 channels each
    assert m[2, 1].item() == pytest.approx(w3[:, :2].abs().mean().item())
    assert m[2, 2].item() == pytest.approx(w3[:, 2:].abs().mean().item())


def test_dense_layer_is_conv_then_relu():
    torch.manual_seed(0)
    layer = DenseLayer(3, 5)
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(layer(x), torch.relu(F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)))


# ----------------------------------------------------------------------------------------- deconvolution
@pytest.mark.parametrize("s", [2, 3])
@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_deconv_padding_gives_exactly_s_times_the_size(k, s):
    if k < s:
        with pytest.raises(ValueError, match="holes"):
            deconv_padding(k, s)
        return
    p, op = deconv_padding(k, s)
    assert 0 <= op < s
    y = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)(torch.randn(1, 1, 5, 7))
    assert y.shape[-2:] == (5 * s, 7 * s)


def test_deconv_padding_known_values():
    assert [deconv_padding(k, 2) for k in (2, 3, 4)] == [(0, 0), (1, 1), (1, 0)]   # k=3 is yjn870's layer


def test_overlap_counts_even_and_uneven():
    assert (overlap_counts(2, 2) == 1).all()                       # no overlap at all
    inner4 = overlap_counts(4, 2, size=8)[2:-2, 2:-2]
    assert (inner4 == 4).all()                                    # (k/s)^2 everywhere: even
    inner3 = overlap_counts(3, 2, size=8)[2:-2, 2:-2]
    assert set(inner3.unique().tolist()) == {1, 2, 4}             # the checkerboard
    assert torch.equal(inner3[2:], inner3[:-2]) and torch.equal(inner3[:, 2:], inner3[:, :-2])   # period 2
    assert inner3[0, 0] != inner3[0, 1]                           # neighbours differ


def test_two_by_two_deconvolution_is_a_1x1_conv_then_pixel_shuffle():
    torch.manual_seed(0)
    c_in, c_out = 3, 2
    deconv = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
    x = torch.randn(1, c_in, 4, 5)
    # weight (c_in, c_out, 2, 2) -> a 1x1 conv to c_out*4 channels ordered (c_out, i, j), as PixelShuffle reads them
    w = deconv.weight.permute(1, 2, 3, 0).reshape(c_out * 4, c_in, 1, 1)
    b = deconv.bias.repeat_interleave(4)
    torch.testing.assert_close(deconv(x), F.pixel_shuffle(F.conv2d(x, w, b), 2))


def test_init_uses_the_true_fan_in():
    torch.manual_seed(0)
    m = init_deconv_(nn.ConvTranspose2d(64, 128, 2, stride=2))
    # true fan-in: 64 channels x (2/2)^2 taps = 64, gain sqrt(2)
    assert m.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.05)
    assert (m.bias == 0).all()
    # torch's kaiming_normal_ reads fan-in from dim 1 (C_out · k² = 512 here): half our std
    ref = nn.ConvTranspose2d(64, 128, 2, stride=2)
    nn.init.kaiming_normal_(ref.weight, nonlinearity="relu")
    assert ref.weight.std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.05)
    # it preserves the second moment of a ReLU'd signal (what Kaiming init is for)
    x = torch.relu(torch.randn(8, 64, 16, 16))
    y = init_deconv_(nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1))(x)
    inner = y[..., 2:-2, 2:-2]
    assert (inner ** 2).mean().item() == pytest.approx(2 * (x ** 2).mean().item(), rel=0.15)


@pytest.mark.parametrize("scale, stages", [(1, 0), (2, 1), (3, 1), (4, 2), (8, 3)])
def test_deconv_upsampler_shapes(scale, stages):
    up = DeconvUpsampler(scale, 6)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in up) == stages
    assert sum(isinstance(m, nn.ReLU) for m in up) == stages
    assert up(torch.randn(2, 6, 5, 3)).shape == (2, 6, 5 * scale, 3 * scale)
    assert not any(isinstance(m, nn.ReLU) for m in DeconvUpsampler(scale, 6, act=False))


def test_deconv_upsampler_kernel_and_errors():
    up = DeconvUpsampler(4, 4, kernel_size=3)
    assert [m.kernel_size for m in up if isinstance(m, nn.ConvTranspose2d)] == [(3, 3), (3, 3)]
    assert up(torch.randn(1, 4, 6, 6)).shape == (1, 4, 24, 24)
    with pytest.raises(ValueError, match="holes"):
        DeconvUpsampler(3, 4, kernel_size=2)
    with pytest.raises(ValueError, match="scale"):
        DeconvUpsampler(0, 4)
