"""SSEN (srlearn.models.ssen), its PatchGAN (srlearn.models.patchgan) and the ssen-refsr helpers (papers.md §4)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlearn import models
from srlearn.data import imresize_torch
from srlearn.models.patchgan import PatchDiscriminator, adversarial_loss, receptive_field
from srlearn.models.ssen import SSEN, DynamicOffsetEstimator, SSENNet, brute_force_patch_match
from srlearn.nn import count_parameters
from srlearn.nn.non_local import NonLocalBlock2d
from srlearn.viz import capture


def mini(**kw) -> SSENNet:
    torch.manual_seed(0)
    return models.build("ssen", "mini", **kw)


# ---------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("n_deform", [0, 1, 3, 5])
def test_forward_shapes_for_every_depth(n_deform):
    m = mini(n_deform=n_deform)
    lr, ref = torch.rand(2, 3, 11, 13), torch.rand(2, 3, 44, 52)
    assert m(lr, ref).shape == (2, 3, 44, 52)
    assert m.scale == 4 and m.n_deform == n_deform
    assert len(m.ssen.deforms) == n_deform if n_deform else not hasattr(m, "ssen")


def test_offsets_and_masks_are_captured_with_torchvision_layout():
    m = mini()
    with capture(m, "ssen.deforms.*.offset_head") as heads:
        m(torch.rand(2, 3, 12, 12), torch.rand(2, 3, 48, 48))
    assert list(heads) == [f"ssen.deforms.{t}.offset_head" for t in range(3)]
    for offset, mask in heads.values():
        assert offset.shape == (2, 18, 12, 12) and mask.shape == (2, 9, 12, 12)
        assert (offset == 0).all() and (mask == 0.5).all()          # zero-initialised heads


def test_untrained_small_presets_are_exactly_bicubic():
    """image_skip: the last conv starts at zero, so the output is MATLAB bicubic of the input."""
    for n_deform in (0, 3):
        m = mini(n_deform=n_deform)
        lr = torch.rand(1, 3, 10, 12)
        torch.testing.assert_close(m(lr, torch.rand(1, 3, 40, 48)), imresize_torch(lr, 4))
    paper = models.build("ssen", "paper", n_feats=8, n_resblocks=1, n_extract=1)
    assert not paper.image_skip and not torch.allclose(paper(lr, torch.rand(1, 3, 40, 48)), imresize_torch(lr, 4))


def test_sisr_arm_ignores_the_reference_and_ssen_uses_it():
    m0, m3 = mini(n_deform=0), mini()
    for m in (m0, m3):
        torch.nn.init.normal_(m.tail[-1].weight, std=0.05)            # leave the bicubic start
    with torch.no_grad():
        for d in m3.ssen.deforms:
            d.offset_head.conv.bias.normal_(0, 0.5)
    lr = torch.rand(1, 3, 12, 12)
    a, b = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    assert torch.equal(m0(lr, a), m0(lr, b)) and torch.equal(m0(lr, a), m0(lr))
    assert not torch.allclose(m3(lr, a), m3(lr, b))


def test_self_similarity_mode_uses_the_lr_features_as_reference():
    m = mini(self_similarity=True)
    with torch.no_grad():
        torch.nn.init.normal_(m.tail[-1].weight, std=0.05)
    lr = torch.rand(1, 3, 12, 12)
    y = m(lr)
    assert y.shape == (1, 3, 48, 48)
    f_lr = m.extract(m.head(m.sub_mean(lr)))
    z = m.fuse(torch.cat([f_lr, m.ssen(f_lr, f_lr)], 1))
    torch.testing.assert_close(y, m.tail(z + m.body(z)) + imresize_torch(lr, 4))


def test_ssen_is_the_stack_of_estimator_head_and_deformable_convolution():
    """R_t = DCN_t(R_{t-1}; head_t(DOE_t([F_lr; R_{t-1}]))), LeakyReLU(0.1) between layers, written out."""
    from srlearn.nn.deform import deform_conv2d
    torch.manual_seed(3)
    block = SSEN(8, n_deform=3)
    with torch.no_grad():
        for d in block.deforms:                       # heads away from zero, so the estimators matter
            d.offset_head.conv.weight.normal_(0, 0.1)
            d.offset_head.conv.bias.normal_(0, 0.7)
    f_lr, f_ref = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
    r = f_ref
    for t, (est, dcn) in enumerate(zip(block.estimators, block.deforms)):
        offset, mask = dcn.offset_head(est(torch.cat([f_lr, r], 1)))
        r = deform_conv2d(r, offset, dcn.weight, dcn.bias, padding=1, mask=mask)
        r = F.leaky_relu(r, 0.1) if t < 2 else r
    torch.testing.assert_close(block(f_lr, f_ref), r)


def test_bad_inputs_get_clear_errors():
    m = mini()
    with pytest.raises(ValueError, match="needs a reference"):
        m(torch.rand(1, 3, 12, 12))
    with pytest.raises(ValueError, match="fit_reference"):
        m(torch.rand(1, 3, 12, 12), torch.rand(1, 3, 40, 48))
    with pytest.raises(ValueError, match="at least 5x5"):
        m(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="0..5"):
        mini(n_deform=6)
    with pytest.raises(ValueError, match="1 to 5"):
        SSEN(8, n_deform=0)
    with pytest.raises(ValueError, match="scale must be 2, 4, 8"):
        models.build("ssen", "mini", scale=3)
    assert models.build("ssen", "mini", scale=3, n_deform=0)(torch.rand(1, 3, 5, 5)).shape == (1, 3, 15, 15)


# ---------------------------------------------------------------------------------------------- structure
def _conv(i, o, k):
    return i * o * k * k + o


def _expected_params(c, n_res, n_ext, n_deform, scale=4, non_local=True, modulated=True, levels=3):
    """Counted by hand from the architecture in the module docstring."""
    res = 2 * _conv(c, c, 3)
    n = _conv(3, c, 3) + n_ext * res + n_res * res + _conv(c, c, 3)          # head, extractor, body
    n += int(math.log2(scale)) * _conv(c, 4 * c, 3) + _conv(c, 3, 3)         # up-sampler, tail
    if n_deform:
        n += _conv(3, c, 3) + (int(math.log2(scale)) - 1) * _conv(c, c, 3)   # reference encoder
        n += _conv(2 * c, c, 1)                                               # fusion
        inter = max(1, c // 8)
        nl = 3 * _conv(c, inter, 1) + _conv(inter, c, 1) if non_local else 0
        doe = _conv(2 * c, c, 3) + levels * (_conv(c, c, 3) + nl + _conv(c, c, 4)) + _conv(c, c, 3)
        dcn = c * c * 9 + c + _conv(c, (3 if modulated else 2) * 9, 3)
        n += n_deform * (doe + dcn)
    return n


@pytest.mark.parametrize("preset,c,n_res,n_ext", [("mini", 16, 2, 1), ("small", 64, 8, 2), ("paper", 64, 16, 5)])
def test_parameter_counts(preset, c, n_res, n_ext):
    """papers.md gives no parameter count for SSEN (§5: '?'); this is the architecture counted by hand."""
    for kw in ({}, {"n_deform": 0}, {"n_deform": 1}, {"non_local": False}, {"modulated": False}):
        expected = _expected_params(c, n_res, n_ext, kw.get("n_deform", 3), non_local=kw.get("non_local", True),
                                    modulated=kw.get("modulated", True))
        assert count_parameters(models.build("ssen", preset, **kw)) == expected, (preset, kw)


def test_offset_estimator_goes_down_three_times_with_non_local_blocks():
    doe = DynamicOffsetEstimator(16)
    assert sum(isinstance(m, NonLocalBlock2d) for m in doe.modules()) == 3
    assert not any(isinstance(m, NonLocalBlock2d) for m in DynamicOffsetEstimator(16, non_local=False).modules())
    sizes = []
    hooks = [d.register_forward_hook(lambda mod, i, o: sizes.append(tuple(o.shape[-2:]))) for d in doe.down]
    out = doe(torch.rand(2, 32, 19, 12))
    assert sizes == [(10, 6), (5, 3), (3, 2)] and out.shape == (2, 16, 19, 12)
    for h in hooks:
        h.remove()


def test_non_local_blocks_make_the_estimator_see_the_whole_image():
    """A conv-only estimator's output at one pixel ignores far-away pixels; with (non-zero) non-local
    blocks it depends on all of them."""
    torch.manual_seed(0)
    x = torch.rand(1, 32, 64, 64, requires_grad=True)
    reach = {}
    for nl in (False, True):
        torch.manual_seed(1)
        doe = DynamicOffsetEstimator(16, non_local=nl)
        for m in doe.modules():
            if isinstance(m, NonLocalBlock2d):
                torch.nn.init.normal_(m.W.weight, std=0.1)
        x.grad = None
        doe(x)[0, :, 2, 2].sum().backward()
        reach[nl] = (x.grad[0].abs().sum(0) > 0).float().mean().item()
    # (a few pixels lose every 2x2 max-pool of keys/values and get no gradient through them: hence > 0.99)
    assert reach[True] > 0.99 and reach[False] < 0.2, reach


# ---------------------------------------------------------------------------------------------- learning
def _smooth_features(seed, c=4, size=20):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, size, size, generator=g)
    k = torch.ones(c, 1, 5, 5) / 25
    return F.conv2d(F.conv2d(x, k, padding=2, groups=c), k, padding=2, groups=c) * 5


def _fit_alignment(shift: int, steps: int = 30):
    """Train one SSEN layer so that SSEN(f, ref) reproduces f, with ref = f moved right by ``shift`` px.

    The layer's weight is frozen near an identity map of the centre tap (1.6 I, so the mask must rise from
    0.5 to about 0.62, plus small random weights on every tap, so the loss is not zero at the start even for
    an identical reference): it cannot follow a shift by moving its weight to another tap, only the offsets
    can. Returns the mean (dy, dx) of the centre tap (the one with a large weight) and the final loss."""
    torch.manual_seed(0)
    block = SSEN(4, n_deform=1)
    layer = block.deforms[0]
    with torch.no_grad():
        layer.weight.normal_(0, 0.05)
        layer.weight[:, :, 1, 1] += 1.6 * torch.eye(4)
        layer.bias.zero_()
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
    opt = torch.optim.Adam([p for p in block.parameters() if p.requires_grad], lr=3e-2)
    f = _smooth_features(0, size=16)
    ref = torch.roll(f, shifts=shift, dims=-1)
    for _ in range(steps):
        with capture(block, "deforms.0.offset_head") as heads:
            loss = (block(f, ref) - f)[..., 3:-3, 3:-3].pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    offset = heads["deforms.0.offset_head"][0][..., 3:-3, 3:-3]
    return offset[:, 8].mean().item(), offset[:, 9].mean().item(), loss.item()   # the centre tap k = 4: (dy, dx)


def test_identical_reference_keeps_offsets_near_zero_and_a_shift_is_found():
    dy0, dx0, loss0 = _fit_alignment(0)
    assert abs(dy0) < 0.1 and abs(dx0) < 0.1, (dy0, dx0, loss0)
    dy1, dx1, loss = _fit_alignment(1)
    assert abs(dy1) < 0.2 and 0.7 < dx1 < 1.3, (dy1, dx1, loss)     # content moved right: read it 1 px to the right


def test_a_few_steps_lower_the_loss():
    """The untrained mini model is exactly bicubic (image_skip): a few Adam steps must improve on it, and every
    part of the reference branch must receive a gradient."""
    m = mini()
    hr = F.avg_pool2d(torch.rand(4, 3, 48, 48), 3, 1, 1)
    lr_ = F.avg_pool2d(hr, 4)
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    losses = []
    for _ in range(10):
        loss = (m(lr_, hr) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.97 * losses[0], losses
    for name in ("ref_head.0.weight", "ssen.estimators.0.inp.weight", "ssen.deforms.2.offset_head.conv.weight",
                 "ssen.deforms.0.weight", "fuse.weight"):
        assert m.get_parameter(name).grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------- patch search
def test_brute_force_patch_match_finds_a_shifted_copy():
    torch.manual_seed(0)
    key = torch.rand(1, 3, 14, 15)
    query = torch.roll(key, shifts=(2, -3), dims=(-2, -1))     # query(y, x) = key(y - 2, x + 3)
    idx, score = brute_force_patch_match(query, key)
    ys, xs = torch.meshgrid(torch.arange(14), torch.arange(15), indexing="ij")
    want = (ys - 2) * 15 + (xs + 3)
    inner = (slice(3, -1), slice(1, -4))
    assert torch.equal(idx[inner], want[inner]) and torch.allclose(score[inner], torch.ones_like(score[inner]))
    with pytest.raises(ValueError, match="same C"):
        brute_force_patch_match(query, key[:, :2])


# ---------------------------------------------------------------------------------------------- PatchGAN
@pytest.mark.parametrize("n_layers,rf", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_sees_exactly_its_receptive_field(n_layers, rf):
    assert receptive_field(n_layers) == rf
    torch.manual_seed(0)
    d = PatchDiscriminator(base=8, n_layers=n_layers, norm="none")
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[0, 0, i, j].backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0) > 0, as_tuple=True)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (rf, rf)


def test_patchgan_shapes_losses_and_a_few_steps():
    d = PatchDiscriminator(base=8)
    assert d(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    z = torch.zeros(3, 1, 4, 4)
    assert adversarial_loss(z, True).item() == pytest.approx(math.log(2))
    assert adversarial_loss(z + 1, True, "lsgan").item() == 0 and adversarial_loss(z + 1, False, "lsgan").item() == 1
    with pytest.raises(ValueError, match="vanilla"):
        adversarial_loss(z, True, "wgan")
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="group")
    torch.manual_seed(0)
    opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    real = F.avg_pool2d(torch.rand(4, 3, 64, 64), 5, 1, 2)
    losses = []
    for _ in range(6):
        fake = torch.rand(4, 3, 64, 64)
        loss = adversarial_loss(d(real), True) + adversarial_loss(d(fake), False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_gan_finetune_runs_and_changes_the_generator():
    from srlearn.data import RefPairDataset
    from srlearn.experiments.ssen import gan_finetune
    m = mini()
    before = [p.detach().clone() for p in m.parameters()]
    ds = RefPairDataset(["astronaut", "coffee"], lr_patch=12, length=8)
    hist = gan_finetune(m, ds, steps=2, batch_size=2, discriminator=PatchDiscriminator(base=8), device="cpu",
                        progress=False)
    assert len(hist["g_loss"]) == 2 and all(np.isfinite(hist["d_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters())) and not m.training


# ---------------------------------------------------------------------------------------------- the experiment helpers
def _fake_results(seeds=1):
    """A results dict as experiments.run writes it, with known per-image scores."""
    from srlearn.data import LEVELS
    def images(arm_offset, level_gain):
        return [{"name": f"{lv}/img#{k}", "psnr": 20 + arm_offset + level_gain.get(lv, 0) + 0.1 * k, "ssim": 0.5}
                for lv in LEVELS for k in range(2)]
    runs = []
    for s in range(seeds):
        runs.append({"arm": "sisr", "seed": s, "images": images(1 + 0.01 * s, {})})
        runs.append({"arm": "ssen", "seed": s, "images": images(1 + 0.01 * s, {"XH": 2.0, "H": 1.0, "XL": -0.05})})
    return {"baseline": {"arm": "bicubic", "images": images(0, {})}, "runs": runs, "seeds": seeds,
            "protocol": "Y-BT601/shave=4/uint8/MATLAB-BI"}


def test_level_rows_table_and_verdicts():
    from srlearn.experiments.ssen import level_rows, level_table, level_verdicts
    res = _fake_results()
    rows = level_rows(res)
    ssen_xh = [r for r in rows if r["arm"] == "ssen" and r["level"] == "XH"]
    assert len(rows) == 3 * 5 and ssen_xh[0]["psnr"] == pytest.approx(23.05)
    md = level_table(res).to_markdown()
    assert "| ssen | 23.05 (+2.00) | 22.05 (+1.00) | 21.05 (+0.00) | 21.05 (+0.00) | 21.00 (-0.05) |" in md
    v = {(x["level"], x["claim"].split(":")[1].strip()[:8]): x for x in level_verdicts(res)}
    assert v[("XH", "SSEN bea")]["verdict"] == "1 seed: no noise estimate, no verdict"
    assert v[("XL", "SSEN is ")]["verdict"] == "1 seed: no noise estimate, no verdict"
    assert v[("XL", "SSEN is ")]["holds"] is None
    three = _fake_results(seeds=3)
    for r in three["runs"]:   # seed spread: 0.01·s on every image
        if r["arm"] == "ssen":
            r["images"] = [{**im, "psnr": im["psnr"] - (0.5 if im["name"].startswith("XL") else 0)}
                           for im in r["images"]]
    by = {x["level"]: x for x in level_verdicts(three) if "beats" in x["claim"]}
    assert by["XH"]["verdict"] == "reproduced" and by["XH"]["n"] == [3, 3]
    assert by["M"]["verdict"] == "no measurable difference"        # Δ = 0 at M
    xl = [x for x in level_verdicts(three) if x["claim"].startswith("XL (very low): SSEN is")][0]
    assert xl["verdict"] == "worse by more than 0.1 dB" and xl["holds"] is False
    # both arms below the baseline: nothing to test
    three["baseline"]["images"] = [{**im, "psnr": im["psnr"] + 10} for im in three["baseline"]["images"]]
    assert {x["verdict"] for x in level_verdicts(three) if x["level"] in ("XH", "XL")} == \
        {"not testable: neither arm beats bicubic"}


def test_modulation_by_level_of_a_fresh_model_is_one_half():
    from srlearn.data import reference_pairs
    from srlearn.experiments.ssen import modulation_by_level
    pairs = reference_pairs("XH", size=48) + reference_pairs("XL", size=48)
    out = modulation_by_level(mini(), pairs)
    assert list(out) == ["XH", "XL"]
    assert out["XH"]["mask"] == [0.5, 0.5, 0.5] and out["XL"]["offset"] == [0.0, 0.0, 0.0]
    assert modulation_by_level(mini(modulated=False), pairs)["XH"]["mask"] is None
    with pytest.raises(ValueError, match="no deformable"):
        modulation_by_level(mini(n_deform=0), pairs)


def test_experiment_is_registered_with_the_baseline_ignoring_the_reference():
    from srlearn import experiments
    exp = experiments.get_experiment("ssen-refsr")
    assert [a.name for a in exp.arms] == ["sisr", "ssen", "ssen-1", "ssen-no-nl"]
    assert exp.budgets["full"].seeds >= 3 and exp.scale == 4
    base = exp.baseline_model(exp)
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(base(lr, torch.rand(1, 3, 32, 32)), imresize_torch(lr, 4))
    val = exp.make_val_data(exp, exp.budgets["quick"])
    assert len(val) == 5 * 3 * 2 and {n.split("/")[0] for n, *_ in val} == {"XH", "H", "M", "L", "XL"}
    own = experiments.Budget(steps=2, batch_size=2, lr_patch=10)          # a budget of one's own: 40² windows
    assert {hr.shape for _, _, hr, _ in exp.make_val_data(exp, own)} == {(40, 40, 3)}
    item = exp.make_train_data(exp, exp.budgets["quick"], 0)[0]
    assert [tuple(t.shape) for t in item] == [(3, 16, 16), (3, 64, 64), (3, 64, 64)]


def test_gan_finetune_runs_through_the_one_loop_and_its_checkpoints(tmp_path):
    """GAN fine-tuning is a Step of srlearn.train.train: its critic is in the checkpoint, its settings in the
    run's identity (a resume with another adversarial weight is refused), its losses in the History."""
    from srlearn.data import RefPairDataset
    from srlearn.experiments.ssen import gan_finetune
    from srlearn.train import CheckpointMismatch, load_checkpoint
    ds = RefPairDataset(["astronaut", "coffee"], lr_patch=12, length=8)
    ckpt = tmp_path / "gan.pt"
    hist = gan_finetune(mini(), ds, steps=2, batch_size=2, discriminator=PatchDiscriminator(base=8), device="cpu",
                        progress=False, ckpt_path=ckpt)
    assert len(hist["d_loss"]) == len(hist["pixel"]) == 2
    state = load_checkpoint(ckpt)
    assert state["step"] == 2 and set(state["step_state"]) == {"disc", "opt_d"}
    assert state["identity"]["step"]["kind"] == "gan" and state["identity"]["step"]["adv_weight"] == 5e-3
    with pytest.raises(CheckpointMismatch, match="step.adv_weight"):
        gan_finetune(mini(), ds, steps=2, batch_size=2, adv_weight=1e-2, discriminator=PatchDiscriminator(base=8),
                     device="cpu", progress=False, ckpt_path=ckpt)
