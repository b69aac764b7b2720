"""The training loop: it learns, it resumes bit-exactly, it stops on time, it validates by the protocol
(on the EMA weights when EMA is on), its schedules/losses/EMA equal hand computations, bad configs fail."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlearn import metrics
from srlearn.models import build
from srlearn.train import (EMA, CharbonnierLoss, History, TrainConfig, load_checkpoint, lr_factor,
                           make_loss, make_scheduler, train, validate)
from srlearn.train.determinism import Batches as _Batches
from srlearn.train.distributed import DistContext


class SmoothPairs(torch.utils.data.Dataset):
    """Smooth random HR images (bilinear-upsampled noise), LR = 2x2 average pool. With ``augment``,
    each item is flipped at random using the global torch and numpy RNGs, as a patch dataset would."""

    def __init__(self, n=8, lr_size=8, scale=2, seed=0, augment=False):
        g = torch.Generator().manual_seed(seed)
        coarse = torch.rand(n, 3, lr_size // 2, lr_size // 2, generator=g)
        self.hr = F.interpolate(coarse, size=(lr_size * scale,) * 2, mode="bilinear", align_corners=False)
        self.lr = F.avg_pool2d(self.hr, scale)
        self.augment = augment

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        lr, hr = self.lr[i], self.hr[i]
        if self.augment:
            if torch.rand(()) < 0.5:
                lr, hr = lr.flip(-1), hr.flip(-1)
            if np.random.rand() < 0.5:
                lr, hr = lr.flip(-2), hr.flip(-2)
        return lr, hr


def uint8_pairs(data, count=2):
    q = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)   # noqa: E731
    return [(f"img{i}", q(data.lr[i]), q(data.hr[i])) for i in range(count)]


def edsr_mini():
    torch.manual_seed(0)
    return build("edsr", "mini")


def cfg(**kw):
    base = dict(steps=10, batch_size=4, lr=1e-3, val_every=0, log_every=1, device="cpu", progress=False)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------------------------------------------


def test_loss_goes_down_on_a_tiny_problem():
    data = SmoothPairs()
    history = train(edsr_mini(), data, cfg(steps=30, log_every=5, schedule="none"), val_data=uint8_pairs(data))
    assert history.step == [5, 10, 15, 20, 25, 30] and history.last_step == 30
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert history.stopped_by == "steps"
    assert history.val_step == [30] and math.isfinite(history.val_psnr[0])   # the final validation
    assert history.best_psnr == history.val_psnr[0] and history.best_step == 30


def _model_and_ema(ckpt):
    state = load_checkpoint(ckpt)
    return state["model"], state["ema"], state["history"]


def test_resume_is_bit_exact(tmp_path):
    """8 straight steps == 4 steps, crash, fresh model, resume, 4 more: identical weights (raw and EMA),
    optimiser path and history. Random flips and a warm-up + cosine schedule are on."""
    data = SmoothPairs(augment=True)
    val = uint8_pairs(data)
    kw = dict(steps=8, schedule="cosine", warmup_steps=2, ema=0.9, grad_clip=0.5, val_every=4,
              ckpt_every=4, seed=7)
    straight = train(edsr_mini(), data, cfg(ckpt_path=str(tmp_path / "a.pt"), **kw), val_data=val)

    class Crash(Exception):
        pass

    class CrashAfter(torch.utils.data.Dataset):   # dies when fetching batch 5, after the step-4 checkpoint
        def __init__(self, inner, fetches):
            self.inner, self.left = inner, fetches

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            self.left -= 1
            if self.left < 0:
                raise Crash
            return self.inner[i]

    b_cfg = cfg(ckpt_path=str(tmp_path / "b.pt"), **kw)
    with pytest.raises(Crash):
        train(edsr_mini(), CrashAfter(data, 1 + 4 * 4), b_cfg, val_data=val)   # 1 = train()'s item check
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 4
    fresh = build("edsr", "mini")                      # different initial weights: all must come from the file
    resumed = train(fresh, data, b_cfg, val_data=val, resume=True)

    a_model, a_ema, a_hist = _model_and_ema(tmp_path / "a.pt")
    b_model, b_ema, b_hist = _model_and_ema(tmp_path / "b.pt")
    for name in a_model:
        assert torch.equal(a_model[name], b_model[name]), name
        assert torch.equal(a_ema[name], b_ema[name]), name
    assert straight.loss == resumed.loss and straight.lr == resumed.lr
    assert straight.val_step == resumed.val_step == [4, 8] and straight.val_psnr == resumed.val_psnr
    assert a_hist["loss"] == b_hist["loss"]

    # The comparison can fail: another seed draws other batches and flips and ends elsewhere.
    other = train(edsr_mini(), data, cfg(ckpt_path=str(tmp_path / "c.pt"), **{**kw, "seed": 8}), val_data=val)
    c_model, _, _ = _model_and_ema(tmp_path / "c.pt")
    assert not all(torch.equal(a_model[n], c_model[n]) for n in a_model)
    assert other.loss != straight.loss


def test_resume_refuses_a_different_seed_or_model(tmp_path):
    data = SmoothPairs()
    path = str(tmp_path / "r.pt")
    train(edsr_mini(), data, cfg(steps=2, ckpt_path=path))
    with pytest.raises(ValueError, match="config.seed: checkpoint has 0, this run has 1.*resume=False"):
        train(edsr_mini(), data, cfg(steps=2, ckpt_path=path, seed=1), resume=True)
    with pytest.raises(ValueError, match="model_spec.kwargs.n_feats: checkpoint has 32, this run has 16"):
        train(build("edsr", "mini", n_feats=16), data, cfg(steps=2, ckpt_path=path), resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(edsr_mini(), data, cfg(steps=4), resume=str(tmp_path / "missing.pt"))


def test_batches_are_a_function_of_seed_and_step():
    ctx = DistContext()
    a = _Batches(n=5, batch_size=3, seed=1, start=0, ctx=ctx)
    flat = [i for t in range(5) for i in a.indices(t)]            # 15 draws = 3 epochs of 5
    for e in range(3):
        assert sorted(flat[5 * e:5 * e + 5]) == list(range(5))     # each epoch is a permutation
    later = iter(_Batches(n=5, batch_size=3, seed=1, start=3, ctx=ctx))
    assert [k[2] for k in next(later)] == a.indices(3)             # starting at step 3 gives batch 3
    assert [a.indices(t) for t in range(5)] != [_Batches(5, 3, 2, 0, ctx).indices(t) for t in range(5)]


def test_time_budget_stops_training():
    history = train(edsr_mini(), SmoothPairs(), cfg(steps=10**6, time_budget=0.5, schedule="none", log_every=50))
    assert history.stopped_by == "time_budget"
    assert 1 <= history.last_step < 10**6
    assert history.train_time >= 0.5
    assert history.step[-1] == history.last_step                  # the partial log window is recorded


def test_validation_uses_the_protocol():
    """validate() = quantise half-up to uint8, Y-PSNR with `scale` px shaved (srlearn.metrics.psnr)."""
    class Nearest(nn.Module):
        scale = 2

        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode="nearest") + 0.4 / 255   # rounds back down

    data = SmoothPairs(n=3)
    pairs = uint8_pairs(data, 3)
    got = validate(Nearest(), pairs)
    for name, lr, hr in pairs:
        sr = lr.repeat(2, 0).repeat(2, 1)
        assert got[name] == metrics.psnr(sr, hr, crop=2)
        assert got[name] != metrics.psnr(sr, hr, crop=0)
    bad = [("x", pairs[0][1], pairs[0][2][:-2])]
    with pytest.raises(ValueError, match="mod-crop"):
        validate(Nearest(), bad)


def test_ema_weights_are_the_ones_validated():
    data = SmoothPairs()
    val = uint8_pairs(data)
    model = edsr_mini()
    seen = []

    def cb(step, history, validated):
        seen.append((step, validated is not model, np.mean(list(validate(validated, val).values())),
                     np.mean(list(validate(model, val).values())), history.val_psnr[-1]))

    history = train(model, data, cfg(steps=10, ema=0.5, val_every=5), val_data=val, callbacks=[cb])
    assert [s[0] for s in seen] == history.val_step == [5, 10]
    for step, is_copy, ema_psnr, raw_psnr, recorded in seen:
        assert is_copy and ema_psnr == recorded and raw_psnr != recorded
    assert np.mean(list(validate(model, val).values())) == history.val_psnr[-1]   # model holds EMA on return


def test_cpu_bf16_autocast_runs_and_stays_finite():
    class Probe(nn.Module):
        scale = 2

        def __init__(self):
            super().__init__()
            self.conv, self.up, self.dtypes = nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2), set()

        def forward(self, x):
            y = self.conv(x)
            if self.training:
                self.dtypes.add(y.dtype)
            return self.up(y)

    torch.manual_seed(0)
    m = Probe()
    history = train(m, SmoothPairs(), cfg(steps=6, amp="bf16"))
    assert m.dtypes == {torch.bfloat16}
    assert all(math.isfinite(x) for x in history.loss) and history.loss[-1] < history.loss[0]
    assert all(torch.isfinite(p).all() for p in m.parameters())

    m = Probe()
    with pytest.warns(UserWarning, match="amp=True is ignored on cpu"):
        train(m, SmoothPairs(), cfg(steps=2, amp=True))
    assert m.dtypes == {torch.float32}


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-1), "steps must be an integer >= 1"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(), "needs `steps` or `time_budget`"),
    (dict(steps=10, loss="l2"), "unknown loss 'l2'; valid losses: l1, mse, charbonnier"),
    (dict(steps=10, schedule="poly"), "unknown schedule 'poly'"),
    (dict(steps=10, batch_size=0), "batch_size must be an integer >= 1"),
    (dict(steps=10, time_budget=-5), "time_budget must be a positive"),
    (dict(time_budget=60), "also set `steps`"),
    (dict(steps=10, amp="fp16"), "amp must be"),
    (dict(steps=10, ema=1.5), "ema is a decay in"),
    (dict(steps=10, schedule="cosine", warmup_steps=10), "warmup_steps"),
    (dict(steps=10, milestones=[6, 3]), "milestones must be increasing"),
    (dict(steps=10, betas=(0.9,)), "betas must be two numbers"),
])
def test_bad_config_values_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bad_training_data_raise_clear_errors():
    with pytest.raises(ValueError, match="hr = lr x scale"):
        train(build("edsr", "mini", scale=3), SmoothPairs(), cfg(steps=1))
    with pytest.raises(TypeError, match=r"\(lr, hr\) float CHW tensors"):
        train(edsr_mini(), [np.zeros((4, 4, 3))], cfg(steps=1))
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        from srlearn.train.distributed import shard
        shard([1, 2, 3], DistContext(rank=0, world_size=2))


def test_config_and_history_are_json_able():
    c = TrainConfig(steps=100, betas=(0.9, 0.99), milestones=[50], ckpt_path=None, ema=0.999)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"steps": 1, "lr_rate": 1})
    h = History(step=[1], loss=[0.5], lr=[1e-4], val_step=[1], val_psnr=[30.0], best_psnr=30.0, best_step=1)
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h


# --------------------------------------------------------------------------------------- schedules


def _lrs(config, at):
    """The lr the optimiser uses at each iteration in ``at``, by stepping the real scheduler."""
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=config.lr)
    sched = make_scheduler(opt, config)
    out = {}
    for it in range(max(at) + 1):
        if it in at:
            out[it] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out


def test_step_schedule_halves_at_50_and_75_percent():
    lrs = _lrs(TrainConfig(steps=100, lr=1e-4), [0, 49, 50, 74, 75, 99])
    expect = {0: 1e-4, 49: 1e-4, 50: 5e-5, 74: 5e-5, 75: 2.5e-5, 99: 2.5e-5}
    assert lrs == pytest.approx(expect, rel=1e-12)
    lrs = _lrs(TrainConfig(steps=100, lr=1e-4, milestones=[10], gamma=0.1), [9, 10, 99])
    assert lrs == pytest.approx({9: 1e-4, 10: 1e-5, 99: 1e-5}, rel=1e-12)
    assert _lrs(TrainConfig(steps=100, schedule="none"), [0, 99]) == {0: 1e-4, 99: 1e-4}


def test_cosine_schedule_with_warmup():
    c = TrainConfig(steps=110, lr=2e-4, min_lr=1e-6, schedule="cosine", warmup_steps=10)
    lrs = _lrs(c, [0, 4, 9, 10, 60, 110, 120])
    expect = {0: 2e-4 / 10, 4: 2e-4 * 5 / 10, 9: 2e-4, 10: 2e-4,
              60: (2e-4 + 1e-6) / 2,            # half-way through the cosine
              110: 1e-6, 120: 1e-6}             # the end, and flat after it
    assert lrs == pytest.approx(expect, rel=1e-9)
    assert lr_factor(60, c) == pytest.approx((1 + 1e-6 / 2e-4) / 2, rel=1e-12)


# -------------------------------------------------------------------------------------- losses, EMA


def test_losses_equal_hand_computations():
    sr, hr = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.1, 0.5, 0.7])
    d = [-0.1, 0.0, 0.3]
    assert make_loss("l1")(sr, hr).item() == pytest.approx(sum(abs(x) for x in d) / 3)
    assert make_loss("MSE")(sr, hr).item() == pytest.approx(sum(x * x for x in d) / 3)
    assert make_loss("charbonnier")(sr, hr).item() == pytest.approx(
        sum(math.sqrt(x * x + 1e-6) for x in d) / 3, rel=1e-6)
    assert make_loss("charbonnier")(hr, hr).item() == pytest.approx(1e-3)   # minimum is eps, not 0
    assert isinstance(make_loss("charbonnier"), CharbonnierLoss)
    with pytest.raises(ValueError, match="unknown loss 'ssim'; valid losses: l1, mse, charbonnier"):
        make_loss("ssim")


def test_ema_equals_hand_computation():
    net = nn.BatchNorm2d(2)                        # parameters (weight, bias) and buffers (running stats)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([1.0, 2.0]))
        net.bias.copy_(torch.tensor([0.0, -1.0]))
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([3.0, 0.0]))
        net.bias.copy_(torch.tensor([1.0, 1.0]))
        net.running_mean.copy_(torch.tensor([5.0, 6.0]))
    ema.update(net)
    torch.testing.assert_close(ema.module.weight, torch.tensor([0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 0]))
    torch.testing.assert_close(ema.module.bias, torch.tensor([0.9 * 0 + 0.1 * 1, 0.9 * -1 + 0.1 * 1]))
    torch.testing.assert_close(ema.module.running_mean, torch.tensor([5.0, 6.0]))   # copied, not averaged
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="decay must be in"):
        EMA(net, decay=1.0)


def test_worker_processes_draw_the_same_batches():
    """Random augmentations seeded per sample: loading in 2 worker processes changes nothing."""
    data = SmoothPairs(augment=True)
    a, b = edsr_mini(), edsr_mini()
    ha = train(a, data, cfg(steps=3, seed=5))
    hb = train(b, data, cfg(steps=3, seed=5, num_workers=2))
    assert ha.loss == hb.loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


class _RefModel(torch.nn.Module):
    """Output = nearest-upsampled LR + w * reference: only learnable through the extra input."""
    scale = 2

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, lr, ref):
        return torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest") + self.w * ref


class _RefPairs(torch.utils.data.Dataset):
    def __init__(self, n=8):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for _ in range(n):
            lr = torch.rand(3, 4, 4, generator=g) * 0.5
            ref = torch.rand(3, 8, 8, generator=g) * 0.5
            hr = torch.nn.functional.interpolate(lr[None], scale_factor=2, mode="nearest")[0] + 0.7 * ref
            self.items.append((lr, hr, ref))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_extra_inputs_reach_the_model_in_training_and_validation():
    """Items (lr, hr, ref) train model(lr, ref); validation items (name, lr, hr, ref) call it the same way."""
    torch.manual_seed(0)
    model = _RefModel()
    data = _RefPairs()
    lr, hr, ref = data[0]
    to_u8 = lambda t: (t.permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).numpy()
    val = [("a", to_u8(lr), to_u8(hr), to_u8(ref))]
    before = validate(model, val)["a"]
    hist = train(model, data, TrainConfig(steps=60, batch_size=4, lr=0.05, schedule="none", val_every=0,
                                          progress=False, device="cpu"), val_data=val)
    assert abs(model.w.item() - 0.7) < 0.1, model.w.item()
    assert hist.val_psnr[-1] > before + 3
