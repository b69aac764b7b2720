"""Non-local block and SAN's region-level non-local (papers.md §1.3)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from srlearn.nn.non_local import NonLocalBlock2d, RegionNonLocal, region_bounds


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every weight (including the zero-initialised output projection) random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


def nl_loop(block: NonLocalBlock2d, x: torch.Tensor) -> torch.Tensor:
    """y_i = Σ_j softmax_j(θ_i·φ_j) g_j, one query pixel at a time; keys/values 2×2-max-pooled if asked."""
    def lin(conv, t):  # 1×1 conv as a per-pixel matrix product
        return torch.einsum("oc,bchw->bohw", conv.weight.flatten(1), t) + conv.bias[None, :, None, None]
    theta, phi, g = lin(block.theta, x), lin(block.phi, x), lin(block.g, x)
    if block.subsample_kv:
        phi, g = torch.nn.functional.max_pool2d(phi, 2), torch.nn.functional.max_pool2d(g, 2)
    b, _, h, w = x.shape
    y = torch.zeros(b, block.inter_channels, h, w, dtype=x.dtype)
    for n in range(b):
        keys, vals = phi[n].flatten(1), g[n].flatten(1)         # (C', N')
        for i in range(h):
            for j in range(w):
                weights = torch.softmax(theta[n, :, i, j] @ keys, dim=0)
                y[n, :, i, j] = vals @ weights
    return x + lin(block.W, y)


def region_loop(module: RegionNonLocal, x: torch.Tensor) -> torch.Tensor:
    """The block applied to each k×k region separately, borders at floor(i·H/k) (official int(H/2) for k=2)."""
    k, (h, w) = module.regions, x.shape[-2:]
    out = torch.empty_like(x)
    for a in range(k):
        for b in range(k):
            r0, r1 = (a * h) // k, ((a + 1) * h) // k
            c0, c1 = (b * w) // k, ((b + 1) * w) // k
            out[..., r0:r1, c0:c1] = module.block(x[..., r0:r1, c0:c1])
    return out


@pytest.mark.parametrize("subsample_kv", [True, False])
def test_block_is_identity_at_initialisation(subsample_kv):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 6)
    block = NonLocalBlock2d(16, subsample_kv=subsample_kv)
    assert block.inter_channels == 2
    assert torch.equal(block(x), x)
    assert torch.equal(RegionNonLocal(16, subsample_kv=subsample_kv)(x), x)
    randomise(block)
    assert not torch.allclose(block(x), x)


@pytest.mark.parametrize("subsample_kv", [True, False])
@pytest.mark.parametrize("hw", [(4, 6), (5, 7)])
def test_block_equals_per_pixel_formula(subsample_kv, hw):
    block = randomise(NonLocalBlock2d(8, 4, subsample_kv=subsample_kv).double())
    x = torch.randn(2, 8, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(block(x), nl_loop(block, x), rtol=1e-10, atol=1e-12)


def test_attention_map_shape_and_rows():
    block = randomise(NonLocalBlock2d(8))
    a = block.attention_map(torch.randn(3, 8, 6, 10))
    assert a.shape == (3, 60, 15)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 60))


def test_region_bounds_follow_official_int_half_split():
    assert region_bounds(5, 2) == [0, 2, 5]      # odd: the top/left region is the smaller one
    assert region_bounds(8, 2) == [0, 4, 8]
    assert region_bounds(7, 3) == [0, 2, 4, 7]


@pytest.mark.parametrize("subsample_kv", [True, False])
@pytest.mark.parametrize("regions, hw", [(2, (8, 8)), (2, (8, 12)), (2, (7, 9)), (2, (5, 6)), (2, (9, 9)),
                                         (3, (9, 12)), (3, (10, 8))])
def test_region_non_local_equals_block_per_region(subsample_kv, regions, hw):
    module = RegionNonLocal(8, 4, regions=regions, subsample_kv=subsample_kv).double()
    randomise(module)
    x = torch.randn(2, 8, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(module(x), region_loop(module, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])
def test_attention_does_not_cross_region_borders(hw):
    region = randomise(RegionNonLocal(8, 4).double())
    glob = region.block
    x = torch.randn(1, 8, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x2 = x.clone()
    h1, w1 = hw[0] // 2, hw[1] // 2
    x2[..., h1, w1] += 5.0                           # change one pixel of the bottom-right region
    diff = (region(x2) - region(x)).abs().sum(1)[0]
    assert diff[:h1, :].max() == 0 and diff[:, :w1].max() == 0      # the other three regions are untouched
    assert diff[h1:, w1:].max() > 0
    assert (glob(x2) - glob(x)).abs().sum(1)[0, 0, 0] > 0            # the global block reaches across


def test_region_non_local_gradcheck():
    module = randomise(RegionNonLocal(2, 1).double())
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    assert gradcheck(module, (x,))


def test_odd_maps_drop_the_last_row_and_column_from_keys_and_values():
    # MaxPool2d(2) floors: on a 5x7 map the keys/values come from the top-left 4x6 only (as in SAN's code),
    # so the last row/column influence only their own queries.
    block = randomise(NonLocalBlock2d(8, 4).double())
    x = torch.randn(1, 8, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    x2 = x.clone()
    x2[..., 4, 6] += 5.0
    diff = (block(x2) - block(x)).abs().sum(1)[0]
    assert diff[4, 6] > 0 and diff.sum() == diff[4, 6]
    x3 = x.clone()
    x3[..., 3, 5] += 5.0
    assert ((block(x3) - block(x)).abs().sum(1)[0] > 0).sum() > 1


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 4x4"):
        RegionNonLocal(8)(torch.zeros(1, 8, 3, 8))
    RegionNonLocal(8, subsample_kv=False)(torch.zeros(1, 8, 3, 8))   # fine without pooling
    with pytest.raises(ValueError, match="max-pooled"):
        NonLocalBlock2d(8)(torch.zeros(1, 8, 1, 5))
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        NonLocalBlock2d(8)(torch.zeros(1, 4, 6, 6))
    with pytest.raises(ValueError, match="positive integer"):
        RegionNonLocal(8, regions=0)
