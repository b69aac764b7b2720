"""Full mode on the field's data: DIV2K HR patches with MATLAB-exact LR, Set5/Set14/B100/Urban100 by the protocol.

Tiny folders in DIV2K's and EDSR's layouts are built here from generated textures; nothing is downloaded.
"""
import dataclasses
import json

import numpy as np
import pytest
import torch

from srlearn import data, experiments
from srlearn.data import field
from srlearn.experiments import core


@pytest.fixture(autouse=True)
def no_field_data(monkeypatch, tmp_path):
    """Every test starts with no DIV2K, no benchmark and an empty data cache (never the user's)."""
    monkeypatch.delenv("SRLEARN_DIV2K", raising=False)
    monkeypatch.delenv("SRLEARN_BENCHMARK", raising=False)
    monkeypatch.setenv("SRLEARN_DATA", str(tmp_path / "cache"))


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    data.save_image(str(path), img)


@pytest.fixture
def div2k(tmp_path):
    root = tmp_path / "div2k"
    for i, kind in enumerate(("blobs", "checker", "noise"), start=1):
        _write(root / "DIV2K_train_HR" / f"{i:04d}.png", data.texture(kind, size=72, seed=i)[:, :70])
    return root


@pytest.fixture
def bench(tmp_path):
    root = tmp_path / "benchmark"
    sets = {"Set5": ("baby", "bird"), "Set14": ("zebra",), "B100": ("3096",), "Urban100": ("img_001",)}
    k = 0
    for s, stems in sets.items():
        for stem in stems:
            k += 1
            _write(root / s / "HR" / f"{stem}.png", data.texture("glyphs", size=40 + 2 * k, seed=k))
    _write(root / "Set5" / "LR_bicubic" / "X2" / "babyx2.png", np.zeros((21, 21, 3), np.uint8))   # ignored
    return root


def test_hr_patches_equal_crops_of_the_whole_images_matlab_lr():
    for scale in (2, 3, 4):
        img = data.texture("blobs", size=101, seed=scale)[:, :95]
        hr_full, lr_full = data.make_lr(img, scale, mode="float")   # PairedPatchDataset's degradation
        ds = data.HRPatchDataset([img], scale, lr_patch=7, length=64, seed=1)
        h, w = lr_full.shape[:2]
        corners = [(0, 0), (h - 7, w - 7), (0, w - 7), (h - 7, 0), (h // 2, 3)]
        corners += [(c["top"], c["left"]) for c in map(ds.crop_params, range(64))]
        for top, left in corners:
            lr, hr = ds.patch(0, top, left)
            assert np.array_equal(lr, lr_full[top:top + 7, left:left + 7]), (scale, top, left)
            assert np.array_equal(hr, hr_full[scale * top:scale * (top + 7), scale * left:scale * (left + 7)])
    lr_t, hr_t = ds[5]
    assert lr_t.shape == (3, 7, 7) and hr_t.shape == (3, 28, 28) and lr_t.dtype == torch.float32
    assert torch.equal(ds[5][0], lr_t)   # a pure function of (seed, i)
    with pytest.raises(ValueError, match="too small"):
        data.HRPatchDataset([img], 4, lr_patch=30)


def test_folders_are_found_through_the_environment_and_bad_ones_are_named(div2k, bench, monkeypatch, tmp_path):
    assert field.div2k_train_dir() is None and field.benchmark_dir() is None and field.benchmark_sets() == []
    monkeypatch.setenv("SRLEARN_DIV2K", str(div2k))
    monkeypatch.setenv("SRLEARN_BENCHMARK", str(bench))
    assert field.div2k_train_dir() == div2k / "DIV2K_train_HR"
    assert [p.name for p in field.div2k_train_images(limit=2)] == ["0001.png", "0002.png"]
    assert field.benchmark_sets() == ["Set5", "Set14", "B100", "Urban100"]
    pairs = field.benchmark_pairs(2, sets=["Set5"])
    assert [p[0] for p in pairs] == ["Set5/baby", "Set5/bird"]
    hr = data.load_image(bench / "Set5" / "HR" / "baby.png")
    ref_hr, ref_lr = data.make_lr(hr, 2, mode="uint8")   # the protocol: whole image, MATLAB uint8 path
    assert np.array_equal(pairs[0][2], ref_hr) and np.array_equal(pairs[0][1], ref_lr)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SRLEARN_DIV2K", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="DIV2K_train_HR/0001.png"):
        field.div2k_train_dir()
    monkeypatch.setenv("SRLEARN_BENCHMARK", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="SRLEARN_BENCHMARK"):
        field.benchmark_dir()


def test_the_registry_cache_is_used_without_downloading(div2k, tmp_path, monkeypatch):
    extracted = tmp_path / "cache" / "DIV2K_train_HR" / "extracted"
    extracted.mkdir(parents=True)
    (div2k / "DIV2K_train_HR").rename(extracted / "DIV2K_train_HR")
    assert field.div2k_train_dir() == extracted / "DIV2K_train_HR"
    assert data.registry.local_copy("benchmark") is None


def _tiny_full_budget(exp, monkeypatch, lr_patch=8, **kw):
    budget = dataclasses.replace(exp.budgets["full"], steps=2, batch_size=2, lr_patch=lr_patch, seeds=2, val_every=0,
                                 train={**exp.budgets["full"].train, "num_workers": 0, "log_every": 1,
                                                               "warmup_steps": 0}, **kw)
    monkeypatch.setitem(exp.budgets, "full", budget)
    return budget


def test_full_mode_trains_on_div2k_and_reports_the_benchmark_sets(div2k, bench, monkeypatch, tmp_path):
    monkeypatch.setenv("SRLEARN_DIV2K", str(div2k))
    monkeypatch.setenv("SRLEARN_BENCHMARK", str(bench))
    exp = experiments.get_experiment("sr-basics")
    _tiny_full_budget(exp, monkeypatch, max_train_images=2)
    made = []
    real = field.HRPatchDataset

    def spy(*a, **k):
        ds = real(*a, **k)
        made.append(ds)
        return ds
    monkeypatch.setattr(field, "HRPatchDataset", spy)
    res = experiments.run("sr-basics", mode="full", out=tmp_path / "out", device="cpu", progress=False)
    assert [d.names for d in made] == [["0001", "0002"]] * 2            # DIV2K, limited to 2 images, one per seed
    assert res["train_data"].startswith("DIV2K train HR (2 images")
    assert res["test_data"].startswith("Set5, Set14, B100, Urban100 (whole images")
    assert res["test_sets"] == ["Set5", "Set14", "B100", "Urban100"]
    assert res["validation_images"] == ["Set5/baby", "Set5/bird", "Set14/zebra", "B100/3096", "Urban100/img_001"]
    assert res["published"]["bicubic"]["Set5"].startswith("33.66 [S")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["train_data"] == res["train_data"] and saved["test_data"] == res["test_data"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### Set5" in report and "### Urban100" in report and "33.66 [S: sr-protocol.md §2.3]" in report
    for caption in (line for line in report.splitlines() if line.startswith("*Protocol:")):
        assert "Trained on DIV2K train HR (2 images" in caption and "tested on Set5, Set14" in caption
    # the per-set mean of a run is the mean of its images of that set
    from srlearn.experiments.report import set_rows
    run0 = res["runs"][0]
    set5 = [r for r in set_rows(res, "Set5") if r["arm"] == run0["arm"] and r["seed"] == 0][0]
    assert set5["psnr"] == pytest.approx(np.mean([im["psnr"] for im in run0["images"][:2]]))


def test_full_mode_without_the_field_data_says_so(monkeypatch):
    exp = experiments.get_experiment("sr-basics")
    with pytest.warns(UserWarning) as caught:
        src = core.data_sources(exp, "full")
    assert sorted(str(w.message).split(" to ")[-1][:12] for w in caught) == ["test on Set5", "train on the"]
    assert src["train_paths"] is None and "no DIV2K here" in src["train_data"]
    assert src["test_root"] is None and "no benchmark sets here" in src["test_data"]
    quick = core.data_sources(exp, "quick")   # quick mode: the offline images, and no warning needed
    assert quick["train_data"] == core.OFFLINE_TRAIN and quick["test_data"] == core.OFFLINE_TEST
    denoise = core.data_sources(experiments.get_experiment("mirnet-fusion"), "full")
    assert "noisy patches" in denoise["train_data"] and "noise" in denoise["test_data"]


def test_single_image_sr_hooks_take_div2k_in_full_mode(div2k, monkeypatch):
    monkeypatch.setenv("SRLEARN_DIV2K", str(div2k))
    for name in ("srdensenet-variants", "mirnet-fusion-sr"):
        exp = experiments.get_experiment(name)
        budget = _tiny_full_budget(exp, monkeypatch)
        ds = exp.make_train_data(exp, budget, 0)
        inner = getattr(ds, "dataset", ds)   # srdensenet wraps the RGB patches as Y planes
        assert isinstance(inner, field.HRPatchDataset) and inner.names == ["0001", "0002", "0003"], name
        lr, hr = ds[0]
        assert hr.shape[-1] == exp.scale * lr.shape[-1] == exp.scale * budget.lr_patch
    for name in ("mirnet-fusion", "ssen-refsr"):   # denoising and RefSR keep their own data
        assert not experiments.get_experiment(name).field_data


def test_ssen_refsr_full_mode_builds_its_validation_and_trains(monkeypatch):
    from srlearn.experiments.ssen import VALIDATION, _val_data
    exp = experiments.get_experiment("ssen-refsr")
    budget = _tiny_full_budget(exp, monkeypatch, lr_patch=16)   # the offset estimator needs 16² LR patches
    assert data.get_image("texture:stripes:1:512").shape == (512, 512, 3)   # held-out textures, 512²
    assert np.array_equal(data.get_image("texture:stripes:1:256"), data.get_image("texture:stripes:1"))
    pairs = _val_data(exp, budget)
    size, crops = VALIDATION["full"]["size"], VALIDATION["full"]["crops"]
    assert len(pairs) == 5 * 3 * crops and {p[2].shape for p in pairs} == {(size, size, 3)}
    assert {p[3].shape for p in pairs} == {(size, size, 3)} and {p[1].shape for p in pairs} == {(size // 4,) * 2 + (3,)}
    short = pairs[:: 4 * 3]   # one window per level: enough to score two steps of training
    budget = dataclasses.replace(budget, seeds=1)
    monkeypatch.setitem(exp.budgets, "full", budget)
    monkeypatch.setattr(exp, "make_val_data", lambda e, b: short)
    res = experiments.run("ssen-refsr", mode="full", device="cpu", progress=False, arms=["ssen"])
    assert res["runs"][0]["history"]["last_step"] == 2 and np.isfinite(res["runs"][0]["psnr"])
    assert res["train_data"].startswith("synthetic reference pairs")
