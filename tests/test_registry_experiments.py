"""Every registered experiment, without a test of its own: a few-step rehearsal of its quick mode (every
arm, one seed) writes results.json with one row per arm, the baseline, and a verdict for each of its
comparisons. A new experiment registered with ``register_experiment`` is rehearsed here for free."""
from __future__ import annotations

import dataclasses
import json

import pytest

from srlearn import experiments
from srlearn.experiments.core import EXPERIMENTS

NAMES = EXPERIMENTS.names()


def test_every_experiment_has_quick_and_full_budgets_and_valid_comparisons():
    for name in NAMES:
        exp = EXPERIMENTS[name]
        assert {"quick", "full"} <= set(exp.budgets), name
        assert exp.budgets["full"].seeds >= 3, f"{name}: full mode must run >= 3 seeds"
        arms = {a.name for a in exp.arms} | {exp.baseline_name}
        for c in exp.comparisons:
            assert {c.better, c.worse} <= arms, f"{name}: comparison {c} names an arm that does not exist"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_few_step_rehearsal_of_every_experiment(name, tmp_path, monkeypatch):
    exp = EXPERIMENTS[name]
    quick = exp.budgets["quick"]
    warmup = max([quick.train.get("warmup_steps", 0)] + [a.train.get("warmup_steps", 0) for a in exp.arms])
    tiny = dataclasses.replace(quick, steps=warmup + 2, batch_size=2, seeds=1, val_every=0)
    monkeypatch.setitem(exp.budgets, "quick", tiny)
    res = experiments.run(name, mode="quick", out=tmp_path, progress=False)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["experiment"] == name and written["mode"] == "quick"
    assert sorted(r["arm"] for r in written["runs"]) == sorted(a.name for a in exp.arms)
    assert all(r["history"] for r in written["runs"])
    assert written["baseline"]["arm"] == exp.baseline_name and written["baseline"]["psnr"] > 0
    assert len(res["verdicts"]) == len(exp.comparisons)
    assert (tmp_path / "report.md").exists()


@pytest.mark.parametrize("name", ["sr-basics", "mirnet-fusion"])
def test_the_learning_curve_and_the_table_use_one_protocol(name, tmp_path, monkeypatch):
    """The last validation point of a run is scored exactly like its row in the results table, with the
    experiment's Protocol (Y and shave = scale for SR; RGB and shave 0 for mirnet-fusion's denoising)."""
    exp = EXPERIMENTS[name]
    quick = exp.budgets["quick"]
    warmup = max([quick.train.get("warmup_steps", 0)] + [a.train.get("warmup_steps", 0) for a in exp.arms])
    monkeypatch.setitem(exp.budgets, "quick", dataclasses.replace(quick, steps=warmup + 2, batch_size=2, seeds=1,
                                                                  val_every=0))
    res = experiments.run(name, mode="quick", out=tmp_path, progress=False, arms=[exp.arms[0].name])
    row = res["runs"][0]
    assert row["history"]["val_psnr"][-1] == pytest.approx(row["psnr"], abs=1e-6)   # a protocol mismatch is dBs
    assert res["protocol"] == str(exp.scoring) and res["scoring"]["crop"] == exp.scoring.shave
    assert res["baseline"]["arm"] == exp.scoring.baseline
