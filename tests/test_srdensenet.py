"""SRDenseNet and its matched residual control: counts against papers.md §2.1, wiring of the variants,
the Y-channel pipeline, training, the replication's registration and the up-sampling benchmark."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from srlearn import metrics
from srlearn.bench.upsampling import (HRSpaceNet, LRSpaceNet, bench_upsampling, closed_form_flops,
                                      counted_flops)
from srlearn.data import PairedPatchDataset, list_images
from srlearn.experiments import get_experiment
from srlearn.experiments.srdensenet import YPatches, make_y_train_data
from srlearn.models import build
from srlearn.models.bicubic import Bicubic
from srlearn.models.srdensenet import CONNECTIVITIES, PAPER_PARAMS, ResidualSR, SRDenseNet, wiring
from srlearn.models.ycbcr import YChannelSR, rgb_to_luma, rgb_to_ycbcr, ycbcr_to_rgb
from srlearn.nn.common import count_parameters
from srlearn.train import TrainConfig, load_model, train


def conv_params(cin, cout, k=3):
    return cin * cout * k * k + cout


def srdensenet_formula(conn, deconv_k=2, C=128, N=8, L=8, k=16, B=256):
    """Parameters from the layer list of papers.md §2.1 (and §2.2 for the variants)."""
    block_out = k if conn == "plain" else L * k
    block_in = [C * b if conn == "all" else (C if b == 1 else block_out) for b in range(1, N + 1)]
    if conn == "plain":
        block = lambda cin: conv_params(cin, k) + (L - 1) * conv_params(k, k)
    else:
        block = lambda cin: conv_params(cin, k) + sum(conv_params(k * (l - 1), k) for l in range(2, L + 1))
    bottleneck_in = {"all": C + N * block_out, "hl": C + block_out, "h": block_out, "plain": block_out}[conn]
    deconv = 2 * (B * B * deconv_k ** 2 + B)
    return (conv_params(1, C) + sum(block(c) for c in block_in) + conv_params(bottleneck_in, B, 1) + deconv
            + conv_params(B, 1))


# ------------------------------------------------------------------------------------------ counts
@pytest.mark.parametrize("conn", CONNECTIVITIES)
def test_paper_parameter_counts(conn):
    n = count_parameters(build("srdensenet", "paper", connectivity=conn))
    assert n == PAPER_PARAMS[conn] == srdensenet_formula(conn)


def test_counts_reconcile_with_the_reimplementations():
    # papers.md §2.1 [R]: Lornatang (2x2 deconvolutions) 2,004,225; yjn870 (3x3) 2,659,585
    assert count_parameters(build("srdensenet", "paper")) == 2_004_225
    assert count_parameters(build("srdensenet", "paper", deconv_kernel=3)) == 2_659_585 == srdensenet_formula("all", 3)
    assert 2.0e6 <= PAPER_PARAMS["all"] <= 2.7e6


def test_residual_control_matches_the_dense_network():
    res, dense = count_parameters(build("residual-sr", "paper")), count_parameters(build("srdensenet", "paper"))
    C, n, B = 64, 20, 256
    formula = conv_params(1, C) + n * 2 * conv_params(C, C) + conv_params(C, B, 1) + 2 * (B * B * 4 + B) + conv_params(B, 1)
    assert res == formula == PAPER_PARAMS["residual"]
    assert abs(res - dense) / dense < 0.01
    assert count_parameters(build("residual-sr", "mini")) == count_parameters(build("srdensenet", "mini")) == 51_009


def test_residual_control_reuses_the_common_residual_block():
    from srlearn.nn.common import ResBlock
    body = build("residual-sr", "mini").net.body
    assert len(body) == 9 and all(type(b) is ResBlock for b in body)


# ------------------------------------------------------------------------------------------ wiring
def _conv_inputs(net: SRDenseNet, x):
    """Channels seen by the first conv of each block and by the bottleneck (forward pre-hooks)."""
    seen = {}
    mods = {f"block{b}": blk.layers[0].conv for b, blk in enumerate(net.blocks, 1)}
    mods["bottleneck"] = net.bottleneck[0]
    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: seen.__setitem__(n, a[0].shape[1])) for n, m in mods.items()]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("conn, blocks, bottleneck", [
    ("all", [128 * b for b in range(1, 9)], 1152),
    ("hl", [128] * 8, 256),
    ("h", [128] * 8, 128),
    ("plain", [128] + [16] * 7, 16),
])
def test_what_each_variant_feeds_forward(conn, blocks, bottleneck):
    net = build("srdensenet", "paper", connectivity=conn).net
    seen = _conv_inputs(net, torch.rand(1, 1, 5, 6))
    assert [seen[f"block{b}"] for b in range(1, 9)] == blocks
    assert seen["bottleneck"] == bottleneck


@pytest.mark.parametrize("conn, reaches", [("all", True), ("hl", True), ("h", False), ("plain", False)])
def test_gradient_reaches_the_low_level_features_only_through_a_skip(conn, reaches):
    """Cut the path through the blocks (detach every block's input): the low-level features then get
    a gradient only if a skip carries them to the bottleneck."""
    torch.manual_seed(0)
    net = build("srdensenet", "mini", connectivity=conn).net
    hooks = [blk.register_forward_pre_hook(lambda m, a: (a[0].detach(),)) for blk in net.blocks]
    net(torch.rand(2, 1, 6, 6)).square().mean().backward()
    for h in hooks:
        h.remove()
    g = net.head[0].weight.grad
    assert (g is not None and g.abs().sum() > 0) == reaches
    # without the cut, every variant trains its head
    net.zero_grad()
    net(torch.rand(2, 1, 6, 6)).square().mean().backward()
    assert net.head[0].weight.grad.abs().sum() > 0


def test_all_variant_block_b_draws_on_every_earlier_block_directly():
    torch.manual_seed(0)
    net = build("srdensenet", "mini", connectivity="all").net
    feats = [f.detach().requires_grad_(True) for f in net.features(torch.rand(1, 1, 6, 6))]
    out = net.blocks[3](torch.cat(feats[:4], 1))           # block 4 consumes F_0..F_3
    out.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats[:4])


def test_wiring_table():
    assert wiring("all", 3) == ([[], [0], [0, 1], [0, 1, 2]], [0, 1, 2, 3])
    assert wiring("hl", 3) == ([[], [0], [1], [2]], [0, 3])
    assert wiring("h", 3) == wiring("plain", 3) == ([[], [0], [1], [2]], [3])
    with pytest.raises(ValueError, match="connectivity"):
        wiring("dense", 3)


def test_feature_reuse_between_blocks():
    torch.manual_seed(0)
    net = build("srdensenet", "mini", connectivity="all").net
    between = net.feature_reuse()["between"]
    assert between.shape == (5, 5) and not torch.isnan(between[-1]).any()
    assert torch.isnan(between[0, 1:]).all() and not torch.isnan(between[3, :4]).any()
    w = net.bottleneck[0].weight                     # bottleneck sees F_0 (32) and four 32-map blocks
    assert between[4, 2].item() == pytest.approx(w[:, 64:96].abs().mean().item())
    hl = build("srdensenet", "mini", connectivity="hl").net.feature_reuse()["between"]
    assert (~torch.isnan(hl[-1])).nonzero().flatten().tolist() == [0, 4]


# --------------------------------------------------------------------------------- forward / backward
@pytest.mark.parametrize("name, kw", [("srdensenet", {"connectivity": c}) for c in CONNECTIVITIES]
                         + [("residual-sr", {})])
def test_forward_backward(name, kw):
    torch.manual_seed(0)
    model = build(name, "mini", **kw)
    assert model.scale == 4
    y = model(torch.rand(2, 1, 6, 7))
    assert y.shape == (2, 1, 24, 28)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model(torch.rand(1, 3, 5, 6)).shape == (1, 3, 20, 24)


def test_rgb_colour_option_and_errors():
    m = build("srdensenet", "mini", colour="rgb")
    assert isinstance(m, SRDenseNet) and m(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)
    assert isinstance(build("residual-sr", "mini", colour="rgb"), ResidualSR)
    with pytest.raises(ValueError, match="colour"):
        build("srdensenet", "mini", colour="ycbcr")
    with pytest.raises(ValueError, match="connectivity"):
        build("srdensenet", "mini", connectivity="dense")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\) luma or \(B, 3, H, W\) RGB"):
        build("srdensenet", "mini")(torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.rand(1, 1, 4, 4))


# ------------------------------------------------------------------------------------- Y-channel pipeline
def test_ycbcr_round_trip_and_luma_equals_the_metric():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    ycc = rgb_to_ycbcr(x)
    torch.testing.assert_close(ycbcr_to_rgb(ycc), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ycc[0, 0] * 255, torch.from_numpy(metrics.rgb_to_y(img)), rtol=0, atol=1e-9)
    torch.testing.assert_close(rgb_to_luma(x), ycc[:, :1])
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)   # studio swing: 235, 128, 128 / 16, 128, 128
    torch.testing.assert_close(rgb_to_ycbcr(white).flatten() * 255, torch.tensor([235.0, 128, 128]), atol=1e-3, rtol=0)
    torch.testing.assert_close(rgb_to_ycbcr(black).flatten() * 255, torch.tensor([16.0, 128, 128]), atol=1e-4, rtol=0)


def test_y_pipeline_with_a_bicubic_luma_network_is_rgb_bicubic():
    # bicubic is linear and its weights sum to 1, so bicubic on Y with bicubic Cb/Cr = bicubic on RGB
    x = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(YChannelSR(Bicubic(4))(x), Bicubic(4)(x), rtol=0, atol=1e-10)


def test_y_pipeline_output_luma_is_the_network_output():
    torch.manual_seed(0)
    model = build("srdensenet", "mini")
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        out = model(x)
        y = model.net(rgb_to_ycbcr(x)[:, :1])
    torch.testing.assert_close(rgb_to_luma(out), y, atol=1e-5, rtol=0)


def test_y_patches_are_the_luma_of_the_rgb_patches():
    rgb = PairedPatchDataset(list_images("train")[:2], scale=4, lr_patch=6, length=4, seed=0)
    ys = YPatches(rgb)
    lr, hr = ys[1]
    assert lr.shape == (1, 6, 6) and hr.shape == (1, 24, 24)
    torch.testing.assert_close(hr, rgb_to_luma(rgb[1][1]))
    assert 16 / 255 - 1e-6 <= lr.min() and lr.max() <= 235 / 255 + 1e-6


# ------------------------------------------------------------------------------------------ training
def test_mini_model_trains_and_reloads(tmp_path):
    textures = [n for n in list_images("train") if n.startswith("texture:")]
    data = YPatches(PairedPatchDataset(textures, scale=4, lr_patch=10, length=200, seed=0))
    model = build("srdensenet", "mini")
    cfg = TrainConfig(steps=30, batch_size=4, lr=2e-3, loss="mse", schedule="none", log_every=5, val_every=0,
                      seed=0, progress=False, ckpt_path=str(tmp_path / "m.pt"), device="cpu")
    hist = train(model, data, cfg)
    assert np.mean(hist.loss[-2:]) < 0.5 * np.mean(hist.loss[:2])       # the loss falls
    again = load_model(tmp_path / "m.pt")                                  # rebuilt from its spec: wrapper included
    assert isinstance(again, YChannelSR)
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.eval()(x))


def test_experiment_registration():
    exp = get_experiment("srdensenet-variants")
    assert exp.scale == 4 and exp.make_train_data is make_y_train_data
    train_set = make_y_train_data(exp, exp.budgets["quick"], seed=0)
    p = exp.budgets["quick"].lr_patch
    assert len(train_set) == exp.budgets["quick"].steps * exp.budgets["quick"].batch_size
    assert [t.shape for t in train_set[0]] == [(1, p, p), (1, 4 * p, 4 * p)]
    arms = {a.name for a in exp.arms}
    assert arms == {"plain", "h", "hl", "all", "residual"}
    for c in exp.comparisons:
        assert {c.better, c.worse} <= arms | {"bicubic"}
    assert exp.budgets["full"].seeds >= 3 and exp.budgets["full"].train["loss"] == "mse"
    for budget in exp.budgets.values():            # x4 needs HR training images >= 4 * lr_patch
        assert budget.lr_patch * exp.scale <= 256


# ------------------------------------------------------------------------------------------ benchmark
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_upsampling_flops_are_counted_as_the_closed_form(scale):
    x = torch.rand(1, 1, 6, 6)
    for kind, net in (("lr-space", LRSpaceNet(scale, 8, 2)), ("hr-space", HRSpaceNet(scale, 8, 2))):
        assert counted_flops(net, x) == closed_form_flops(kind, scale, 6, 8, 2)


def test_lr_space_saves_about_r_squared():
    """The saving is r² for the body; the up-sampling tail runs at (partly) HR size in both layouts, so the
    ratio approaches r² as the body deepens (at x8 with 8 layers the tail is half the LR-space work)."""
    ratio = lambda r, depth: closed_form_flops("hr-space", r, 48, 64, depth) / closed_form_flops("lr-space", r, 48, 64, depth)
    for r in (2, 4, 8):
        assert ratio(r, 4) < ratio(r, 16) < ratio(r, 64) < r * r
        assert ratio(r, 64) > 0.8 * r * r
    assert ratio(2, 8) < ratio(4, 8) < ratio(8, 8)              # and the saving grows with the scale


def test_bench_rows():
    rows = bench_upsampling(scales=(2,), size=6, channels=4, depth=1, repeat=1)
    assert [r["layout"] for r in rows] == ["lr-space", "hr-space"]
    assert rows[1]["flop_ratio"] == pytest.approx(rows[1]["gflop"] / rows[0]["gflop"])
    assert rows[1]["r2"] == 4 and rows[0]["ms"] > 0
