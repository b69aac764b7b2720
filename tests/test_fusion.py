"""MIRNet's blocks: anti-aliased down-sampling, residual resizing, SKFF (and its two baselines), spatial and
channel attention, DAU, MRB and RRG (srlearn.nn.fusion, .attention, .groups, .resize)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlearn.nn import (DAU, MRB, RRG, SE, SKFF, BlurDownsample, ChannelAttention, ConcatFusion, ResidualDownsample,
                        ResidualUpsample, SpatialAttention, SumFusion, binomial_kernel, count_parameters, fusion_layer,
                        resize_down, resize_up)



def _randomise(module, scale=0.3, seed=0):
    """Move every parameter away from its init (PReLU slopes included), so that sharing or
    ordering mistakes cannot hide behind identical initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


# ------------------------------------------------------------------------------ anti-aliasing kernel
def test_binomial_kernel_is_the_normalised_pascal_outer_product():
    k3 = binomial_kernel(3, torch.float64)
    torch.testing.assert_close(k3, torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float64) / 16)
    k5 = binomial_kernel(5, torch.float64)
    row = torch.tensor([1., 4, 6, 4, 1], dtype=torch.float64) / 16
    torch.testing.assert_close(k5, row[:, None] * row[None, :])
    for n in (1, 2, 3, 4, 5, 7):
        assert abs(binomial_kernel(n, torch.float64).sum().item() - 1) < 1e-12
    with pytest.raises(ValueError, match="positive integer"):
        binomial_kernel(0)


def test_binomial_kernel_blocks_the_nyquist_frequency():
    # a (-1)^(i+j) checkerboard is the highest frequency a grid holds; [1,2,1]/4 sums it to 0
    i, j = np.mgrid[0:12, 0:12]
    cb = torch.tensor((-1.0) ** (i + j))[None, None]
    out = F.conv2d(cb, binomial_kernel(3, torch.float64)[None, None])
    assert out.abs().max() < 1e-12
    box = torch.full((1, 1, 3, 3), 1 / 9, dtype=torch.float64)       # a box blur does not
    assert F.conv2d(cb, box).abs().max() > 0.1


def _blur_down_reference(x: np.ndarray) -> np.ndarray:
    """Independent NumPy formulation: symmetric reflect pad by 1, 3x3 [1,2,1]x[1,2,1]/16, every 2nd pixel."""
    w = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    h, wd = x.shape[-2:]
    out = np.zeros(x.shape[:2] + ((h + 1) // 2, (wd + 1) // 2))
    for r in range(out.shape[-2]):
        for c in range(out.shape[-1]):
            out[..., r, c] = (p[..., 2 * r:2 * r + 3, 2 * c:2 * c + 3] * w).sum(axis=(-2, -1))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 2, 7, 9), (1, 1, 2, 3)])
def test_blur_downsample_equals_the_explicit_formula_and_halves_odd_sizes_up(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    out = BlurDownsample(shape[1])(x)
    assert out.shape[-2:] == ((shape[2] + 1) // 2, (shape[3] + 1) // 2)
    np.testing.assert_allclose(out.numpy(), _blur_down_reference(x.numpy()), atol=1e-12)


def test_blur_downsample_has_no_parameters_and_rejects_bad_input():
    m = BlurDownsample(4)
    assert count_parameters(m) == 0 and "kernel" in dict(m.named_buffers())
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        m(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="reflect padding"):
        m(torch.zeros(1, 4, 1, 8))


def test_blur_before_stride_removes_the_alias_of_a_nyquist_grating():
    # stride-2 sampling of a (-1)^(i+j) grating keeps only the +1 samples: a flat grey that is not there
    # (aliasing); blurring first leaves ~0 (the true local mean). Interior only (reflect padding at edges).
    i, j = np.mgrid[0:16, 0:16]
    x = torch.tensor((-1.0) ** (i + j), dtype=torch.float32)[None, None]
    naive = x[..., ::2, ::2]
    blurred = BlurDownsample(1)(x)
    assert naive.abs().min() == 1.0
    assert blurred[..., 1:-1, 1:-1].abs().max() < 1e-6


# ------------------------------------------------------------------------------ residual resizing
def test_residual_resizing_shapes_and_parameter_counts():
    c = 8
    down, up = ResidualDownsample(c), ResidualUpsample(c)
    assert down(torch.randn(2, c, 12, 10)).shape == (2, 2 * c, 6, 5)
    assert up(torch.randn(2, c, 6, 5)).shape == (2, c // 2, 12, 10)
    # Down: 1x1 C^2 + 3x3 9C^2 + 1x1 2C^2 (top) + 1x1 2C^2 (bottom) + 2 PReLU slopes
    assert count_parameters(down) == 14 * c * c + 2
    # Up: 1x1 C^2 + transposed 3x3 9C^2 + 1x1 C^2/2 (top) + 1x1 C^2/2 (bottom) + 2 PReLU slopes
    assert count_parameters(up) == 11 * c * c + 2
    x = torch.randn(1, 4, 16, 12)
    assert resize_down(4, 4)(x).shape == (1, 16, 4, 3)
    assert resize_up(16, 4)(torch.randn(1, 16, 4, 3)).shape == (1, 4, 16, 12)
    assert len(resize_down(4, 8)) == 3


def test_resizing_errors():
    with pytest.raises(ValueError, match="power of two"):
        resize_down(8, 3)
    with pytest.raises(ValueError, match="multiple of 4"):
        resize_up(6, 4)
    with pytest.raises(ValueError, match="even"):
        ResidualUpsample(5)


def test_residual_downsample_equals_its_two_branch_formula():
    torch.manual_seed(0)
    m = _randomise(ResidualDownsample(4).double())
    x = torch.randn(1, 4, 10, 8, dtype=torch.float64)
    t = m.top
    blur = lambda v: torch.from_numpy(_blur_down_reference(v.detach().numpy()))   # noqa: E731
    top = F.conv2d(blur(F.prelu(F.conv2d(F.prelu(F.conv2d(x, t[0].weight), t[1].weight), t[2].weight, padding=1),
                                t[3].weight)), t[5].weight)
    bot = F.conv2d(blur(x), m.bot[1].weight)
    torch.testing.assert_close(m(x), top + bot)


def test_residual_upsample_equals_its_two_branch_formula():
    m = _randomise(ResidualUpsample(4).double())
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    t = m.top
    top = F.conv2d(F.prelu(F.conv_transpose2d(F.prelu(F.conv2d(x, t[0].weight), t[1].weight), t[2].weight,
                                              stride=2, padding=1, output_padding=1), t[3].weight), t[4].weight)
    bot = F.conv2d(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), m.bot[1].weight)
    torch.testing.assert_close(m(x), top + bot)


# ------------------------------------------------------------------------------ SKFF
def _skff_reference(m: SKFF, streams):
    """Independent formulation with explicit loops over images, channels and streams."""
    b, c = streams[0].shape[:2]
    wd = m.conv_du[0].weight[:, :, 0, 0]                       # (d, C)
    slope = m.conv_du[1].weight
    out = torch.zeros_like(streams[0])
    weights = torch.zeros(b, len(streams), c, dtype=streams[0].dtype)
    for i in range(b):
        s = sum(L[i] for L in streams).mean(dim=(1, 2))        # GAP of the sum, (C,)
        z = wd @ s
        z = torch.where(z >= 0, z, slope * z)                   # PReLU
        v = torch.stack([fc.weight[:, :, 0, 0] @ z for fc in m.fcs])   # (K, C)
        for ch in range(c):
            e = torch.exp(v[:, ch] - v[:, ch].max())
            a = e / e.sum()
            weights[i, :, ch] = a
            out[i, ch] = sum(a[k] * streams[k][i, ch] for k in range(len(streams)))
    return out, weights


def test_skff_equals_an_explicit_loop_and_its_weights_sum_to_one_per_channel():
    torch.manual_seed(1)
    m = _randomise(SKFF(16, 3).double(), scale=1.0)
    streams = [torch.randn(2, 16, 5, 6, dtype=torch.float64) * (k + 1) for k in range(3)]
    out = m(streams)
    ref, ref_w = _skff_reference(m, streams)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(m.last_weights, ref_w)
    assert m.last_weights.shape == (2, 3, 16)
    torch.testing.assert_close(m.last_weights.sum(dim=1), torch.ones(2, 16, dtype=torch.float64))
    assert (m.last_weights > 0).all()
    assert m.last_descriptor.shape == (2, 16)


def test_skff_passes_identical_streams_through_unchanged():
    m = _randomise(SKFF(8, 3), scale=2.0)
    x = torch.randn(2, 8, 6, 4)
    torch.testing.assert_close(m([x, x.clone(), x.clone()]), x)
    # and it really selects: different streams get different, non-uniform weights
    m([x, 3 * x, -x])
    assert (m.last_weights - 1 / 3).abs().max() > 1e-3


def test_skff_vs_concat_parameter_counts_at_64_channels():
    skff, concat, plain = SKFF(64, 3), ConcatFusion(64, 3), SumFusion(64, 3)
    d = max(64 // 8, 4)
    assert skff.hidden == d == 8
    assert count_parameters(skff) == 64 * d + 3 * d * 64 + 1 == 2049
    assert count_parameters(concat) == 3 * 64 * 64 == 12288
    assert count_parameters(plain) == 0
    assert 5.9 < count_parameters(concat) / count_parameters(skff) < 6.1      # the paper's "6x fewer"
    assert SKFF(16, 3).hidden == 4                                            # d = max(C/8, 4)


def test_sum_and_concat_fusion_formulas():
    xs = [torch.randn(1, 4, 3, 3) for _ in range(3)]
    torch.testing.assert_close(SumFusion(4)(xs), xs[0] + xs[1] + xs[2])
    cf = ConcatFusion(4)
    w = cf.conv.weight[:, :, 0, 0]
    expected = sum(torch.einsum("oc,bchw->bohw", w[:, 4 * k:4 * k + 4], xs[k]) for k in range(3))
    torch.testing.assert_close(cf(xs), expected)
    assert isinstance(fusion_layer("SKFF", 8), SKFF)
    with pytest.raises(ValueError, match="unknown fusion"):
        fusion_layer("max", 8)


def test_fusion_rejects_bad_inputs():
    m = SKFF(8, 3)
    x = torch.randn(1, 8, 4, 4)
    with pytest.raises(ValueError, match="list of 3"):
        m([x, x])
    with pytest.raises(ValueError, match="list of 3"):
        m(torch.stack([x, x, x]))
    with pytest.raises(ValueError, match="one shape"):
        m([x, x, torch.randn(1, 8, 2, 2)])
    with pytest.raises(ValueError, match="one shape"):
        ConcatFusion(4)([x, x, x])


def test_skff_gradcheck():
    m = _randomise(SKFF(4, 2).double(), scale=1.0)
    a = torch.randn(1, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, v: m([u, v]), (a, b))


# ------------------------------------------------------------------------------ attention and DAU
def test_spatial_attention_formula_and_map():
    m = _randomise(SpatialAttention(5).double(), scale=1.0)
    assert count_parameters(m) == 50
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    pooled = torch.stack([x.max(dim=1).values, x.mean(dim=1)], dim=1)
    gate = torch.sigmoid(F.conv2d(pooled, m.conv.weight, padding=2))
    torch.testing.assert_close(m(x), x * gate)
    assert m.last_map.shape == (2, 1, 7, 5) and ((m.last_map > 0) & (m.last_map < 1)).all()


def test_channel_attention_is_the_package_se_without_biases():
    ca = ChannelAttention(32, 8)
    assert isinstance(ca, SE)
    assert count_parameters(ca) == 2 * 32 * 4                      # W1, W2 only
    assert count_parameters(ChannelAttention(32, 8, bias=True)) == count_parameters(SE(32, 8)) == 2 * 32 * 4 + 4 + 32
    se = SE(32, 8)                                                 # SE with zeroed biases computes the same
    with torch.no_grad():
        se.conv_du[0].weight.copy_(ca.conv_du[0].weight)
        se.conv_du[2].weight.copy_(ca.conv_du[2].weight)
        se.conv_du[0].bias.zero_()
        se.conv_du[2].bias.zero_()
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(ca(x), se(x))
    assert ca.last_weights.shape == (2, 32)


def test_dau_formula_shapes_and_count():
    torch.manual_seed(0)
    c = 16
    m = _randomise(DAU(c).double())
    x = torch.randn(2, c, 6, 6, dtype=torch.float64)
    body = F.conv2d(F.prelu(F.conv2d(x, m.body[0].weight, padding=1), m.body[1].weight), m.body[2].weight, padding=1)
    pooled = torch.stack([body.max(dim=1).values, body.mean(dim=1)], dim=1)
    sa = body * torch.sigmoid(F.conv2d(pooled, m.sa.conv.weight, padding=2))
    w = torch.sigmoid(F.conv2d(F.relu(F.conv2d(body.mean(dim=(2, 3), keepdim=True), m.ca.conv_du[0].weight)),
                               m.ca.conv_du[2].weight))
    expected = x + F.conv2d(torch.cat([sa, body * w], dim=1), m.conv1x1.weight)
    torch.testing.assert_close(m(x), expected)
    # body 2 x 9C^2 + 1 PReLU, SA 50, CA 2 x C^2/8, merge 2C^2
    assert count_parameters(DAU(c)) == 18 * c * c + 1 + 50 + 2 * c * c // 8 + 2 * c * c
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\)"):
        m(torch.zeros(1, 8, 4, 4, dtype=torch.float64))


def test_daus_can_share_one_prelu():
    act = torch.nn.PReLU()
    a, b = DAU(8, act=act), DAU(8, act=act)
    both = torch.nn.ModuleList([a, b])
    assert count_parameters(both) == count_parameters(a) + count_parameters(b) - 1


# ------------------------------------------------------------------------------ MRB and RRG
def _mrb_reference(m: MRB, x):
    """The MRB schedule written out for height 3, width 2, from the paper's description (papers.md §3.2)."""
    f0, f1, _ = m.feats
    s0 = m.dau(0, 0)(x)
    s1 = m.dau(1, 0)(m.down[f"{f0}_x2"](s0))
    s2 = m.dau(2, 0)(m.down[f"{f1}_x2"](s1))
    t0 = m.fuse[0]([s0, m.up[f"{f1}_x2"](s1), m.up[f"{4 * f0}_x4"](s2)])
    t1 = m.fuse[1]([m.down[f"{f0}_x2"](s0), s1, m.up[f"{4 * f0}_x2"](s2)])
    t2 = m.fuse[2]([m.down[f"{f0}_x4"](s0), m.down[f"{f1}_x2"](s1), s2])
    s0, s1, s2 = m.dau(0, 1)(t0), m.dau(1, 1)(t1), m.dau(2, 1)(t2)
    out = m.fuse[0]([s0, m.last_up[1](s1), m.last_up[2](s2)])
    return x + m.conv_out(out)


@pytest.mark.parametrize("share", [True, False])
def test_mrb_follows_the_published_schedule(share):
    torch.manual_seed(0)
    m = _randomise(MRB(8, height=3, width=2, share_dau_weights=share).double(), scale=0.1)
    x = torch.randn(1, 8, 8, 12, dtype=torch.float64)
    torch.testing.assert_close(m(x), _mrb_reference(m, x))
    assert (m.dau(1, 0) is m.dau(1, 1)) == share


@pytest.mark.parametrize("height,width", [(1, 1), (1, 2), (2, 2), (3, 1), (3, 3)])
@pytest.mark.parametrize("fusion", ["skff", "sum", "concat"])
def test_mrb_shapes(height, width, fusion):
    m = MRB(8, height=height, width=width, fusion=fusion)
    x = torch.randn(2, 8, 8, 4)
    assert m(x).shape == x.shape
    assert len(m.fuse) == height and len(m.last_up) == height


def test_mrb_resampler_layout_and_sharing_counts():
    m = MRB(8, height=3, width=2)
    assert sorted(m.down) == ["16_x2", "8_x2", "8_x4"] and sorted(m.up) == ["16_x2", "32_x2", "32_x4"]
    unshared = MRB(8, height=3, width=2, share_dau_weights=False)
    extra = sum(count_parameters(DAU(c)) for c in (8, 16, 32))
    assert count_parameters(unshared) - count_parameters(m) == extra


def test_mrb_rejects_sizes_that_are_not_multiples_of_its_levels():
    with pytest.raises(ValueError, match="multiples of 4"):
        MRB(8, height=3)(torch.randn(1, 8, 10, 8))
    assert MRB(8, height=2)(torch.randn(1, 8, 10, 6)).shape == (1, 8, 10, 6)
    with pytest.raises(ValueError, match="positive integer"):
        MRB(8, height=0)


def test_rrg_is_residual_around_its_mrbs():
    g = RRG(8, n_mrb=2, height=2)
    x = torch.randn(1, 8, 8, 8)
    torch.testing.assert_close(g(x), x + g.body(x))
    assert len(g.body) == 3


def test_mrb_runs_under_bf16_autocast():
    torch.manual_seed(0)
    m = MRB(8, height=3)
    x = torch.randn(1, 8, 16, 16)
    ref = m(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() / ref.abs().max() < 0.05
