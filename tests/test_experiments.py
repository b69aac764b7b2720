"""Experiments: verdicts, results.json / report.md, checkpoint reuse, and the registered replications."""
import json

import numpy as np
import pytest
import torch

from srlearn import data, experiments
from srlearn.experiments import core
from srlearn.experiments.core import Arm, Budget, Comparison, Experiment


def _rows(arm, values):
    return [{"arm": arm, "seed": i, "psnr": v} for i, v in enumerate(values)]


def test_verdict_reproduced_within_noise_reversed_and_single_seed():
    c = Comparison("a", "b", "a beats b")
    v = experiments.verdict(_rows("a", [30.5, 30.6, 30.55]) + _rows("b", [30.0, 30.1, 30.05]), c)
    assert v["verdict"] == "reproduced" and v["tested"] and v["min_detectable"] == 0.05
    v = experiments.verdict(_rows("a", [30.0, 30.6, 29.9]) + _rows("b", [30.0, 30.2, 29.95]), c)
    assert v["verdict"] == "within seed noise" and abs(v["delta_psnr"] - (90.5 / 3 - 90.15 / 3)) < 1e-9 and v["tested"]
    assert experiments.verdict(_rows("a", [29.0, 29.1, 29.05]) + _rows("b", [30.0, 30.1, 30.05]), c)["verdict"] \
        == "not reproduced (reversed)"
    with pytest.raises(ValueError, match="no results"):
        experiments.verdict(_rows("a", [1.0]), Comparison("a", "zzz"))


def test_verdict_one_seed_gives_no_verdict_whatever_the_gap():
    c = Comparison("a", "b", "a beats b")
    for a, b in ((35.0, 30.0), (30.0, 35.0), (30.0, 30.001)):
        single = experiments.verdict(_rows("a", [a]) + _rows("b", [b]), c, baseline=None)
        assert single["verdict"] == "1 seed: no noise estimate, no verdict" and not single["tested"]
        assert np.isnan(single["stderr"]) and single["delta_psnr"] == pytest.approx(a - b)
    # one arm with three seeds and one with one: still no noise estimate for the difference
    assert experiments.verdict(_rows("a", [31, 31.1, 31.2]) + _rows("b", [30.0]), c)["verdict"].startswith("1 seed")


def test_verdict_below_the_minimum_detectable_difference_is_no_measurable_difference():
    c = Comparison("a", "b", "a beats b")
    # a 0.03 dB gap with almost no seed noise would pass the seed test; it is below the default 0.05 dB
    rows = _rows("a", [30.030, 30.031, 30.029]) + _rows("b", [30.000, 30.001, 29.999])
    v = experiments.verdict(rows, c)
    assert v["verdict"] == "no measurable difference" and not v["tested"]
    # the experiment's own threshold decides: with 0.01 dB the same gap is tested and reproduced
    assert experiments.verdict(rows, c, min_detectable=0.01)["verdict"] == "reproduced"
    assert experiments.verdict(rows[3:] + rows[:3], Comparison("b", "a"), min_detectable=0.01)["verdict"] \
        == "not reproduced (reversed)"
    with pytest.raises(ValueError, match="min_detectable"):
        experiments.verdict(rows, c, min_detectable=-1)
    assert Experiment("x", "x", 2, [], {}).min_detectable_db == 0.05


def test_verdict_is_not_testable_when_neither_arm_beats_the_baseline():
    c = Comparison("a", "b", "a beats b")
    rows = _rows("a", [29.0, 29.1, 29.05]) + _rows("b", [28.0, 28.1, 28.05]) + _rows("bicubic", [30.0] * 3)
    v = experiments.verdict(rows, c, baseline="bicubic")
    assert v["verdict"] == "not testable: neither arm beats bicubic" and not v["tested"]
    # the baseline's name comes from the experiment
    renamed = [{**r, "arm": "noisy input"} if r["arm"] == "bicubic" else r for r in rows]
    assert experiments.verdict(renamed, c, baseline="noisy input")["verdict"] == \
        "not testable: neither arm beats noisy input"
    # one arm above the baseline: the seed test runs
    above = _rows("a", [31.0, 31.1, 31.05]) + rows[3:]
    assert experiments.verdict(above, c, baseline="bicubic")["verdict"] == "reproduced"
    # a comparison with the baseline itself is always tested
    assert experiments.verdict(rows, Comparison("a", "bicubic"), baseline="bicubic")["verdict"] == \
        "not reproduced (reversed)"
    with pytest.raises(ValueError, match="baseline 'zzz' has no rows"):
        experiments.verdict(rows, c, baseline="zzz")


def _micro(name="micro-test"):
    """A seconds-long experiment on a small texture: two arms, the data hooks, one seed."""
    img = data.texture("blobs", size=64, seed=0)
    val_hr = data.modcrop(data.texture("stripes", size=48, seed=3), 2)
    val = [("stripes", data.imresize(val_hr, 0.5, mode="uint8"), val_hr)]
    return Experiment(
        name=name, description="micro", scale=2,
        arms=[Arm("edsr-tiny", "edsr", "mini", {"n_resblocks": 1, "n_feats": 8}),
              Arm("edsr-tiny2", "edsr", "mini", {"n_resblocks": 2, "n_feats": 8})],
        budgets={"quick": Budget(steps=4, batch_size=2, lr_patch=8, seeds=1, train={"lr": 1e-3, "schedule": "none"})},
        comparisons=[Comparison("edsr-tiny2", "edsr-tiny", "deeper is better"),
                     Comparison("edsr-tiny", "bicubic", "beats bicubic")],
        make_train_data=lambda exp, budget, seed: data.PairedPatchDataset([img], 2, lr_patch=8, length=8, seed=seed),
        make_val_data=lambda exp, budget: val,
    )


@pytest.fixture
def micro(monkeypatch):
    exp = _micro()
    monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    return exp


def test_run_writes_results_report_and_checkpoints(micro, tmp_path):
    res = experiments.run(micro.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for key in ("experiment", "mode", "device", "torch", "commit", "wall_seconds", "protocol", "baseline", "runs", "verdicts"):
        assert key in on_disk, key
    assert on_disk["experiment"] == micro.name and on_disk["mode"] == "quick" and on_disk["torch"] == torch.__version__
    assert [r["arm"] for r in on_disk["runs"]] == ["edsr-tiny", "edsr-tiny2"]
    for r in on_disk["runs"]:
        assert r["params"] > 0 and np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1
        assert (tmp_path / "checkpoints" / f"{r['arm']}-seed0.pt").exists()
        assert r["history"]["step"][-1] == 4
    # the baseline is the bicubic model, scored by the same protocol
    lr, hr = micro.make_val_data(micro, None)[0][1:]
    bic = data.to_uint8(torch.clamp(data.imresize_torch(data.to_tensor(lr)[None].double(), 2), 0, 1))
    from srlearn.metrics import psnr
    assert abs(on_disk["baseline"]["psnr"] - psnr(bic, hr, crop=2)) < 1e-9
    assert {v["claim"] for v in on_disk["verdicts"]} == {"deeper is better", "beats bicubic"}
    report = (tmp_path / "report.md").read_text()
    assert "edsr-tiny2" in report and "bicubic" in report and "Verdicts" in report
    verdict_rows = [line for line in report.splitlines() if line.startswith("| deeper is better")]
    assert len(verdict_rows) == 1 and verdict_rows[0].endswith("| 1 seed: no noise estimate, no verdict |")
    assert res["runs"][0]["psnr"] == on_disk["runs"][0]["psnr"]


def test_finished_checkpoints_are_reused_not_retrained(micro, tmp_path, monkeypatch):
    first = experiments.run(micro.name, mode="quick", out=tmp_path, device="cpu", progress=False)

    def boom(*a, **k):
        raise AssertionError("train() was called although a finished checkpoint exists")
    monkeypatch.setattr(core, "train", boom)
    again = experiments.run(micro.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    assert [r["psnr"] for r in again["runs"]] == [r["psnr"] for r in first["runs"]]


def test_run_rejects_unknown_names_and_modes(micro):
    with pytest.raises(KeyError, match="registered"):
        experiments.run("no-such-experiment", mode="quick")
    with pytest.raises(ValueError, match="no 'full' budget"):
        experiments.run(micro.name, mode="full")
    with pytest.raises(KeyError, match="no arm"):
        experiments.run(micro.name, mode="quick", arms=["nope"])


def test_sr_basics_is_registered_with_quick_and_full_budgets():
    exp = experiments.get_experiment("sr-basics")
    assert exp.scale == 2 and {"quick", "full"} <= set(exp.budgets)
    assert exp.budgets["full"].seeds >= 3 and exp.budgets["quick"].steps < exp.budgets["full"].steps
    for arm in exp.arms:   # every arm builds
        from srlearn.models import build
        assert build(arm.model, arm.preset, scale=exp.scale, **arm.overrides).scale == exp.scale


def test_a_mode_can_switch_preset_and_override_one_arm(micro, monkeypatch):
    from srlearn.models import build
    from srlearn.nn import count_parameters
    micro.budgets["full"] = Budget(steps=2, batch_size=2, lr_patch=8, seeds=1, train={"schedule": "none"},
                                   preset="baseline", overrides={"edsr-tiny": {"n_feats": 4}})
    res = experiments.run(micro.name, mode="full", device="cpu", progress=False)
    tiny, tiny2 = res["runs"]
    assert tiny["preset"] == tiny2["preset"] == "baseline"
    assert tiny["params"] == count_parameters(build("edsr", "baseline", scale=2, n_resblocks=1, n_feats=4))
    assert tiny2["params"] == count_parameters(build("edsr", "baseline", scale=2, n_resblocks=2, n_feats=8))
