"""Deformable convolution v2 in pure PyTorch (srlearn.nn.deform; papers.md §4.2, sr-protocol.md §5, §8 items 22-23)."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from srlearn.nn.deform import ModulatedDeformConv2d, OffsetMaskHead, deform_conv2d, sampling_positions


# ---------------------------------------------------------------------------------------------------------
# an independent reference: torchvision's CPU kernel (deform_conv2d_kernel.cpp) transcribed as plain loops

def bilinear_tv(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """img (C, H, W) at (y, x): zero if y <= -1, y >= H, x <= -1 or x >= W; else the four neighbours, each zero
    when it falls outside (torchvision's ``bilinear_interpolate``)."""
    c, h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return img.new_zeros(c)
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    out = img.new_zeros(c)
    for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                       (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < h and 0 <= xx < w:
            out = out + wt * img[:, yy, xx]
    return out


def deform_conv2d_loop(x, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None):
    b, c, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    groups, k = c // cg, kh * kw
    g = offset.shape[1] // (2 * k)
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cpg = c // g                                   # channels per offset group
    out = x.new_zeros(b, c_out, ho, wo)
    for n in range(b):
        for oy in range(ho):
            for ox in range(wo):
                col = x.new_zeros(c, k)            # the im2col column of this output pixel
                for gi in range(g):
                    for i in range(kh):
                        for j in range(kw):
                            t = i * kw + j
                            dy = float(offset[n, gi * 2 * k + 2 * t, oy, ox])
                            dx = float(offset[n, gi * 2 * k + 2 * t + 1, oy, ox])
                            yy = oy * stride[0] - padding[0] + i * dilation[0] + dy
                            xx = ox * stride[1] - padding[1] + j * dilation[1] + dx
                            v = bilinear_tv(x[n, gi * cpg:(gi + 1) * cpg], yy, xx)
                            if mask is not None:
                                v = v * mask[n, gi * k + t, oy, ox]
                            col[gi * cpg:(gi + 1) * cpg, t] = v
                for o in range(c_out):
                    wg = o // (c_out // groups)
                    out[n, o, oy, ox] = (weight[o].reshape(cg, k) * col[wg * cg:(wg + 1) * cg]).sum()
                    if bias is not None:
                        out[n, o, oy, ox] += bias[o]
    return out


CASES = [  # (name, C_in, C_out, groups, offset groups, kernel, stride, padding, dilation, H, W)
    ("3x3", 4, 3, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1), 5, 6),
    ("stride2", 4, 2, 1, 1, (3, 3), (2, 2), (1, 1), (1, 1), 6, 7),
    ("dilation2", 2, 3, 1, 1, (3, 3), (1, 1), (2, 2), (2, 2), 6, 5),
    ("groups2-offsetgroups2", 4, 6, 2, 2, (3, 3), (1, 1), (1, 1), (1, 1), 5, 5),
    ("3x2-kernel-mixed", 4, 4, 2, 2, (3, 2), (2, 1), (1, 0), (2, 1), 7, 6),
    ("offsetgroups4-groups1", 4, 2, 1, 4, (2, 3), (1, 2), (0, 1), (1, 1), 5, 6),
]


def make_case(c_in, c_out, groups, g, kernel, stride, padding, dilation, h, w, seed=0, scale=3.0, away=True,
              dtype=torch.float64, batch=2):
    """Random tensors; offsets scaled by `scale` (many samples outside the image) with fractional parts in
    [0.2, 0.8] when `away` (bilinear sampling has kinks at integer coordinates)."""
    gen = torch.Generator().manual_seed(seed)
    kh, kw = kernel
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    x = torch.randn(batch, c_in, h, w, generator=gen, dtype=dtype)
    weight = torch.randn(c_out, c_in // groups, kh, kw, generator=gen, dtype=dtype)
    bias = torch.randn(c_out, generator=gen, dtype=dtype)
    whole = torch.floor(torch.randn(batch, 2 * g * kh * kw, ho, wo, generator=gen, dtype=dtype) * scale)
    frac = 0.2 + 0.6 * torch.rand(whole.shape, generator=gen, dtype=dtype) if away else \
        torch.rand(whole.shape, generator=gen, dtype=dtype)
    offset = whole + frac
    mask = torch.rand(batch, g * kh * kw, ho, wo, generator=gen, dtype=dtype)
    return x, offset, weight, bias, mask


# ---------------------------------------------------------------------------------------------------------
# special cases that must reduce to an ordinary convolution

@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (1, 1, 1, 2)])
def test_zero_offsets_unit_mask_equal_conv2d(stride, padding, dilation, groups):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 8)
    weight = torch.randn(6, 4 // groups, 3, 3)
    bias = torch.randn(6)
    ho = (9 + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (8 + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = torch.zeros(2, 18, ho, wo)
    ref = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, bias, stride, padding, dilation,
                                             mask=torch.ones(2, 9, ho, wo)), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, bias, stride, padding, dilation), ref,
                               atol=1e-5, rtol=1e-5)   # mask=None is DCNv1: same at zero offsets


def test_half_mask_halves_the_sampled_term_but_not_the_bias():
    torch.manual_seed(1)
    x, w, b = torch.randn(1, 3, 7, 7), torch.randn(5, 3, 3, 3), torch.randn(5)
    out = deform_conv2d(x, torch.zeros(1, 18, 7, 7), w, b, padding=1, mask=torch.full((1, 9, 7, 7), 0.5))
    torch.testing.assert_close(out, 0.5 * F.conv2d(x, w, None, padding=1) + b.view(1, -1, 1, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dy,dx", [(0, 1), (-1, 2), (2, -1)])
def test_integer_offsets_equal_a_shifted_convolution_in_the_interior(dy, dx):
    """Δp = (dy, dx) on every tap samples x(p + p_k + Δp): the convolution evaluated at p + Δp."""
    torch.manual_seed(2)
    x, w, b = torch.randn(2, 3, 10, 11), torch.randn(4, 3, 3, 3), torch.randn(4)
    offset = torch.tensor([float(dy), float(dx)]).repeat(9).view(1, 18, 1, 1).expand(2, 18, 10, 11)
    out = deform_conv2d(x, offset, w, b, padding=1)
    conv = F.conv2d(x, w, b, padding=1)
    h, wd = 10, 11
    ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), wd - max(0, dx))
    ys2, xs2 = slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), wd + min(0, dx))
    torch.testing.assert_close(out[..., ys, xs], conv[..., ys2, xs2], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, conv, atol=1e-3)   # and the offsets did move something


def test_offset_layout_is_interleaved_dy_dx_per_tap():
    """Only tap k = 5 (row 1, column 2 of a 3x3 kernel) moved, by Δx = +1: its channel is 2*5 + 1."""
    torch.manual_seed(3)
    x = torch.randn(1, 1, 6, 6)
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 1, 2] = 1.0                                    # the output is x(p + (0, +1)) through tap 5
    offset = torch.zeros(1, 18, 6, 6)
    offset[:, 2 * 5 + 1] = 1.0
    out = deform_conv2d(x, offset, w, padding=1)
    torch.testing.assert_close(out[0, 0, :, :-2], x[0, 0, :, 2:])
    pos = sampling_positions(offset, 3, padding=1)
    assert pos.shape == (1, 1, 9, 6, 6, 2)
    assert pos[0, 0, 5, 2, 3].tolist() == [2.0, 5.0]       # (y, x) of tap 5 at output (2, 3): (2-1+1, 3-1+2+1)


# ---------------------------------------------------------------------------------------------------------
# the general case against the loop reference

@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_mask", [True, False], ids=["dcnv2", "dcnv1"])
def test_equals_loop_reference_in_float64(case, with_mask):
    _, c_in, c_out, groups, g, kernel, stride, padding, dilation, h, w = case
    x, offset, weight, bias, mask = make_case(c_in, c_out, groups, g, kernel, stride, padding, dilation, h, w,
                                              away=False)
    mask = mask if with_mask else None
    ours = deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)
    ref = deform_conv2d_loop(x, offset, weight, bias, stride, padding, dilation, mask)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-12)


def test_samples_on_the_border_band_follow_torchvision():
    """Coordinates in (-1, 0) and (H-1, H) keep the inside neighbours; <= -1 and >= H read zero."""
    x = torch.arange(1.0, 13.0, dtype=torch.float64).view(1, 1, 3, 4)
    w = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    for dy, dx in [(-0.5, 0.0), (0.0, -0.25), (-1.0, 0.0), (0.0, -1.0), (2.5, 0.0), (3.0, 0.0), (0.0, 3.5), (0.0, 4.0),
                   (-0.999, 3.999)]:
        off = torch.tensor([dy, dx], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 3, 4).contiguous()
        ours = deform_conv2d(x, off, w)
        torch.testing.assert_close(ours, deform_conv2d_loop(x, off, w), atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", CASES[:1] + CASES[3:5], ids=[CASES[0][0], CASES[3][0], CASES[4][0]])
def test_gradcheck_input_offset_mask_weight_bias(case):
    _, c_in, c_out, groups, g, kernel, stride, padding, dilation, h, w = case
    x, offset, weight, bias, mask = make_case(c_in, c_out, groups, g, kernel, stride, padding, dilation,
                                              h=min(h, 5), w=min(w, 5), scale=1.5, batch=1)
    args = [t.requires_grad_() for t in (x, offset, weight, bias, mask)]
    fn = lambda x, o, wt, b, m: deform_conv2d(x, o, wt, b, stride, padding, dilation, m)
    assert gradcheck(fn, args, eps=1e-6, atol=1e-6)


def test_huge_offsets_read_zeros_and_never_fail():
    torch.manual_seed(4)
    x, w, b = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 3, 3), torch.randn(2)
    for value in (1e4, -1e6, 1e30, -3.0e38):
        offset = torch.full((2, 18, 5, 5), value, requires_grad=True)
        mask = torch.rand(2, 9, 5, 5, requires_grad=True)
        out = deform_conv2d(x, offset, w, b, padding=1, mask=mask)
        torch.testing.assert_close(out, b.view(1, -1, 1, 1).expand_as(out))
        out.sum().backward()
        assert torch.isfinite(offset.grad).all() and (offset.grad == 0).all()
        assert (mask.grad == 0).all()


def test_bf16_autocast_is_safe():
    torch.manual_seed(5)
    x, offset, weight, bias, mask = make_case(4, 4, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1), 12, 12, dtype=torch.float32)
    offset = offset * 10                                      # coordinates far from 0, where bf16 is coarse
    ref = deform_conv2d(x, offset, weight, bias, 1, 1, 1, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deform_conv2d(x, offset, weight, bias, 1, 1, 1, mask)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref)                      # computed in float32: autocast does not touch it
    out16 = deform_conv2d(x.bfloat16(), offset.bfloat16(), weight.bfloat16(), bias.bfloat16(), 1, 1, 1,
                          mask.bfloat16())
    assert out16.dtype == torch.bfloat16
    ref16 = deform_conv2d(*(t.bfloat16().float() for t in (x, offset, weight, bias)), 1, 1, 1, mask.bfloat16().float())
    torch.testing.assert_close(out16.float(), ref16, atol=0.05, rtol=0.02)   # only the final cast rounds


def test_bad_inputs_get_clear_errors():
    x, w = torch.randn(1, 4, 6, 6), torch.randn(2, 4, 3, 3)
    off = torch.zeros(1, 18, 6, 6)
    with pytest.raises(ValueError, match="2 \\* offset_groups"):
        deform_conv2d(x, torch.zeros(1, 17, 6, 6), w, padding=1)
    with pytest.raises(ValueError, match="H_out=6"):
        deform_conv2d(x, torch.zeros(1, 18, 5, 6), w, padding=1)
    with pytest.raises(ValueError, match="mask must be"):
        deform_conv2d(x, off, w, padding=1, mask=torch.ones(1, 18, 6, 6))
    with pytest.raises(ValueError, match="groups of 3"):
        deform_conv2d(x, off, torch.randn(2, 3, 3, 3), padding=1)
    with pytest.raises(ValueError, match="offset groups"):
        deform_conv2d(torch.randn(1, 3, 6, 6), torch.zeros(1, 36, 6, 6), torch.randn(2, 3, 3, 3), padding=1)
    with pytest.raises(ValueError, match="4-D"):
        deform_conv2d(x[0], off, w, padding=1)
    with pytest.raises(ValueError, match="bias must be"):
        deform_conv2d(x, off, w, torch.zeros(3), padding=1)
    with pytest.raises(ValueError, match="backend"):
        deform_conv2d(x, off, w, padding=1, backend="cuda")


def test_torchvision_backend_explains_itself_when_missing():
    try:
        import torchvision.ops  # noqa: F401  (only: can it be imported?)
    except Exception:
        with pytest.raises(RuntimeError, match="backend='pure'"):
            deform_conv2d(torch.randn(1, 1, 4, 4), torch.zeros(1, 18, 4, 4), torch.randn(1, 1, 3, 3), padding=1,
                          backend="torchvision")
    else:
        pytest.skip("torchvision imports here; the dispatch itself is compared in the gpu test")


# ---------------------------------------------------------------------------------------------------------
# the layer ("pack")

def test_fresh_layer_is_half_a_convolution_plus_bias():
    torch.manual_seed(6)
    layer = ModulatedDeformConv2d(4, 5, 3)
    x = torch.randn(2, 4, 7, 6)
    conv = F.conv2d(x, layer.weight, None, padding=1)
    torch.testing.assert_close(layer(x), 0.5 * conv + layer.bias.view(1, -1, 1, 1), atol=1e-5, rtol=1e-5)
    offset, mask = layer.offset_head(x)
    assert (offset == 0).all() and (mask == 0.5).all() and offset.shape == (2, 18, 7, 6)
    v1 = ModulatedDeformConv2d(4, 5, 3, modulated=False)
    v1.load_state_dict({k: v for k, v in layer.state_dict().items() if "offset_head" not in k}, strict=False)
    torch.testing.assert_close(v1(x), conv + layer.bias.view(1, -1, 1, 1), atol=1e-5, rtol=1e-5)


def test_layer_reads_offsets_from_feat_and_matches_the_operator():
    torch.manual_seed(7)
    layer = ModulatedDeformConv2d(4, 4, 3, offset_groups=2, offset_in_channels=6)
    with torch.no_grad():
        layer.offset_head.conv.weight.normal_(0, 0.3)
        layer.offset_head.conv.bias.normal_(0, 0.3)
    x, feat = torch.randn(1, 4, 6, 6), torch.randn(1, 6, 6, 6)
    offset, mask = layer.offset_head(feat)
    torch.testing.assert_close(layer(x, feat), deform_conv2d(x, offset, layer.weight, layer.bias, 1, 1, 1, mask))
    assert not torch.allclose(layer(x, feat), layer(x, feat * 0))


def test_max_offset_bounds_softly_and_equals_unbounded_for_small_offsets():
    head = OffsetMaskHead(2, 1, 3, padding=1, max_offset=4.0)
    with torch.no_grad():
        head.conv.bias.fill_(100.0)
    off, _ = head(torch.zeros(1, 2, 3, 3))
    assert off.abs().max() <= 4.0 and off.min() > 3.99
    with torch.no_grad():
        head.conv.bias.fill_(0.01)
    off, _ = head(torch.zeros(1, 2, 3, 3))
    torch.testing.assert_close(off, torch.full_like(off, 0.01), atol=1e-7, rtol=1e-6)


def test_offset_lr_mul_scales_the_head_output():
    a = OffsetMaskHead(2, 1, 3, padding=1)
    b = OffsetMaskHead(2, 1, 3, padding=1, lr_mul=0.1)
    with torch.no_grad():
        a.conv.bias.fill_(2.0)
        b.conv.bias.fill_(2.0)
    torch.testing.assert_close(b(torch.zeros(1, 2, 3, 3))[0], 0.1 * a(torch.zeros(1, 2, 3, 3))[0])


def test_warns_when_offsets_explode():
    layer = ModulatedDeformConv2d(2, 2, 3)
    x = torch.randn(1, 2, 5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x)                                              # zero offsets: silent
    with torch.no_grad():
        layer.offset_head.conv.bias[:18].fill_(60.0)
    with pytest.warns(RuntimeWarning, match="mean \\|offset\\| = 60.0"):
        layer(x)
    assert float(layer.last_offset_abs_mean) == pytest.approx(60.0)


def test_layer_bad_arguments():
    with pytest.raises(ValueError, match="offset_groups"):
        ModulatedDeformConv2d(3, 4, 3, offset_groups=2)
    with pytest.raises(ValueError, match="max_offset"):
        ModulatedDeformConv2d(4, 4, 3, max_offset=0)
    with pytest.raises(ValueError, match="kernel_size"):
        ModulatedDeformConv2d(4, 4, "3")


# ---------------------------------------------------------------------------------------------------------
# torchvision's kernel, where a GPU and torchvision exist (sr-protocol.md §8 item 22)

def _torchvision_ops_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the torchvision comparison runs on a GPU machine")
    try:
        from torchvision.ops import deform_conv2d as tv
    except Exception as e:   # noqa: BLE001 - a broken torchvision raises RuntimeError/OSError too
        pytest.skip(f"torchvision is not importable here ({type(e).__name__}: {e})")
    return tv


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_mask", [True, False], ids=["dcnv2", "dcnv1"])
def test_equals_torchvision_forward_and_all_gradients_float64(case, with_mask):
    tv = _torchvision_ops_or_skip()
    _, c_in, c_out, groups, g, kernel, stride, padding, dilation, h, w = case
    tensors = make_case(c_in, c_out, groups, g, kernel, stride, padding, dilation, h, w, away=True)
    results = {}
    for name, fn in (("pure", deform_conv2d), ("torchvision", tv)):
        x, offset, weight, bias, mask = (t.cuda().requires_grad_() for t in tensors)
        m = mask if with_mask else None
        out = fn(x, offset, weight, bias, stride, padding, dilation, m)
        gout = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)
        out.backward(gout)
        results[name] = [out] + [t.grad for t in (x, offset, weight, bias)] + ([mask.grad] if with_mask else [])
    names = ["out", "input", "offset", "weight", "bias", "mask"]
    for a, b, what in zip(results["pure"], results["torchvision"], names):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, msg=lambda m, what=what: f"{what}: {m}")
    out_dispatch = deform_conv2d(*(t.cuda() for t in tensors[:4]), stride, padding, dilation,
                                 tensors[4].cuda() if with_mask else None, backend="torchvision")
    torch.testing.assert_close(out_dispatch, results["torchvision"][0])
