"""Checkpoints: atomic writes, safe (weights_only) loads, clear errors, and models rebuilt from their spec."""
from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from srlearn.models import build
from srlearn.train import TrainConfig, load_checkpoint, load_model, save_checkpoint, train
from srlearn.train import checkpoint as ckpt_mod


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=4):
        g = torch.Generator().manual_seed(0)
        self.hr = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(16, 16), mode="bilinear")
        self.lr = F.avg_pool2d(self.hr, 2)

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        return self.lr[i], self.hr[i]


def trained_checkpoint(path, ema=None):
    torch.manual_seed(0)
    model = build("edsr", "mini")
    config = TrainConfig(steps=3, batch_size=2, lr=1e-3, ema=ema, ckpt_path=str(path), device="cpu",
                         progress=False, val_every=0)
    train(model, Pairs(), config)
    return model


def test_save_is_atomic_when_torch_save_fails_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    save_checkpoint(path, step=1, model={"w": torch.ones(3)})
    before = path.read_bytes()

    real_save = torch.save

    def dies_half_way(obj, f, *a, **kw):
        f.write(b"PK\x03\x04 partial bytes of a zip archive")   # something reached the disk...
        raise OSError("No space left on device")                # ...then the write fails

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, step=2, model={"w": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before                         # the old checkpoint is intact
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]   # and no temp file remains


def test_checkpoint_written_by_train_loads_with_weights_only(tmp_path):
    path = tmp_path / "run.pt"
    model = trained_checkpoint(path, ema=0.9)
    raw = torch.load(path, map_location="cpu", weights_only=True)   # the safe loader, directly
    assert raw["format"] == ckpt_mod.FORMAT and raw["version"] == ckpt_mod.FORMAT_VERSION
    for key in ("model", "ema", "optimizer", "scheduler", "step", "history", "config", "rng", "model_spec"):
        assert key in raw, key
    assert raw["step"] == 3 and raw["config"]["steps"] == 3 and raw["history"]["last_step"] == 3
    assert raw["model_spec"] == model.srlearn_spec
    assert isinstance(raw["rng"]["torch"], torch.Tensor)
    for name, value in raw["ema"].items():                     # model holds the EMA weights on return
        assert torch.equal(value, model.state_dict()[name])
    assert any(not torch.equal(raw["model"][n], raw["ema"][n]) for n in raw["model"])


def test_load_model_rebuilds_edsr_mini_from_its_spec(tmp_path):
    path = tmp_path / "run.pt"
    model = trained_checkpoint(path, ema=0.9).eval()
    rebuilt = load_model(path)
    assert type(rebuilt) is type(model) and not rebuilt.training
    assert rebuilt.srlearn_spec == model.srlearn_spec
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)   # the EMA weights
    # without EMA the raw weights are loaded
    path2 = tmp_path / "raw.pt"
    raw_model = trained_checkpoint(path2).eval()
    with torch.no_grad():
        torch.testing.assert_close(load_model(path2)(x), raw_model(x), rtol=0, atol=0)


def test_load_model_without_spec_says_what_to_do(tmp_path):
    path = tmp_path / "nospec.pt"
    save_checkpoint(path, model={}, model_spec=None)
    with pytest.raises(ValueError, match="has no model_spec"):
        load_model(path)


def test_missing_truncated_foreign_and_unsafe_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")

    good = tmp_path / "good.pt"
    save_checkpoint(good, step=5, model={"w": torch.arange(1000.0)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(truncated)

    foreign = tmp_path / "state_dict.pt"
    torch.save({"w": torch.ones(2)}, foreign)
    with pytest.raises(ValueError, match="not an srlearn checkpoint"):
        load_checkpoint(foreign)

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": ckpt_mod.FORMAT, "obj": pickle.PickleError("arbitrary object")}, unsafe)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(unsafe)

    future = tmp_path / "future.pt"
    torch.save({"format": ckpt_mod.FORMAT, "version": ckpt_mod.FORMAT_VERSION + 1}, future)
    with pytest.raises(ValueError, match="upgrade srlearn"):
        load_checkpoint(future)
