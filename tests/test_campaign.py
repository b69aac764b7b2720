"""``srlearn campaign``: the plan, the budgets it derives, the archive, imports without the Jupyter stack,
and the CPU rehearsal of the whole path (the GPU campaign itself runs only where a GPU is lent)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from srlearn.experiments import core
from srlearn.experiments.campaign import ARCHIVE_LIMIT, campaign_budget, pack, plan_steps

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("pooch", "ipywidgets", "jupyter", "jupyterlab", "jupyter_client", "jupyter_core", "IPython",
           "ipykernel", "notebook", "nbformat", "nbclient")
BLOCK = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in BLOCKED)


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------------- plan
def test_plan_gives_equal_shares_and_fits_the_seconds():
    costs = {"a": [(0.01, 1.0)], "b": [(0.02, 1.0), (0.02, 1.0)]}
    steps = plan_steps(costs, seeds=3, workers=4, seconds=100, max_steps={"a": 10**6, "b": 10**6}, packing=1.0)
    spent = {n: 3 * sum(c + steps[n] * t for t, c in costs[n]) for n in costs}
    assert sum(spent.values()) <= 4 * 100
    assert abs(spent["a"] - spent["b"]) <= 3 * 0.04 + 1e-9      # equal shares, to one step of each arm
    assert steps["a"] == 6566 and steps["b"] == 1616            # floor((200 - 3) / 0.03), floor((200 - 6) / 0.12)


def test_plan_hands_a_capped_share_to_the_others():
    costs = {"a": [(0.01, 0.0)], "b": [(0.01, 0.0)]}
    capped = plan_steps(costs, seeds=1, workers=1, seconds=100, max_steps={"a": 1000, "b": 10**6}, packing=1.0)
    assert capped["a"] == 1000 and capped["b"] == 9000           # a uses 10 s of its 50: b gets the other 40


def test_plan_respects_min_steps_and_the_longest_run():
    costs = {"a": [(1.0, 0.0)]}
    assert plan_steps(costs, 3, 1, 1.0, {"a": 100}, min_steps=5) == {"a": 5}
    assert plan_steps({"a": [(0.1, 1.0)]}, 1, 8, 100, {"a": 10**6}, longest=11.0) == {"a": 100}


# ----------------------------------------------------------------------------------------------- budget
def test_campaign_budget_keeps_the_schedule_shape_and_the_arms_own_presets():
    sched = core.get_experiment("san-schedule")
    full = sched.budgets["full"]
    b = campaign_budget(sched, "full", 2000, time_budget=12.5)
    f = 2000 / full.steps
    assert b.steps == 2000 and b.val_every == 500
    released = full.arm_train["released-schedule"]["milestones"]         # the mode's entry for that arm
    assert b.arm_train["released-schedule"]["milestones"] == [round(m * f) for m in released]   # 250, ... 1750
    assert b.preset == sched.budgets["quick"].preset is None             # own presets: the arms' "mini"
    assert campaign_budget(sched, "full", 2000, presets="budget").preset == "small"
    assert b.train["time_budget"] == 12.5 and b.train["amp"] is False and b.train["num_workers"] == 0
    mir = core.get_experiment("mirnet-fusion")
    b = campaign_budget(mir, "full", 800)
    assert b.preset is None and b.overrides == {}              # run_arm then builds each arm's own preset
    assert {b.preset or a.preset for a in mir.arms} == {"tiny"}
    assert b.train["warmup_steps"] == round(mir.budgets["full"].train["warmup_steps"] * 800 / 8000)
    assert campaign_budget(mir, "full", 800, presets="budget").preset == "mini"
    assert campaign_budget(mir, "full", 1).train["warmup_steps"] == 0      # cosine needs warm-up < steps
    with pytest.raises(ValueError, match="presets must be"):
        campaign_budget(mir, "full", 10, presets="huge")


# ---------------------------------------------------------------------------------------------- archive
def test_pack_checks_the_limit_and_leaves_weights_out_when_over(tmp_path):
    (tmp_path / "exp" / "checkpoints").mkdir(parents=True)
    (tmp_path / "exp" / "results.json").write_text("{}")
    (tmp_path / "exp" / "checkpoints" / "a-seed0.pt").write_bytes(os.urandom(1000))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pt").write_bytes(os.urandom(50_000))
    info = pack(tmp_path, limit=ARCHIVE_LIMIT)
    names = tarfile.open(info["path"]).getnames()
    assert info["weights_included"] and "results/weights/w.pt" in names
    assert "results/exp/results.json" in names and not any("checkpoints" in n for n in names)
    small = pack(tmp_path, limit=10_000)
    assert not small["weights_included"] and small["within_limit"]
    assert "results/weights/w.pt" not in tarfile.open(small["path"]).getnames()


# ------------------------------------------------------------------------------------ without Jupyter
def test_campaign_path_imports_without_pooch_ipywidgets_or_jupyter():
    code = BLOCK + (
        "import srlearn.cli, srlearn.experiments.campaign, srlearn.weights, srlearn.viz\n"
        "from srlearn.experiments.report import write_report\n"
        "import srlearn.__main__\n"
        "assert srlearn.load_pretrained is srlearn.weights.load_pretrained\n"
        f"assert not [m for m in {BLOCKED!r} if sys.modules.get(m) is not None]\n"
        "print('imports ok')\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "imports ok" in p.stdout
    h = subprocess.run([sys.executable, "-m", "srlearn", "campaign", "--help"], cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert h.returncode == 0 and "--budget-seconds" in h.stdout and "--rehearse" in h.stdout


# ------------------------------------------------------------------------------------------- rehearsal
@pytest.mark.slow
def test_rehearsal_runs_the_campaign_path_on_the_cpu(tmp_path):
    """`python -m srlearn campaign --rehearse` (pooch, ipywidgets and Jupyter blocked in the main process):
    probe, plan, worker pool, 3 seeds, results/report/figures, weights, one archive within 16 MiB."""
    out = tmp_path / "results"
    budget = 90
    code = BLOCK + ("from srlearn.cli import main\n"
                    f"sys.exit(main(['campaign', '--rehearse', '--experiments', 'sr-basics,srdensenet-variants', "
                    f"'--budget-seconds', '{budget}', '--out', {str(out)!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                       timeout=budget + 60)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    info = json.loads((out / "campaign.json").read_text())
    assert info["rehearsal"] and info["wall_seconds"] <= budget
    g = info["gpu_tests"]      # `pytest -m gpu` ran inside the command (skipped here: no CUDA) and was counted
    assert g["ran"] and g["failed"] == 0 and g["error"] == 0 and g["passed"] + g["skipped"] >= 1, g
    assert "gpu" in g["command"] and (out / "gpu_tests.log").is_file()
    for name in ("sr-basics", "srdensenet-variants"):
        e = info["experiments"][name]
        assert e["ok"] and e["seeds_reported"] == 3, e
        res = json.loads((out / name / "results.json").read_text())
        assert res["seeds"] == 3 and res["campaign"]["environment"]["device"].startswith("cpu")
        assert {r["steps_run"] for r in res["runs"]} == {e["steps_planned"]} and e["steps_planned"] <= 2
        assert len(res["runs"]) == 3 * len(core.get_experiment(name).arms)
        assert "## Campaign" in (out / name / "report.md").read_text()
        assert (out / name / "curves_psnr.png").is_file()
    archive = out / "campaign.tar.gz"
    assert archive.stat().st_size <= ARCHIVE_LIMIT and info["archive"]["weights_included"]
    names = set(tarfile.open(archive).getnames())
    assert {"results/campaign.md", "results/sr-basics/results.json", "results/srdensenet-variants/report.md",
            "results/weights/manifest.json", "results/weights/srdensenet-variants/all.pt"} <= names
    manifest = json.loads((out / "weights" / "manifest.json").read_text())
    assert len(manifest["weights"]) == 1 + 5 and all(w["seed"] == 0 for w in manifest["weights"])


# ------------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_a_campaign_run_trains_and_evaluates_on_cuda(tmp_path):
    """The campaign's unit of work on the GPU (the campaign runs `pytest -m gpu` first, so this fails early)."""
    import dataclasses

    import numpy as np
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the campaign's GPU path runs on a GPU machine")
    from srlearn.train import load_model
    exp = core.get_experiment("sr-basics")
    budget = dataclasses.replace(campaign_budget(exp, "full", 3, time_budget=60.0), val_max_size=96)
    row = core.run_arm(exp, exp.arms[0], 0, "full", tmp_path, "cuda", False, budget=budget)
    assert row["history"]["last_step"] == 3 and row["history"]["stopped_by"] == "steps"
    assert np.isfinite(row["psnr"]) and row["psnr"] > 0
    model = load_model(tmp_path / "checkpoints" / f"{exp.arms[0].name}-seed0.pt")   # a GPU checkpoint opens on the CPU
    assert next(model.parameters()).device.type == "cpu"
