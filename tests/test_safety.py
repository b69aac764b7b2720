"""Runs that cannot corrupt each other (issue 10): checkpoint identity, resume only with the same
configuration, divergence stops, the command line means what it says, files that are not checkpoints,
and every "also seen" case. All trainings are a few steps on tiny images; nothing is downloaded."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlearn import _env, cli, data, experiments
from srlearn.data import registry as R
from srlearn.experiments import core
from srlearn.experiments.core import Budget
from srlearn.models import build, list_models
from srlearn.train import (CheckpointMismatch, TrainConfig, TrainingDiverged, check_identity, load_checkpoint,
                           run_identity, save_checkpoint, train, validate)
from srlearn.train import checkpoint as ckpt_mod

from test_experiments import _micro


def run_cli(*args):
    return cli.main([str(a) for a in args])


class Pairs(torch.utils.data.Dataset):
    """Smooth random ×2 pairs; ``nan_after``: items fetched after that many fetches hold a NaN."""

    def __init__(self, n=8, nan_after=None):
        g = torch.Generator().manual_seed(0)
        self.hr = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(16, 16), mode="bilinear")
        self.lr = F.avg_pool2d(self.hr, 2)
        self.nan_after, self.fetched = nan_after, 0

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        self.fetched += 1
        lr = self.lr[i].clone()
        if self.nan_after is not None and self.fetched > self.nan_after:
            lr[0, 0, 0] = float("nan")
        return lr, self.hr[i]


def cfg(**kw):
    base = dict(steps=4, batch_size=2, lr=1e-3, val_every=0, log_every=1, device="cpu", progress=False)
    return TrainConfig(**{**base, **kw})


def edsr_tiny():
    torch.manual_seed(0)
    return build("edsr", "mini", n_resblocks=1, n_feats=8)


def tiny_budget(budget: Budget, **kw) -> Budget:
    return dataclasses.replace(budget, **{**dict(steps=2, batch_size=2, lr_patch=8, val_every=0, val_max_size=32,
                                                  seeds=1), **kw})


# ------------------------------------------------------------------------------- 1. identity of a checkpoint
@pytest.fixture
def mirnet_tiny(monkeypatch):
    """mirnet-fusion and mirnet-fusion-sr (which share the arm names skff/sum/concat) at 2 steps."""
    for name in ("mirnet-fusion", "mirnet-fusion-sr"):
        exp = core.get_experiment(name)
        monkeypatch.setitem(exp.budgets, "quick", tiny_budget(exp.budgets["quick"], steps=6))   # > warm-up 4
    return core


def test_two_experiments_in_one_folder_error_instead_of_reusing(mirnet_tiny, tmp_path, monkeypatch):
    out = tmp_path / "shared"
    first = experiments.run("mirnet-fusion", mode="quick", out=out, device="cpu", progress=False, arms=["skff"])
    results_before = (out / "results.json").read_bytes()
    ckpt_before = (out / "checkpoints" / "skff-seed0.pt").read_bytes()
    assert first["experiment"] == "mirnet-fusion"

    # the denoiser's results.json is found first: nothing trains, nothing is overwritten
    with pytest.raises(CheckpointMismatch, match="'mirnet-fusion'.*'mirnet-fusion-sr'.*--out.*--restart"):
        experiments.run("mirnet-fusion-sr", mode="quick", out=out, device="cpu", progress=False, arms=["skff"])
    assert (out / "results.json").read_bytes() == results_before

    # without results.json, the checkpoint itself says who made it
    (out / "results.json").unlink()

    def no_training(*a, **k):
        raise AssertionError("nothing may train when a checkpoint of another run is in the folder")
    with monkeypatch.context() as m:
        m.setattr(core, "train", no_training)
        with pytest.raises(CheckpointMismatch) as info:
            experiments.run("mirnet-fusion-sr", mode="quick", out=out, device="cpu", progress=False, arms=["skff"])
    msg = str(info.value)
    assert "experiment: checkpoint has 'mirnet-fusion', this run has 'mirnet-fusion-sr'" in msg
    assert "model_spec.kwargs.scale: checkpoint has 1, this run has 2" in msg
    assert "--out" in msg and "--restart" in msg
    assert (out / "checkpoints" / "skff-seed0.pt").read_bytes() == ckpt_before   # kept as it was

    # --restart trains the SR arm for real and replaces the checkpoint
    res = experiments.run("mirnet-fusion-sr", mode="quick", out=out, device="cpu", progress=False, arms=["skff"],
                          restart=True)
    state = load_checkpoint(out / "checkpoints" / "skff-seed0.pt")
    assert state["identity"]["experiment"] == "mirnet-fusion-sr" and state["model_spec"]["kwargs"]["scale"] == 2
    assert res["runs"][0]["history"]["step"][-1] == 6 and math.isfinite(res["runs"][0]["psnr"])


def test_cli_default_output_is_one_folder_per_experiment(tmp_path, monkeypatch, capsys):
    a, b = _micro("micro-a"), _micro("micro-b")          # same arm names, as mirnet-fusion and -sr
    for exp in (a, b):
        monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    monkeypatch.chdir(tmp_path)
    for exp in (a, b):
        assert run_cli("replicate", exp.name, "--mode", "quick", "--device", "cpu", "--no-progress") == 0
    for exp in (a, b):
        assert json.loads((tmp_path / "runs" / exp.name / "results.json").read_text())["experiment"] == exp.name
        assert (tmp_path / "runs" / exp.name / "checkpoints" / "edsr-tiny-seed0.pt").is_file()
    # an explicit shared --out: the second experiment is an error naming both and the ways out
    shared = tmp_path / "shared"
    assert run_cli("replicate", a.name, "--mode", "quick", "--out", shared, "--device", "cpu", "--no-progress") == 0
    capsys.readouterr()
    assert run_cli("replicate", b.name, "--mode", "quick", "--out", shared, "--device", "cpu", "--no-progress") == 2
    err = capsys.readouterr().err
    assert "micro-a" in err and "micro-b" in err and "--out" in err and "--restart" in err
    assert "Traceback" not in err
    assert json.loads((shared / "results.json").read_text())["experiment"] == a.name
    # --restart replaces them
    assert run_cli("replicate", b.name, "--mode", "quick", "--out", shared, "--device", "cpu", "--no-progress",
                   "--restart") == 0
    assert json.loads((shared / "results.json").read_text())["experiment"] == b.name


def _two_modes(name="micro-modes"):
    exp = _micro(name)
    quick = exp.budgets["quick"]
    exp.budgets["full"] = dataclasses.replace(quick, steps=6, train={"lr": 5e-4, "schedule": "none"})
    return exp


def test_quick_then_full_in_one_folder_is_an_error(tmp_path, monkeypatch):
    exp = _two_modes()
    monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    experiments.run(exp.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    with pytest.raises(CheckpointMismatch, match="mode 'quick'.*mode 'full'"):
        experiments.run(exp.name, mode="full", out=tmp_path, device="cpu", progress=False)
    (tmp_path / "results.json").unlink()
    with pytest.raises(CheckpointMismatch) as info:
        experiments.run(exp.name, mode="full", out=tmp_path, device="cpu", progress=False)
    msg = str(info.value)
    assert "mode: checkpoint has 'quick', this run has 'full'" in msg
    assert "config.lr: checkpoint has 0.001, this run has 0.0005" in msg
    assert "config.steps: checkpoint has 4, this run has 6" in msg
    # the same mode again reuses its finished checkpoints (the identity matches)
    res = experiments.run(exp.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    assert res["mode"] == "quick"


def test_a_killed_quick_run_resumes_but_a_full_run_does_not_take_it_over(tmp_path, monkeypatch):
    exp = _two_modes("micro-kill")
    monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    _, _, config, ckpt, _ = core._arm_setup(exp, exp.arms[0], 0, "quick", tmp_path, torch.device("cpu"), False)
    assert config.ckpt_every < config.steps          # a checkpoint before the end

    class Killed(Exception):
        pass

    real = exp.make_train_data

    def dies(exp_, budget, seed):
        inner = real(exp_, budget, seed)

        class Dies(torch.utils.data.Dataset):
            fetched = 0

            def __len__(self):
                return len(inner)

            def __getitem__(self, i):
                Dies.fetched += 1
                if Dies.fetched > 1 + 3 * budget.batch_size:   # the item check + 3 steps
                    raise Killed
                return inner[i]
        return Dies()

    exp.make_train_data = dies
    with pytest.raises(Killed):
        experiments.run(exp.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    assert 0 < load_checkpoint(ckpt)["step"] < exp.budgets["quick"].steps
    exp.make_train_data = real

    with pytest.raises(CheckpointMismatch, match="mode: checkpoint has 'quick', this run has 'full'"):
        experiments.run(exp.name, mode="full", out=tmp_path, device="cpu", progress=False)

    resumed = []
    real_train = core.train

    def spy(*a, **k):
        resumed.append(k.get("resume"))
        return real_train(*a, **k)
    monkeypatch.setattr(core, "train", spy)
    res = experiments.run(exp.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    assert resumed[0] is True and resumed[1] is False          # arm 1 resumed, arm 2 fresh
    assert res["runs"][0]["history"]["step"][-1] == 4 and load_checkpoint(ckpt)["step"] == 4


def test_every_registered_quick_budget_checkpoints_before_its_end():
    for name in core.list_experiments():
        exp = core.get_experiment(name)
        for mode, budget in exp.budgets.items():
            for arm in exp.arms:
                every = {"ckpt_every": core.default_ckpt_every(budget.steps), **budget.train, **arm.train}["ckpt_every"]
                assert 1 <= every < budget.steps, (name, mode, arm.name, every, budget.steps)


# -------------------------------------------------------------------- 2. resume with a changed configuration
def test_train_resume_refuses_a_changed_config_or_identity(tmp_path):
    path = tmp_path / "r.pt"
    train(edsr_tiny(), Pairs(), cfg(steps=2, ckpt_path=str(path)))
    with pytest.raises(CheckpointMismatch, match="config.lr: checkpoint has 0.001, this run has 0.0002"):
        train(edsr_tiny(), Pairs(), cfg(steps=2, ckpt_path=str(path), lr=2e-4), resume=True)
    with pytest.raises(CheckpointMismatch, match="config.schedule"):
        train(edsr_tiny(), Pairs(), cfg(steps=2, schedule="none"), resume=str(path))
    with pytest.raises(CheckpointMismatch, match="arm: checkpoint has None, this run has 'x'"):
        train(edsr_tiny(), Pairs(), cfg(steps=2, ckpt_path=str(path)), resume=True, identity={"arm": "x"})
    # what does not change the training (device, progress, workers, the path) may differ
    again = train(edsr_tiny(), Pairs(), cfg(steps=2, ckpt_path=str(path), progress=True, num_workers=0),
                  resume=str(path))
    assert again.last_step == 2
    # the identity is in the checkpoint and check_identity is usable on its own
    state = load_checkpoint(path)
    assert state["identity"]["config"]["lr"] == 1e-3 and state["identity"]["config"]["milestones"] == [1, 1]
    check_identity(state, run_identity(TrainConfig.from_dict(state["config"]), state["model_spec"]))
    with pytest.raises(CheckpointMismatch, match="seed"):
        check_identity(state, {"config": {**state["identity"]["config"], "seed": 3}})


# -------------------------------------------------------------------------------------------- 3. divergence
def test_a_nan_in_the_data_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "d.pt"
    data_ = Pairs(nan_after=1 + 3 * 2)      # item check + 3 good steps; step 4 sees a NaN
    with pytest.raises(TrainingDiverged) as info:
        train(edsr_tiny(), data_, cfg(steps=8, ckpt_path=str(path), ckpt_every=2, log_every=5))
    msg = str(info.value)
    assert "step 4" in msg and "loss nan" in msg and str(path) in msg and "(step 2)" in msg
    state = load_checkpoint(path)
    assert state["step"] == 2                                    # never overwritten by NaN weights
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert all(math.isfinite(x) for x in state["history"]["loss"])


def test_a_non_finite_gradient_with_a_finite_loss_stops_training(tmp_path):
    class SqrtAtZero(nn.Module):        # d sqrt(w)/dw at w = 0 is inf; 0 * inf = nan in the gradient
        scale = 2

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return F.interpolate(self.conv(x), scale_factor=2) + 0 * self.w.sqrt()

    with pytest.raises(TrainingDiverged, match=r"step 1: loss [0-9.e-]+, gradient norm nan.*no checkpoint"):
        train(SqrtAtZero(), Pairs(), cfg(steps=3))


def test_validation_never_scores_a_nan_output():
    class NaNOut(nn.Module):
        scale = 2

        def forward(self, x):
            return torch.full((x.shape[0], 3, x.shape[2] * 2, x.shape[3] * 2), float("nan"))

    lr = np.zeros((8, 8, 3), np.uint8)
    hr = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="NaN or inf"):
        validate(NaNOut(), [("img", lr, hr)])
    with pytest.raises(ValueError, match="NaN or inf"):
        core.evaluate_model(NaNOut(), [("img", lr, hr)], 2)


# ----------------------------------------------------------------------------- 4. the command line decides
def test_explicit_mode_beats_the_environment(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SRLEARN_MODE", "full")
    assert _env.mode("quick") == "quick" and _env.mode() == "full" and _env.mode("auto") == "full"
    exp = _micro("micro-mode")            # it has no full budget: running full would be an error
    monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    out = tmp_path / "o"
    assert run_cli("replicate", exp.name, "--mode", "quick", "--out", out, "--device", "cpu", "--no-progress") == 0
    assert json.loads((out / "results.json").read_text())["mode"] == "quick"
    assert run_cli("replicate", exp.name, "--out", tmp_path / "p", "--device", "cpu", "--no-progress") == 2
    assert "no 'full' budget" in capsys.readouterr().err        # auto: the environment's full
    with pytest.raises(ValueError, match="not a mode"):
        _env.mode("fast")
    monkeypatch.setenv("SRLEARN_DEVICE", "cuda:7")           # --device cpu beats SRLEARN_DEVICE too
    assert _env.device("cpu") == torch.device("cpu")


def test_seeds_must_be_at_least_one(micro_exp, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_cli("replicate", micro_exp.name, "--seeds", "0", "--out", tmp_path)
    assert ">= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seeds must be an integer >= 1"):
        experiments.run(micro_exp.name, mode="quick", seeds=0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="seeds must be an integer >= 1"):
        experiments.run(micro_exp.name, mode="quick", seeds=1.5, device="cpu", progress=False)


@pytest.fixture
def micro_exp(monkeypatch):
    exp = _micro("micro-safety")
    monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    return exp


# ------------------------------------------------------------------------------- 5. files that are not checkpoints
def test_each_kind_of_non_checkpoint_gets_its_own_message(tmp_path):
    cases = {
        "empty.pt": (b"", "is empty"),
        "one.pt": (b"\x07", "only 1 bytes"),
        "two.pt": (b"e\n", "is a text file"),
        "notes.pt": (b"step,loss\n1,0.3\n", "is a text file"),
        "lfs.pt": (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 1234\n",
                   "git-LFS pointer"),
        "random.pt": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a PyTorch"),
    }
    good = tmp_path / "good.pt"
    save_checkpoint(good, step=1, model={"w": torch.arange(1000.0)})
    cases["truncated.pt"] = (good.read_bytes()[:300], "truncated or corrupt")
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=expected) as info:
            load_checkpoint(tmp_path / name)
        assert "weights_only=False" not in str(info.value), name     # never the unsafe advice
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": ckpt_mod.FORMAT, "obj": ValueError("a foreign object")}, unsafe)
    with pytest.raises(ValueError, match="weights_only=False"):
        load_checkpoint(unsafe)


def test_cli_evaluate_reports_a_bad_checkpoint_without_a_traceback(tmp_path, capsys):
    (tmp_path / "hr").mkdir()
    data.save_image(tmp_path / "hr" / "a.png", data.texture("blobs", size=16, seed=0))
    (tmp_path / "x.pt").write_bytes(b"hi")
    assert run_cli("evaluate", "--checkpoint", tmp_path / "x.pt", "--images", tmp_path / "hr", "--scale", 2) == 2
    assert "text file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- also seen: models
@pytest.mark.parametrize("name", list_models())
def test_a_non_integer_scale_is_rejected_by_every_model(name):
    for bad in (2.5, 2.0, "2", True, 0):
        with pytest.raises(ValueError, match="scale must be a positive integer"):
            build(name, "mini", scale=bad)


def test_unknown_mistyped_and_ill_typed_overrides_list_what_is_valid():
    with pytest.raises(ValueError, match=r"no option 'n_feat'\. Did you mean 'n_feats'\?.*n_resblocks \(int\)"):
        build("edsr", "mini", n_feat=32)
    with pytest.raises(ValueError, match=r"n_feats='32' is a str, but n_feats takes int"):
        build("edsr", "mini", n_feats="32")
    with pytest.raises(ValueError, match="no option 'wings'.*connectivity"):
        build("srdensenet", "mini", wings=2)
    with pytest.raises(ValueError, match="no option 'in_channels'"):   # set by colour=, not an override
        build("srdensenet", "mini", in_channels=3)
    with pytest.raises(ValueError, match="non_local=1 is a int, but non_local takes bool"):
        build("san", "mini", non_local=1)
    assert build("san", "mini", non_local=False).srlearn_spec["kwargs"]["non_local"] is False
    assert build("edsr", "mini", res_scale=1).srlearn_spec["kwargs"]["res_scale"] == 1   # an int for a float


@pytest.mark.parametrize("name", [n for n in list_models() if n not in ("bicubic", "srdensenet", "residual-sr")])
def test_wrong_channel_count_and_dtype_are_clear_errors(name):
    torch.manual_seed(0)
    model = build(name, "mini")
    def args(x):   # SSEN also takes a reference image, scale x the LR size
        s = model.scale
        return (x, torch.zeros(1, x.shape[1], x.shape[2] * s, x.shape[3] * s, dtype=x.dtype)) if name == "ssen" else (x,)
    with pytest.raises(ValueError, match="takes 3-channel input.*got 1 channels"):
        model(*args(torch.rand(1, 1, 16, 16)))
    with pytest.raises(ValueError, match="float32 weights but got a torch.float16 input.*x.float"):
        model(*args(torch.rand(1, 3, 16, 16).half()))
    with pytest.raises(ValueError, match="float images"):
        model(*args((torch.rand(1, 3, 16, 16) * 255).to(torch.uint8)))
    assert model(*args(torch.rand(1, 3, 16, 16))).shape[1] == 3


def test_edsr_cannot_be_built_for_one_channel():
    with pytest.raises(ValueError, match="in_channels must be 3"):
        build("edsr", "mini", in_channels=1)


# ------------------------------------------------------------------------------ also seen: files and folders
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_orphaned_checkpoint_temporaries_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "run.pt"
    orphan = tmp_path / f".run.pt.{_dead_pid()}.abcd1234.tmp"
    orphan.write_bytes(b"x" * 100)
    live = tmp_path / f".run.pt.{os.getpid()}.zzzz9999.tmp"      # a writer that is alive: kept
    live.write_bytes(b"y")
    old_legacy = tmp_path / ".run.pt.k2j3h4g5.tmp"               # no pid, written long ago: removed
    old_legacy.write_bytes(b"z")
    os.utime(old_legacy, (1, 1))
    save_checkpoint(target, step=1)
    assert not orphan.exists() and not old_legacy.exists() and live.exists() and target.is_file()


def test_orphans_in_an_output_folder_are_removed_by_the_next_run(micro_exp, tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    dead = _dead_pid()
    orphans = [ck / f".edsr-tiny-seed0.pt.{dead}.q1w2e3r4.tmp", tmp_path / f".results.json.{dead}.tmp"]
    for o in orphans:
        o.write_bytes(b"half")
    experiments.run(micro_exp.name, mode="quick", out=tmp_path, device="cpu", progress=False)
    assert not any(o.exists() for o in orphans)
    assert not [p.name for p in tmp_path.rglob(".*") if p.name.endswith(".tmp")]


def test_orphaned_downloads_and_extractions_are_removed_by_the_next_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("SRLEARN_DATA", str(tmp_path / "cache"))
    from test_registry import register_fake
    ds = register_fake(monkeypatch, tmp_path)
    folder = tmp_path / "cache" / ds.name
    folder.mkdir(parents=True)
    dead = _dead_pid()
    part = folder / f".{ds.fname}.{dead}.a1b2c3d4.part"
    part.write_bytes(b"\0" * 1000)
    partial = folder / f".extracted.{dead}.e5f6g7h8.partial"
    (partial / "top").mkdir(parents=True)
    (partial / "top" / "0001.png").write_bytes(b"half")
    old_mask = os.umask(0o022)
    try:
        out = R.fetch(ds.name, progressbar=False)
    finally:
        os.umask(old_mask)
    assert (out / "0001.png").is_file()
    assert not part.exists() and not partial.exists()
    assert stat.S_IMODE((folder / "extracted").stat().st_mode) == 0o755        # not mkdtemp's 0700
    assert stat.S_IMODE((folder / ds.fname).stat().st_mode) == 0o644          # not mkstemp's 0600
    assert sorted(p.name for p in folder.iterdir()) == sorted([ds.fname, "extracted"])


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    "http404",
])
def test_network_errors_say_how_to_download_by_hand(monkeypatch, tmp_path, error):
    monkeypatch.setenv("SRLEARN_DATA", str(tmp_path / "cache"))
    from test_registry import register_fake
    ds = register_fake(monkeypatch, tmp_path)
    if error == "http404":
        import requests
        response = requests.Response()
        response.status_code = 404
        error = requests.HTTPError("404 Client Error: Not Found for url", response=response)

    def downloader(url, progressbar):
        def fail(url, output_file, pooch_obj=None):
            with open(output_file, "wb") as f:
                f.write(b"partial")          # something arrived before the connection dropped
            raise error
        return fail

    monkeypatch.setattr(R, "_downloader", downloader)
    with pytest.raises(R.DownloadError) as info:
        R.fetch(ds.name, progressbar=False)
    msg = str(info.value)
    assert "by hand" in msg and str(tmp_path / "cache" / ds.name / ds.fname) in msg and ds.urls[0] in msg
    folder = tmp_path / "cache" / ds.name
    assert not folder.exists() or list(folder.iterdir()) == []          # nothing half-written
    assert isinstance(info.value, OSError)                               # the CLI reports it as an error


def test_out_that_is_a_file_or_not_writable_is_an_error_not_a_traceback(micro_exp, tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    assert run_cli("replicate", micro_exp.name, "--mode", "quick", "--out", f, "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "--out" in err

    ro = tmp_path / "ro"
    real_write = type(ro).write_bytes

    def refuse(self, *a, **k):       # root ignores chmod, so the refusal is simulated where it happens
        if self.parent == ro:
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, *a, **k)
    monkeypatch.setattr(type(ro), "write_bytes", refuse)
    assert run_cli("replicate", micro_exp.name, "--mode", "quick", "--out", ro, "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "cannot write in the output folder" in err and "Permission denied" in err and "Traceback" not in err


def test_a_full_disk_while_checkpointing_is_an_error_and_keeps_the_old_checkpoint(micro_exp, tmp_path, capsys,
                                                                                monkeypatch):
    path = tmp_path / "run.pt"
    save_checkpoint(path, step=1, model={"w": torch.ones(2)})
    real_save = torch.save

    def disk_full(obj, f, *a, **k):
        f.write(b"PK\x03\x04 some bytes")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed; unexpected pos 1037376 vs 1037268")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="could not write checkpoint.*bytes free"):
        save_checkpoint(path, step=2, model={"w": torch.zeros(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["step"] == 1

    monkeypatch.setattr(torch, "save", disk_full)
    assert run_cli("replicate", micro_exp.name, "--mode", "quick", "--out", tmp_path / "o", "--device", "cpu",
                   "--no-progress") == 2
    err = capsys.readouterr().err
    assert "could not write checkpoint" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_on_cuda_without_cuda_is_an_error(capsys):
    assert run_cli("bench", "soca", "--device", "cuda", "--quick") == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.fixture
def hr_folder(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    data.save_image(d / "a.png", data.modcrop(data.texture("blobs", size=24, seed=0), 2))
    return d


def test_evaluate_json_into_a_folder_is_an_error(hr_folder, tmp_path):
    with pytest.raises(SystemExit, match="is a folder"):
        run_cli("evaluate", "--model", "bicubic", "--images", hr_folder, "--scale", 2, "--json", tmp_path)
    with pytest.raises(SystemExit, match="does not exist"):
        run_cli("evaluate", "--model", "bicubic", "--images", hr_folder, "--scale", 2, "--json",
                tmp_path / "no" / "r.json")


def test_evaluate_with_random_weights_warns_loudly(hr_folder, capsys):
    assert run_cli("evaluate", "--model", "edsr", "--preset", "mini", "--images", hr_folder, "--scale", 2) == 0
    assert "RANDOM, UNTRAINED weights" in capsys.readouterr().err
    assert run_cli("evaluate", "--model", "bicubic", "--images", hr_folder, "--scale", 2) == 0
    assert "RANDOM" not in capsys.readouterr().err


def test_checkpoints_get_the_normal_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "a.pt", step=1)
        os.umask(0o027)
        save_checkpoint(tmp_path / "b.pt", step=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.pt").stat().st_mode) == 0o640
