"""First- and second-order channel attention: srlearn.nn.attention (papers.md §1.2, §1.7; sr-protocol.md §6, §8.21/24/25)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from srlearn.nn.attention import SE, SOCA, channel_attention, covariance_pool, sqrtm_newton_schulz


# ---------------------------------------------------------------- independent references (written here)

def cov_explicit(x: torch.Tensor) -> torch.Tensor:
    """Σ = X Ī Xᵀ with the M×M matrix Ī = (I − 11ᵀ/M)/M, as the official Covpool writes it."""
    b, c = x.shape[:2]
    X = x.reshape(b, c, -1)
    m = X.shape[-1]
    i_bar = (torch.eye(m, dtype=x.dtype) - torch.full((m, m), 1.0 / m, dtype=x.dtype)) / m
    return X @ i_bar @ X.transpose(1, 2)


def ns_recurrence_numpy(sigma: np.ndarray, n: int) -> np.ndarray:
    """The coupled Newton–Schulz loop written out in numpy, one matrix at a time (official loop layout:
    the first step from Y0 = A, Z0 = I is unrolled, then n − 2 coupled steps, then a Y-only step)."""
    out = np.empty_like(sigma)
    for b, s in enumerate(sigma):
        eye3 = 3.0 * np.eye(s.shape[0])
        tr = np.trace(s)
        a = s / tr
        if n == 1:
            y_last = 0.5 * a @ (eye3 - a)
        else:
            t = 0.5 * (eye3 - a)
            ys, zs = [a @ t], [t]
            for i in range(1, n - 1):
                t = 0.5 * (eye3 - zs[i - 1] @ ys[i - 1])
                ys.append(ys[i - 1] @ t)
                zs.append(t @ zs[i - 1])
            y_last = 0.5 * ys[n - 2] @ (eye3 - zs[n - 2] @ ys[n - 2])
        out[b] = y_last * np.sqrt(tr)
    return out


def sqrtm_eigh(s: torch.Tensor) -> torch.Tensor:
    lam, u = torch.linalg.eigh(s)
    return u @ torch.diag_embed(lam.clamp_min(0).sqrt()) @ u.transpose(-1, -2)


def spd_with_spectrum(lams: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(lams), len(lams), generator=g, dtype=torch.float64))
    return q @ torch.diag(lams.double()) @ q.T


def features(b=2, c=16, h=12, w=12, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # ReLU'd correlated features, like a conv layer's output
    mix = torch.randn(c, c, generator=g, dtype=dtype) / c ** 0.5
    raw = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    return torch.relu(torch.einsum("dc,bchw->bdhw", mix, raw) + 0.1)


# ---------------------------------------------------------------- covariance pooling

@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 7, 6, 5), (3, 4, 1, 9)])
def test_covariance_equals_x_ibar_xt(shape):
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3 + 1.5
    got = covariance_pool(x)
    assert got.dtype == torch.float64 and got.shape == (shape[0], shape[1], shape[1])
    torch.testing.assert_close(got, cov_explicit(x), rtol=0, atol=1e-12)


def test_covariance_equals_torch_cov_biased_and_accepts_bcm():
    x = features(b=3, c=8, h=9, w=7, dtype=torch.float32)
    got = covariance_pool(x)
    for b in range(3):
        torch.testing.assert_close(got[b], torch.cov(x[b].flatten(1), correction=0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(covariance_pool(x.flatten(2)), got)


def test_covariance_is_float32_for_half_inputs():
    x = features(c=8, dtype=torch.float32)
    for dt in (torch.float16, torch.bfloat16):
        got = covariance_pool(x.to(dt))
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, covariance_pool(x.to(dt).float()))


def test_covariance_pools_a_512x512_map_without_the_hw_squared_matrix():
    # The official X·Ī·Xᵀ would allocate Ī of (512²)² floats = 275 GB and fail (or be killed); a streaming
    # pool needs ~64 MB and a fraction of a second. Finishing is the check; the cost is in `srlearn bench soca`.
    x = torch.rand(1, 64, 512, 512, generator=torch.Generator().manual_seed(0))
    got = covariance_pool(x)
    assert got.shape == (1, 64, 64) and torch.isfinite(got).all()
    torch.testing.assert_close(got[0], torch.cov(x[0].flatten(1), correction=0), rtol=1e-4, atol=1e-6)


def test_covariance_gradcheck():
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(covariance_pool, (x,))


def test_covariance_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        covariance_pool(torch.zeros(4, 4))


# ---------------------------------------------------------------- Newton–Schulz square root

def _well_conditioned(seed: int, c: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rest = 1 + 2 * torch.rand(c - 1, generator=g, dtype=torch.float64)
    smallest = 5e-3 * rest.sum() / (1 - 5e-3)          # smallest eigenvalue = 5e-3 · trace exactly
    return spd_with_spectrum(torch.cat([smallest[None], rest]), seed)


@pytest.mark.parametrize("iters", [15, 20])
def test_newton_schulz_converges_to_eigh_root(iters):
    s = torch.stack([_well_conditioned(0), _well_conditioned(1), 7.5 * _well_conditioned(2)])
    lam = torch.linalg.eigvalsh(s)
    assert (lam.min(-1).values >= 5e-3 * lam.sum(-1) * (1 - 1e-9)).all()
    got, ref = sqrtm_newton_schulz(s, iters), sqrtm_eigh(s)
    rel = torch.linalg.matrix_norm(got - ref) / torch.linalg.matrix_norm(ref)
    assert rel.max() < 1e-8, rel
    torch.testing.assert_close(got @ got, s, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("iters", [1, 2, 3, 5])
def test_newton_schulz_equals_explicit_recurrence(iters):
    s = covariance_pool(features(b=3, c=16))
    got = sqrtm_newton_schulz(s, iters)
    np.testing.assert_allclose(got.numpy(), ns_recurrence_numpy(s.numpy(), iters), rtol=1e-10, atol=1e-13)


def test_five_iterations_are_far_from_the_true_root():
    # SAN's N = 5 is a spectrum compression, not Σ^(1/2): on real-looking features the error is tens of %.
    s = covariance_pool(features(b=2, c=64, h=24, w=24))
    rel = torch.linalg.matrix_norm(sqrtm_newton_schulz(s, 5) - sqrtm_eigh(s)) / torch.linalg.matrix_norm(sqrtm_eigh(s))
    assert (rel > 0.05).all(), rel


@pytest.mark.parametrize("iters", [1, 2, 3, 4, 5])
def test_newton_schulz_gradcheck(iters):
    a = covariance_pool(features(b=2, c=4, h=3, w=3)).detach().requires_grad_(True)
    assert gradcheck(lambda m: sqrtm_newton_schulz(m, iters), (a,))


def test_newton_schulz_zero_matrix_is_finite_with_finite_gradient():
    a = torch.zeros(2, 8, 8, requires_grad=True)
    out = sqrtm_newton_schulz(a, 5)
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out)) and torch.isfinite(a.grad).all()


def test_newton_schulz_rejects_bad_arguments():
    with pytest.raises(ValueError, match="square"):
        sqrtm_newton_schulz(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="positive integer"):
        sqrtm_newton_schulz(torch.eye(3)[None], iters=0)


# ---------------------------------------------------------------- SE and SOCA

def _gate(module, z):
    """The excitation written with matrices: sigmoid(W_U relu(W_D z + b_D) + b_U)."""
    d, u = module.conv_du[0], module.conv_du[2]
    hidden = torch.relu(z @ d.weight.flatten(1).T + d.bias)
    return torch.sigmoid(hidden @ u.weight.flatten(1).T + u.bias)


def test_se_equals_matrix_formulation_and_keeps_its_weights():
    torch.manual_seed(0)
    se = SE(16, reduction=4).double()
    x = features(c=16)
    w = _gate(se, x.mean(dim=(2, 3)))
    torch.testing.assert_close(se(x), x * w[:, :, None, None], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(se.last_weights, w)
    assert not se.last_weights.requires_grad and se.last_weights.shape == (2, 16)


@pytest.mark.parametrize("iters", [3, 5])
def test_soca_equals_independent_pipeline(iters):
    torch.manual_seed(0)
    soca = SOCA(16, reduction=4, iters=iters).double()
    x = features(c=16, h=7, w=9)
    sigma = cov_explicit(x)
    z = torch.from_numpy(ns_recurrence_numpy(sigma.numpy(), iters)).mean(dim=1)
    w = _gate(soca, z)
    torch.testing.assert_close(soca(x), x * w[:, :, None, None], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(soca.last_descriptor, z, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(soca.last_weights, w, rtol=1e-10, atol=1e-12)


def test_soca_descriptor_depends_on_cross_channel_structure_se_does_not():
    # Same per-channel means, different co-variation: SE cannot tell them apart, SOCA can.
    torch.manual_seed(0)
    x = features(b=1, c=8)
    shuffled = x.clone()
    shuffled[:, 1] = x[:, 1].flatten()[torch.randperm(x[0, 1].numel())].view_as(x[:, 1])
    se, soca = SE(8, 4).double(), SOCA(8, 4).double()
    se(x); a = se.last_descriptor.clone(); se(shuffled)
    torch.testing.assert_close(se.last_descriptor, a)
    soca(x); b = soca.last_descriptor.clone(); soca(shuffled)
    assert (soca.last_descriptor - b).abs().max() > 1e-3


def test_soca_max_side_pools_the_official_central_crop():
    torch.manual_seed(0)
    full, cropped = SOCA(8, 4).double(), SOCA(8, 4, max_side=4).double()
    cropped.load_state_dict(full.state_dict())
    x = features(c=8, h=8, w=6)
    cropped(x)
    full(x[..., 2:6, 1:5])
    torch.testing.assert_close(cropped.last_descriptor, full.last_descriptor)


@pytest.mark.parametrize("cls", [SE, SOCA])
def test_attention_gradcheck(cls):
    torch.manual_seed(0)
    layer = cls(4, reduction=2).double()
    x = features(b=2, c=4, h=2, w=3).requires_grad_(True)
    assert gradcheck(layer, (x,))
    names = [n for n, _ in layer.named_parameters()]
    call = lambda *p: torch.func.functional_call(layer, dict(zip(names, p)), (x.detach(),))
    assert gradcheck(call, tuple(layer.parameters()))


@pytest.mark.parametrize("kind", ["zeros", "constant", "flat_channels", "one_flat_sample"])
def test_soca_flat_inputs_are_finite_forward_and_backward(kind):
    torch.manual_seed(0)
    soca = SOCA(16, reduction=4)
    x = torch.randn(2, 16, 8, 8)
    if kind == "zeros":
        x = torch.zeros_like(x)
    elif kind == "constant":
        x = torch.full_like(x, 0.37)
    elif kind == "flat_channels":
        x = torch.randn(2, 16, 1, 1).expand(2, 16, 8, 8).contiguous()
    else:
        x[1] = 0.8
    x.requires_grad_(True)
    out = soca(x)
    out.square().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in soca.parameters())
    if kind == "one_flat_sample":  # the flat sample must not disturb the other one
        torch.testing.assert_close(out[:1], soca(x[:1].detach()))


def _conv_soca_pipeline(seed=0):
    torch.manual_seed(seed)
    conv, soca = torch.nn.Conv2d(3, 32, 3, padding=1), SOCA(32, reduction=8)
    x = torch.rand(2, 3, 24, 24)
    return conv, soca, x


def test_soca_under_bf16_autocast_matches_fp32():
    conv, soca, x = _conv_soca_pipeline()
    ref = soca(conv(x))
    z_ref = soca.last_descriptor.clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = conv(x)
        assert feats.dtype == torch.bfloat16
        out = soca(feats)
    assert torch.isfinite(out).all() and soca.last_descriptor.dtype == torch.float32
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 1e-2, rel
    assert ((soca.last_descriptor - z_ref).norm() / z_ref.norm()) < 1e-2


def test_soca_under_fp16_autocast_survives_large_activations():
    # ×100 activations: an fp16 Σ = X_c X_cᵀ/M overflows (> 65504) before the division; the float32
    # island must prevent it (sr-protocol.md §6.2).
    conv, soca, x = _conv_soca_pipeline()
    with torch.no_grad():
        conv.weight.mul_(100)
    feats = conv(x)
    xc = (feats - feats.mean(dim=(2, 3), keepdim=True)).flatten(2).half()
    assert not torch.isfinite(xc @ xc.transpose(1, 2)).all()  # the hazard is real here
    ref = soca(feats)
    with torch.autocast("cpu", dtype=torch.float16):
        out = soca(conv(x))
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=1e-1)


def test_channel_attention_factory_and_errors():
    assert isinstance(channel_attention("none", 8), torch.nn.Identity)
    assert isinstance(channel_attention("se", 8, 4), SE)
    soca = channel_attention("soca", 8, 4, iters=7)
    assert isinstance(soca, SOCA) and soca.iters == 7
    with pytest.raises(ValueError, match=r"\['iters'\] do not apply to attention='se'"):
        channel_attention("se", 8, 4, iters=7)
    with pytest.raises(ValueError, match="none.*se.*soca"):
        channel_attention("foca", 8)
    with pytest.raises(ValueError, match="reduction"):
        SE(8, reduction=16)
    with pytest.raises(ValueError, match="positive integer"):
        SOCA(8, 4, iters=0)
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        SOCA(8, 4)(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        SE(8, 4)(torch.zeros(8, 5, 5))
