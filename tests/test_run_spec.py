"""One run spec: (experiment, arm, mode, command line) -> the settings a run trains with, under one
precedence rule (defaults < budget < arm < budget[arm] < command line), written into results.json."""
from __future__ import annotations

import dataclasses
import json

import pytest

from srlearn import cli, experiments
from srlearn.experiments.core import PRECEDENCE, Arm, Budget, Experiment, resolve_spec


def _exp() -> Experiment:
    return Experiment(
        name="spec-demo", description="precedence demo", scale=2,
        arms=[Arm("a", "edsr", "mini", {"n_feats": 16}, train={"lr": 1e-3, "gamma": 0.6}),
              Arm("b", "edsr", "mini")],
        budgets={"quick": Budget(steps=40, batch_size=4, train={"lr": 2e-3, "schedule": "step", "gamma": 0.5},
                                 preset="baseline", overrides={"a": {"n_feats": 24}},
                                 arm_train={"a": {"milestones": [10, 20]}})})


def test_one_precedence_rule_for_the_model_and_the_training():
    exp = _exp()
    a = resolve_spec(exp, "a", 1, "quick")
    assert a.preset == "baseline" and a.sources["model.preset"] == "budget"
    assert a.model_kwargs == {"n_feats": 24} and a.sources["model.n_feats"] == "budget[arm]"   # mode's arm entry wins
    assert a.train["lr"] == 1e-3 and a.sources["train.lr"] == "arm"                          # arm beats budget
    assert a.train["gamma"] == 0.6 and a.train["schedule"] == "step" and a.sources["train.schedule"] == "budget"
    assert a.train["milestones"] == [10, 20] and a.sources["train.milestones"] == "budget[arm]"
    assert a.train["seed"] == 1 and a.train["steps"] == 40
    b = resolve_spec(exp, "b", 0, "quick")
    assert b.train["lr"] == 2e-3 and "milestones" not in b.train and b.model_kwargs == {}
    cl = resolve_spec(exp, "a", 0, "quick", sets=["train.lr=5e-4", "model.n_feats=8", "model.preset=mini",
                                                  "train.schedule=cosine"])
    assert cl.train["lr"] == 5e-4 and cl.model_kwargs["n_feats"] == 8 and cl.preset == "mini"
    assert cl.train["schedule"] == "cosine" and {cl.sources[k] for k in ("train.lr", "model.n_feats",
                                                                          "model.preset")} == {"command line"}
    assert list(PRECEDENCE) == ["defaults", "budget", "arm", "budget[arm]", "command line"]
    cfg = a.config(progress=False)
    assert cfg.lr == 1e-3 and cfg.milestones == [10, 20] and cfg.seed == 1
    with pytest.raises(ValueError, match="must start with 'model.' or 'train.'"):
        resolve_spec(exp, "a", 0, "quick", sets=["lr=1"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        resolve_spec(exp, "a", 0, "quick", sets=["train.lr"])


def test_the_full_budgets_use_the_presets_they_were_meant_to():
    for name in ("san-attention", "san-ablation", "san-schedule", "ssen-refsr"):
        exp = experiments.get_experiment(name)
        assert {resolve_spec(exp, a, 0, "full").preset for a in exp.arms} == {"small"}, name
        assert {resolve_spec(exp, a, 0, "quick").preset for a in exp.arms} == {"mini"}, name


def test_show_spec_prints_every_setting_and_its_layer(capsys):
    assert cli.main(["replicate", "san-schedule", "--mode", "full", "--show-spec", "--set", "train.lr=3e-4"]) == 0
    out = capsys.readouterr().out
    assert "defaults < budget < arm < budget[arm] < command line" in out
    assert "[released-schedule] (a deliberate control)" in out
    assert "train.lr         = 0.0003   (command line)" in out and "model.preset     = 'small'   (budget)" in out
    assert "train.milestones = [2500, 5000" in out and "(budget[arm])" in out
    assert cli.main(["replicate", "san-schedule", "--show-spec", "--set", "train.lrr=1"]) == 2
    assert "unknown TrainConfig field(s) ['lrr']" in capsys.readouterr().err
    assert cli.main(["replicate", "san-schedule", "--show-spec", "--set", "model.n_feat=8"]) == 2
    assert "n_feats" in capsys.readouterr().err                               # the closest valid name


def test_results_record_each_runs_spec_and_a_changed_setting_cannot_reuse_its_checkpoint(tmp_path, monkeypatch):
    exp = experiments.get_experiment("sr-basics")
    monkeypatch.setitem(exp.budgets, "quick", dataclasses.replace(exp.budgets["quick"], steps=2, batch_size=2,
                                                                  val_every=0))
    experiments.run("sr-basics", mode="quick", out=tmp_path, progress=False, sets=["train.lr=1e-3"])
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["runs"][0]["spec"]["train.lr"] == 1e-3 and res["precedence"][-1] == "command line"
    with pytest.raises(ValueError, match="config.lr: checkpoint has 0.001, this run has 0.002"):
        experiments.run("sr-basics", mode="quick", out=tmp_path, progress=False)


def test_results_record_the_steps_the_runs_were_given(tmp_path, monkeypatch):
    exp = experiments.get_experiment("sr-basics")
    monkeypatch.setitem(exp.budgets, "quick", dataclasses.replace(exp.budgets["quick"], steps=4, batch_size=2,
                                                                  val_every=0))
    res = experiments.run("sr-basics", mode="quick", out=tmp_path, progress=False, sets=["train.steps=2"])
    assert res["budget"]["steps"] == 2 and res["runs"][0]["history"]["last_step"] == 2
