"""MIRNet: the model (both published parameter counts, presets, switches, odd sizes, SR heads, official
checkpoints), the denoising data, the two registered replications, and a few steps of training."""
import re

import numpy as np
import pytest
import torch

from srlearn import data, experiments
from srlearn.data.noise import NoisyPatchDataset, add_gaussian_noise, noisy_validation_pairs
from srlearn.experiments import core
from srlearn.experiments import mirnet as mirnet_exp
from srlearn.models import build
from srlearn.models.mirnet import (MINI_PARAMS, PAPER_PARAMS, MIRNet, convert_official_state_dict,
                                   load_official_weights)
from srlearn.nn import DAU, count_parameters



def _count(**kw) -> int:
    return count_parameters(MIRNet(**kw))


# ------------------------------------------------------------------------------ parameter counts
def test_paper_preset_has_both_published_counts():
    shared = build("mirnet", "paper")
    assert count_parameters(shared) == PAPER_PARAMS["shared"] == 31_787_419
    prelus = {id(m.body[1]) for m in shared.modules() if isinstance(m, DAU)}
    assert len(prelus) == 1                                    # one PReLU slope for all 18 DAUs
    mrb = shared.body[0].body[0]
    assert mrb.dau(2, 0) is mrb.dau(2, 1)                      # each stream's two DAUs are one module
    del shared
    unshared = build("mirnet", "paper", share_dau_weights=False)
    assert count_parameters(unshared) == PAPER_PARAMS["unshared"] == 42_239_298
    assert len({id(m.body[1]) for m in unshared.modules() if isinstance(m, DAU)}) == 36
    del unshared
    # untying the DAUs but keeping the official single PReLU: 35 slopes fewer
    assert _count(share_dau_weights=False, share_prelu=True) == 42_239_298 - 35


def test_smaller_counts_from_papers_md():
    assert count_parameters(build("mirnet", "mini")) == MINI_PARAMS == 2_650_655
    assert _count(n_feat=32) == 7_948_507                      # the authors' light setting (issue #5)
    assert count_parameters(build("mirnet", "mini", height=1)) == 71_463
    assert count_parameters(build("mirnet", "tiny")) == 83_888


def test_fusion_switch_changes_only_the_fusion_layers():
    base = count_parameters(build("mirnet", "tiny"))
    feats = (8, 16, 32)
    skff = sum(c * max(c // 8, 4) * 4 + 1 for c in feats)     # C·d + 3·d·C + 1 per fusion layer
    assert count_parameters(build("mirnet", "tiny", fusion="sum")) == base - skff
    assert count_parameters(build("mirnet", "tiny", fusion="concat")) == base - skff + sum(3 * c * c for c in feats)


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="1, 2 or 3"):
        MIRNet(height=4)
    with pytest.raises(ValueError, match="unknown fusion"):
        MIRNet(fusion="max")
    with pytest.raises(ValueError, match="unknown upsampler"):
        MIRNet(scale=2, upsampler="deconv")
    with pytest.raises(ValueError, match="scale"):
        MIRNet(scale=0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        build("mirnet", "tiny")(torch.zeros(3, 16, 16))


# ------------------------------------------------------------------------------ forward
@pytest.mark.parametrize("height", [1, 2, 3])
@pytest.mark.parametrize("size", [(16, 16), (13, 18), (5, 7), (2, 3), (1, 1)])
def test_any_size_is_padded_and_cropped_back(height, size):
    m = build("mirnet", "tiny", height=height).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert m(x).shape == x.shape


def test_padding_is_reflection_then_crop():
    torch.manual_seed(0)
    m = build("mirnet", "tiny").eval()
    x = torch.rand(1, 3, 13, 18)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect")           # to 16 x 20
    with torch.no_grad():
        expected = (m.conv_out(m.body(m.conv_in(padded))) + padded)[..., :13, :18]
        torch.testing.assert_close(m(x), expected)
        # the padded pixels matter: another padding gives another output near the border
        other = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="constant")
        assert (m(x) - (m.conv_out(m.body(m.conv_in(other))) + other)[..., :13, :18]).abs().max() > 1e-6


@pytest.mark.parametrize("upsampler", ["bicubic", "subpixel"])
def test_super_resolution_heads_start_from_bicubic(upsampler):
    from srlearn.data import imresize_torch
    m = build("mirnet", "tiny", scale=2, upsampler=upsampler).eval()
    assert m.scale == 2
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert m(x).shape == (1, 3, 18, 22)
        m.conv_out.weight.zero_()                              # no residual: the global skip alone
        torch.testing.assert_close(m(x), imresize_torch(x, 2))
    sub = build("mirnet", "tiny", scale=2, upsampler="subpixel")
    assert count_parameters(sub) == count_parameters(build("mirnet", "tiny")) + 8 * 32 * 9   # conv C -> 4C
    assert count_parameters(build("mirnet", "tiny", scale=2)) == count_parameters(build("mirnet", "tiny"))


def test_denoising_model_is_residual_on_the_input():
    m = build("mirnet", "tiny").eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        m.conv_out.weight.zero_()
        torch.testing.assert_close(m(x), x)


# ------------------------------------------------------------------------------ official checkpoints
# keys copied from the state dict of swz30/MIRNet's MIRNet() (official code, default arguments)
OFFICIAL_KEYS = {
    "conv_in.weight": (64, 3, 3, 3),
    "body.0.body.0.blocks.0.0.body.0.weight": (64, 64, 3, 3),
    "body.0.body.0.blocks.2.1.conv1x1.weight": (256, 512, 1, 1),
    "body.1.body.0.blocks.0.0.CA.conv_du.0.weight": (8, 64, 1, 1),
    "body.0.body.1.blocks.1.0.SA.spatial.conv.weight": (1, 2, 5, 5),
    "body.1.body.0.down.128_2.body.0.top.0.weight": (128, 128, 1, 1),
    "body.2.body.0.down.64_4.body.1.bot.0.filt": (128, 1, 3, 3),
    "body.1.body.0.up.256_4.body.1.top.2.weight": (128, 128, 3, 3),
    "body.2.body.1.up.256_2.body.0.bot.1.weight": (128, 256, 1, 1),
    "body.1.body.1.last_up.2.body.1.top.3.weight": (1,),
    "body.1.body.1.selective_kernel.1.fcs.0.weight": (128, 16, 1, 1),
    "body.0.body.0.selective_kernel.0.conv_du.1.weight": (1,),
    "body.0.body.2.weight": (64, 64, 3, 3),
    "conv_out.weight": (3, 64, 3, 3),
}


def test_official_keys_map_onto_this_model():
    ours = build("mirnet", "paper").state_dict()
    fake = {"module." + k: torch.zeros(shape) for k, shape in OFFICIAL_KEYS.items()}
    converted = convert_official_state_dict({"state_dict": fake})
    assert len(converted) == len(OFFICIAL_KEYS) - 1            # blocks.2.1 is the shared copy of blocks.2.0
    for key, value in converted.items():
        assert key in ours, key
        assert tuple(ours[key].shape) == tuple(value.shape), key


def _official_names(state: dict, width: int) -> dict:
    """Our state dict renamed to the official layout (the inverse mapping, written out independently):
    each shared DAU is stored once per column, as list repetition stores it."""
    out = {}
    for k, v in state.items():
        k = k.replace(".sa.conv.", ".SA.spatial.conv.").replace(".ca.conv_du.", ".CA.conv_du.")
        k = k.replace(".fuse.", ".selective_kernel.").replace(".kernel", ".filt")
        k = re.sub(r"\.last_up\.(\d+)\.", r".last_up.\1.body.", k)
        k = re.sub(r"\.(down|up)\.(\d+)_x(\d+)\.", r".\1.\2_\3.body.", k)
        if ".daus." in k:
            for col in range(width):
                out[re.sub(r"\.daus\.(\d+)\.0\.", rf".blocks.\1.{col}.", k)] = v
        else:
            out[k] = v
    return out


def test_official_weights_load_and_give_the_same_model():
    torch.manual_seed(0)
    src = build("mirnet", "tiny", n_mrb=2)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.1 * torch.randn_like(p))
    dst = build("mirnet", "tiny", n_mrb=2)
    load_official_weights(dst, _official_names(src.state_dict(), width=2))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    bad = _official_names(src.state_dict(), width=2)
    key = next(k for k in bad if ".blocks.1.1." in k)
    bad[key] = bad[key] + 1
    with pytest.raises(ValueError, match="share_dau_weights=False"):
        load_official_weights(dst, bad)


# ------------------------------------------------------------------------------ denoising data
def test_gaussian_noise_statistics_and_clipping():
    grey = np.full((64, 64, 3), 128, np.uint8)
    noisy = add_gaussian_noise(grey, 25, rng=0).astype(float)
    assert abs(noisy.std() - 25) < 1.0 and abs(noisy.mean() - 128) < 0.5
    black = add_gaussian_noise(np.zeros((32, 32, 3), np.uint8), 25, rng=1)
    assert black.min() == 0 and black.mean() > 5              # clipped at 0: the noise is not zero-mean there
    np.testing.assert_array_equal(add_gaussian_noise(grey, 0), grey)
    with pytest.raises(ValueError, match="0..255"):
        add_gaussian_noise(grey, -1)
    with pytest.raises(TypeError, match="uint8"):
        add_gaussian_noise(grey.astype(float), 25)


def test_noisy_patches_are_deterministic_per_seed_and_index():
    img = data.texture("blobs", size=64, seed=0)
    a = NoisyPatchDataset([img], patch=16, length=10, seed=3)
    b = NoisyPatchDataset([img], patch=16, length=10, seed=3)
    c = NoisyPatchDataset([img], patch=16, length=10, seed=4)
    for i in (0, 7):
        torch.testing.assert_close(a[i], b[i])
    noisy, clean = a[5]
    assert noisy.shape == clean.shape == (3, 16, 16)
    p = a.crop_params(5)
    expected = data.dihedral(img[p["top"]:p["top"] + 16, p["left"]:p["left"] + 16], p["k"])
    torch.testing.assert_close(clean, data.to_tensor(np.ascontiguousarray(expected)))
    assert 15 / 255 < (noisy - clean).std() < 30 / 255
    assert not torch.equal(a[5][0], c[5][0])
    with pytest.raises(ValueError, match="smaller than"):
        NoisyPatchDataset([img], patch=80)


def test_noisy_validation_pairs_are_reproducible():
    v1 = noisy_validation_pairs(25, max_size=48)
    v2 = noisy_validation_pairs(25, max_size=48)
    assert [n for n, *_ in v1] == data.list_images("valid")
    for (n1, a1, c1), (_, a2, c2) in zip(v1, v2):
        assert a1.dtype == np.uint8 and a1.shape == c1.shape == (48, 48, 3)
        np.testing.assert_array_equal(a1, a2)
        assert not np.array_equal(a1, c1)


# ------------------------------------------------------------------------------ the replications
def test_replications_are_registered_with_their_arms_and_protocol():
    den = experiments.get_experiment("mirnet-fusion")
    sr = experiments.get_experiment("mirnet-fusion-sr")
    assert [a.name for a in den.arms] == ["skff", "sum", "concat", "height1", "height1-wide"]
    assert [a.name for a in sr.arms] == ["skff", "sum", "concat"]
    assert den.scale == 1 and den.crop == 0 and den.y_only is False and den.baseline_name == "noisy input"
    assert sr.scale == 2 and all(a.overrides["upsampler"] == "bicubic" for a in sr.arms)
    for exp in (den, sr):
        assert exp.budgets["full"].seeds >= 3
        names = {a.name for a in exp.arms} | {exp.baseline_name}
        assert all({c.better, c.worse} <= names for c in exp.comparisons)
    x = torch.rand(1, 3, 5, 5)
    assert torch.equal(den.baseline_model(den)(x), x)


def test_height1_wide_matches_the_three_stream_parameter_count():
    target = count_parameters(build("mirnet", mirnet_exp.PRESET))
    counts = {w: count_parameters(build("mirnet", mirnet_exp.PRESET, height=1, n_feat=w)) for w in range(40, 53)}
    best = min(counts, key=lambda w: abs(counts[w] - target))
    assert mirnet_exp.WIDE_N_FEAT == best
    assert abs(counts[best] - target) / target < 1e-3


def test_denoising_replication_runs_end_to_end(tmp_path, monkeypatch):
    from dataclasses import replace
    den = experiments.get_experiment("mirnet-fusion")
    micro = replace(den, name="mirnet-micro", arms=[den.arm("skff"), den.arm("height1")],
                    budgets={"quick": replace(den.budgets["quick"], steps=2, batch_size=2, lr_patch=16,
                                              val_every=0, val_max_size=24,
                                              train={**den.budgets["quick"].train, "warmup_steps": 0})})
    monkeypatch.setitem(core._EXPERIMENTS, micro.name, micro)
    res = experiments.run(micro.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    assert res["baseline"]["arm"] == "noisy input" and res["protocol"].startswith("RGB/shave=0")
    noisy = noisy_validation_pairs(25, max_size=24)
    from srlearn.metrics import psnr
    assert abs(res["baseline"]["psnr"] - np.mean([psnr(n, c, crop=0, y_only=False) for _, n, c in noisy])) < 1e-9
    assert [r["arm"] for r in res["runs"]] == ["skff", "height1"]
    assert {v["worse"] for v in res["verdicts"]} == {"noisy input", "height1"}
    assert (tmp_path / "checkpoints" / "skff-seed0.pt").exists()


def test_mini_model_trains_and_its_loss_falls():
    from srlearn.train import TrainConfig, train
    torch.manual_seed(0)
    model = build("mirnet", "mini")
    ds = NoisyPatchDataset(["astronaut"], patch=16, length=64, sigma=25, seed=0)
    batch = [ds[i] for i in range(4)]
    noisy, clean = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])

    def loss():
        with torch.no_grad():
            return torch.sqrt((model(noisy) - clean) ** 2 + 1e-6).mean().item()

    before = loss()
    hist = train(model, ds, TrainConfig(steps=8, batch_size=4, lr=1e-3, loss="charbonnier", schedule="none",
                                        val_every=0, log_every=1, progress=False, device="cpu"))
    assert len(hist.loss) == 8 and np.isfinite(hist.loss).all()
    assert loss() < before
    assert np.mean(hist.loss[-3:]) < np.mean(hist.loss[:3])
