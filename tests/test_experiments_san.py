"""SAN's replications (srlearn/experiments/san.py): definitions, arms, schedules, helpers, a micro run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from srlearn import experiments
from srlearn.experiments import san as san_exp
from srlearn.experiments.core import Budget
from srlearn.models import build
from srlearn.nn import count_parameters, sqrtm_newton_schulz
from srlearn.nn.attention import SE, SOCA, NoAttention
from srlearn.nn.non_local import RegionNonLocal
from srlearn.train import TrainConfig, lr_factor

NAMES = ("san-attention", "san-ablation", "san-schedule")
REPO = Path(__file__).resolve().parents[1]


def _model(exp, arm):
    torch.manual_seed(0)
    return build(arm.model, arm.preset, scale=exp.scale, **arm.overrides)


# ----------------------------------------------------------------------------------------- definitions
@pytest.mark.parametrize("name", NAMES)
def test_registered_with_both_modes(name):
    exp = experiments.get_experiment(name)
    assert name in experiments.list_experiments()
    assert set(exp.budgets) == {"quick", "full"}
    assert exp.budgets["full"].seeds >= 3, "full mode needs >= 3 seeds for a noise estimate"
    assert exp.budgets["quick"].steps <= 100 and exp.budgets["quick"].val_max_size is not None
    for budget in exp.budgets.values():
        assert tuple(budget.train["betas"]) == (0.9, 0.99)          # SAN's Adam, papers.md §1.8
        TrainConfig(steps=budget.steps, batch_size=budget.batch_size, **budget.train)   # valid fields
    arm_names = {a.name for a in exp.arms} | {exp.baseline_name}
    for c in exp.comparisons:
        assert {c.better, c.worse} <= arm_names, c
    assert any(c.worse == "bicubic" for c in exp.comparisons), "every experiment checks the bicubic baseline"
    assert (REPO / exp.notebook).is_file(), f"{name} points to a missing notebook {exp.notebook}"


@pytest.mark.parametrize("name", NAMES)
def test_every_arm_builds_and_runs_forward(name):
    exp = experiments.get_experiment(name)
    x = torch.rand(1, 3, 8, 8)
    for arm in exp.arms:
        model = _model(exp, arm)
        assert model(x).shape == (1, 3, 8 * exp.scale, 8 * exp.scale)


def test_attention_arms_differ_only_in_the_gate():
    exp = experiments.get_experiment("san-attention")
    models = {arm.name: _model(exp, arm) for arm in exp.arms}
    assert set(models) == {"none", "se", "soca"}
    kinds = {name: {type(g.attention) for g in m.groups} for name, m in models.items()}
    assert kinds == {"none": {NoAttention}, "se": {SE}, "soca": {SOCA}}
    # same architecture otherwise: SE and SOCA have the same excitation, so the same parameter count
    assert count_parameters(models["se"]) == count_parameters(models["soca"]) > count_parameters(models["none"])
    assert all(isinstance(m.non_local, RegionNonLocal) and m.gamma is not None for m in models.values())


def test_ablation_arms_switch_rlnl_and_ssc():
    exp = experiments.get_experiment("san-ablation")
    seen = {}
    for arm in exp.arms:
        m = _model(exp, arm)
        seen[arm.name] = (isinstance(m.non_local, RegionNonLocal), m.gamma is not None)
        assert all(isinstance(g.attention, SOCA) for g in m.groups)
    assert seen == {"rlnl+ssc": (True, True), "rlnl": (True, False), "ssc": (False, True), "neither": (False, False)}


# ------------------------------------------------------------------------------------------- schedules
def _arm_config(exp, arm_name, mode):
    from srlearn.experiments.core import resolve_spec   # the run's settings as run_arm resolves them
    return resolve_spec(exp, arm_name, 0, mode).config(progress=False)


def test_schedule_experiment_full_mode_uses_the_real_iteration_counts():
    exp = experiments.get_experiment("san-schedule")
    released = _arm_config(exp, "released-schedule", "full")
    paper = _arm_config(exp, "paper-schedule", "full")
    assert released.lr == paper.lr == 1e-4
    for step, expected in [(0, 1.0), (2_499, 1.0), (2_500, 0.6), (5_000, 0.36), (exp.budgets["full"].steps - 1, 0.6 ** 7)]:
        assert lr_factor(step, released) == pytest.approx(expected)
        assert lr_factor(step, paper) == 1.0   # first halving at 200k iterations: beyond the budget


def test_schedule_quick_mode_is_the_full_curve_compressed():
    exp = experiments.get_experiment("san-schedule")
    full, quick = (_arm_config(exp, "released-schedule", m) for m in ("full", "quick"))
    ratio = full.steps / quick.steps
    for q in range(quick.steps):
        assert lr_factor(q, quick) == pytest.approx(lr_factor(int(q * ratio), full)), q


def test_released_and_paper_schedules_and_lr_curve():
    rel = san_exp.released_schedule(150_000)
    assert rel["milestones"][:3] == [2_500, 5_000, 7_500] and len(rel["milestones"]) == 59 and rel["gamma"] == 0.6
    curve = san_exp.lr_curve(30_000, 1e-4, **rel)
    assert curve[0] == 1e-4 and curve[2_500] == pytest.approx(6e-5)
    assert curve[25_000] == pytest.approx(1e-4 * 0.6 ** 10)           # papers.md §1.8: ~6e-7 after 25k
    paper = san_exp.lr_curve(30_000, 1e-4, **san_exp.paper_schedule(30_000))
    assert (paper == 1e-4).all()
    assert san_exp.paper_schedule(500_000)["milestones"] == [200_000, 400_000]
    with pytest.raises(ValueError, match="positive integers"):
        san_exp.released_schedule(100, every=0)
    with pytest.raises(ValueError, match="gamma"):
        san_exp.released_schedule(100, gamma=1.5)


# --------------------------------------------------------------------------------------------- helpers
def _spd(c=12, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(c, 3 * c, generator=g, dtype=dtype)
    return a @ a.T / (3 * c) + 0.05 * torch.eye(c, dtype=dtype)


def test_sigma_power_is_the_matrix_power():
    s = _spd()
    half = san_exp.sigma_power(s, 0.5)
    torch.testing.assert_close(half @ half, s)
    torch.testing.assert_close(san_exp.sigma_power(s, 1.0), s)
    torch.testing.assert_close(san_exp.sigma_power(s, 0.0), torch.eye(12, dtype=torch.float64))
    quarter = san_exp.sigma_power(s, 0.25)
    torch.testing.assert_close(quarter @ quarter, half)
    # Newton-Schulz converges to the same root on a well-conditioned matrix (sr-protocol.md §8 item 25)
    torch.testing.assert_close(sqrtm_newton_schulz(s, iters=25, eps=0.0), half, rtol=1e-8, atol=1e-8)
    # alpha < 1 compresses the spectrum: the condition number falls to its alpha-th power
    lam, lam_half = torch.linalg.eigvalsh(s), torch.linalg.eigvalsh(half)
    assert (lam_half[-1] / lam_half[0]).item() == pytest.approx((lam[-1] / lam[0]).sqrt().item(), rel=1e-8)
    batched = san_exp.sigma_power(torch.stack([s, 2 * s]), 0.5)
    torch.testing.assert_close(batched[1], 2 ** 0.5 * half)


def test_sigma_power_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        san_exp.sigma_power(torch.ones(3, 4), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        san_exp.sigma_power(_spd(), 1.5)


def test_attention_weights_and_fixed_gates():
    torch.manual_seed(0)
    model = build("san", "mini", attention="soca").eval()
    with pytest.raises(RuntimeError, match="forward"):
        san_exp.attention_weights(model)
    x, other = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12) ** 3
    with torch.no_grad():
        y = model(x)
    w = san_exp.attention_weights(model)
    assert w.shape == (2, 1, 32) and ((w > 0) & (w < 1)).all()
    torch.testing.assert_close(w[1, 0], model.groups[1].attention.last_weights[0])
    fixed = san_exp.with_fixed_gates(model, w[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), y)            # the same weights: the same output
        assert not torch.allclose(fixed(other), model(other), atol=1e-6)   # but they no longer adapt
    assert isinstance(model.groups[0].attention, SOCA), "the original model must be left untouched"
    with pytest.raises(ValueError, match=r"\(G, C\)"):
        san_exp.with_fixed_gates(model, w)
    with pytest.raises(ValueError, match="attention='none'"):
        san_exp.attention_weights(build("san", "mini", attention="none"))


# ------------------------------------------------------------------------------------------- micro run
def test_micro_run_of_one_arm_writes_results(tmp_path, monkeypatch):
    exp = experiments.get_experiment("san-attention")
    monkeypatch.setitem(exp.budgets, "quick", Budget(steps=3, batch_size=2, lr_patch=8, seeds=1, val_every=2,
                                                     val_max_size=16, train={"betas": (0.9, 0.99), "lr": 1e-3}))
    res = experiments.run("san-attention", mode="quick", out=tmp_path, progress=False, arms=["soca"])
    saved = json.loads((tmp_path / "results.json").read_text())
    for key in ("experiment", "mode", "device", "commit", "protocol", "baseline", "runs", "verdicts", "wall_seconds"):
        assert key in saved, key
    assert saved["experiment"] == "san-attention" and saved["mode"] == "quick"
    (run,) = saved["runs"]
    assert run["arm"] == "soca" and run["overrides"] == {"attention": "soca"}
    assert run["params"] == count_parameters(build("san", "mini", attention="soca"))
    assert run["history"]["last_step"] == 3 and run["history"]["val_step"] == [2, 3]
    assert [v["worse"] for v in saved["verdicts"]] == ["bicubic"]    # only comparisons whose arms ran
    assert "1 seed" in saved["verdicts"][0]["verdict"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "checkpoints" / "soca-seed0.pt").exists()
    assert res["runs"][0]["psnr"] == pytest.approx(run["psnr"])
