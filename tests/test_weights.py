"""Shipped weights (srlearn/weights.py): export, manifest, checksum, fp16 storage, load_pretrained, the CLI.

Every test uses a model trained for 2 steps in a temporary folder; nothing here reads data/weights.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import srlearn
from srlearn import experiments
from srlearn.experiments import core
from srlearn.weights import (FP16_TOLERANCE_DB, export_weights, fp16_delta, load_pretrained, load_weights_file,
                             read_manifest, sha256)

EXP = "sr-basics"


def _tiny_budget():
    quick = core.get_experiment(EXP).budgets["quick"]
    return dataclasses.replace(quick, steps=2, batch_size=4, lr_patch=16, val_every=0, val_max_size=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A results folder of sr-basics trained for 2 steps (1 seed) and its weights exported."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("weights")
    run_dir = root / EXP
    res = experiments.run(EXP, mode="quick", seeds=1, out=run_dir, device="cpu", progress=False, budget=_tiny_budget())
    dest = root / "weights"
    manifest = export_weights([run_dir], dest)
    return {"root": root, "run_dir": run_dir, "dest": dest, "manifest": manifest, "results": res}


def test_manifest_records_what_issue_13_asks(trained):
    (entry,) = trained["manifest"]["weights"]
    for key in ("experiment", "arm", "seed", "preset", "steps", "device", "train_data", "test_data", "commit",
                "wall_seconds", "psnr", "ssim", "protocol", "sha256", "dtype", "fp16_delta_psnr"):
        assert key in entry, key
    assert (entry["experiment"], entry["arm"], entry["seed"], entry["steps"]) == (EXP, "edsr-mini", 0, 2)
    assert entry["protocol"] == trained["results"]["protocol"]
    assert entry["sha256"] == sha256(trained["dest"] / entry["file"])
    on_disk = read_manifest(trained["dest"])
    assert on_disk["weights"][0]["sha256"] == entry["sha256"]
    assert trained["manifest"]["total_bytes"] < 25e6


def test_load_pretrained_returns_the_trained_model_ready_to_run(trained):
    model = load_pretrained(EXP, "edsr-mini", directory=trained["dest"])
    assert not model.training
    assert model.pretrained_info["steps"] == 2
    ref = srlearn.train.load_model(trained["run_dir"] / "checkpoints" / "edsr-mini-seed0.pt")
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        a, b = model(x), ref(x)
    assert a.dtype == torch.float32
    assert torch.allclose(a, b, atol=2e-2)          # float16 storage: close, not equal
    assert (a - b).abs().max() > 0 or trained["manifest"]["weights"][0]["dtype"] == "float32"


def test_lazy_export_from_package():
    assert srlearn.load_pretrained is load_pretrained


def test_fp16_storage_changes_the_reported_psnr_by_at_most_the_tolerance(trained):
    """The metric reported for the stored (float16) file equals the float32 model's within 0.01 dB."""
    (entry,) = trained["manifest"]["weights"]
    assert entry["dtype"] == "float16"
    exp = core.get_experiment(EXP)
    pairs = core._val_data(exp, _tiny_budget())
    stored = load_weights_file(trained["dest"] / entry["file"])
    got = core.evaluate_model(stored, pairs, exp.scale)["mean"]["psnr"]
    assert abs(got - entry["psnr"]) <= FP16_TOLERANCE_DB
    assert abs(entry["fp16_delta_psnr"]) <= FP16_TOLERANCE_DB
    # and fp16_delta measures a real difference: rounding the weights changes the output
    model = srlearn.train.load_model(trained["run_dir"] / "checkpoints" / "edsr-mini-seed0.pt")
    d = fp16_delta(model, pairs, exp.scale)
    assert d["psnr_fp16"] != d["psnr"] or d["ssim_fp16"] != d["ssim"]


def test_float32_kept_where_float16_would_move_the_metric(trained, tmp_path):
    man = export_weights([trained["run_dir"]], tmp_path / "w", tolerance_db=-1.0)   # nothing passes a negative tolerance
    (entry,) = man["weights"]
    assert entry["dtype"] == "float32"
    sd = torch.load(tmp_path / "w" / entry["file"], weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())


def test_checksum_mismatch_is_a_clear_error(trained, tmp_path):
    import shutil
    dest = tmp_path / "w"
    shutil.copytree(trained["dest"], dest)
    f = dest / trained["manifest"]["weights"][0]["file"]
    data = bytearray(f.read_bytes())
    data[-100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch.*git checkout -- data/weights"):
        load_pretrained(EXP, "edsr-mini", directory=dest)


def test_missing_file_manifest_or_arm_are_clear_errors(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights manifest.*srlearn campaign"):
        load_pretrained(EXP, "edsr-mini", directory=tmp_path)
    import shutil
    dest = tmp_path / "w"
    shutil.copytree(trained["dest"], dest)
    (dest / trained["manifest"]["weights"][0]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="file is missing.*git checkout"):
        load_pretrained(EXP, "edsr-mini", directory=dest)
    with pytest.raises(KeyError, match="available: sr-basics/edsr-mini"):
        load_pretrained(EXP, "no-such-arm", directory=dest)


def test_size_limit_refuses_and_leaves_destination_untouched(trained, tmp_path):
    dest = tmp_path / "w"
    with pytest.raises(ValueError, match="over the 0.0 MB limit"):
        export_weights([trained["run_dir"]], dest, max_total_bytes=1000)
    assert not (dest / "manifest.json").exists()
    assert not list(dest.rglob("*.pt"))


def test_cli_evaluate_with_weights_and_weights_export(trained, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from srlearn.cli import main
    from srlearn.data import get_image
    img = get_image("texture:stripes:1")[:64, :64]
    (tmp_path / "hr").mkdir()
    Image.fromarray(np.ascontiguousarray(img)).save(tmp_path / "hr" / "a.png")
    dest = tmp_path / "exported"
    assert main(["weights", "export", str(trained["run_dir"]), "--out", str(dest)]) == 0
    assert json.loads((dest / "manifest.json").read_text())["weights"][0]["arm"] == "edsr-mini"
    monkeypatch.setenv("SRLEARN_WEIGHTS", str(dest))
    capsys.readouterr()
    assert main(["evaluate", "--weights", f"{EXP}/edsr-mini", "--images", str(tmp_path / "hr"), "--scale", "2",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "weights sr-basics/edsr-mini" in capsys.readouterr().out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["model"] == "weights sr-basics/edsr-mini" and np.isfinite(doc["mean"]["psnr"])
    with pytest.raises(SystemExit, match="weights are a ×2 model but --scale is 4"):
        main(["evaluate", "--weights", f"{EXP}/edsr-mini", "--images", str(tmp_path / "hr"), "--scale", "4"])
    monkeypatch.setenv("SRLEARN_WEIGHTS", str(tmp_path / "nowhere"))
    assert main(["evaluate", "--weights", f"{EXP}/edsr-mini", "--images", str(tmp_path / "hr"), "--scale", "2"]) == 2
    assert "no weights manifest" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the shipped weights
#: arms that are deliberate controls (issue 13: they need not beat the baseline)
CONTROLS = {("srdensenet-variants", "plain"), ("san-schedule", "released-schedule")}


def test_shipped_weights_are_intact_small_and_beat_their_baseline():
    """data/weights as committed: every file matches its checksum and loads; together <= 25 MB; every arm
    that is not a deliberate control beats its baseline on the held-out images (as recorded at export)."""
    from srlearn.weights import MAX_TOTAL_BYTES, weights_dir
    d = weights_dir()
    if not (d / "manifest.json").is_file():
        pytest.skip(f"no shipped weights in {d}")
    manifest = read_manifest(d)
    total = (d / "manifest.json").stat().st_size
    for e in manifest["weights"]:
        core.get_experiment(e["experiment"]).arm(e["arm"])         # still a registered arm
        total += (d / e["file"]).stat().st_size
        model = load_pretrained(e["experiment"], e["arm"], directory=d)   # checksum checked here
        assert model.pretrained_info["sha256"] == e["sha256"] and not model.training
        assert abs(e["fp16_delta_psnr"]) <= FP16_TOLERANCE_DB or e["dtype"] == "float32"
        if (e["experiment"], e["arm"]) not in CONTROLS:
            assert e["beats_baseline"] and e["psnr"] > e["baseline"]["psnr"], (e["experiment"], e["arm"])
    assert total <= MAX_TOTAL_BYTES
    listed = {e["file"] for e in manifest["weights"]}
    assert {str(p.relative_to(d)) for p in d.rglob("*.pt")} == listed    # no stray or missing files


# ---------------------------------------------------------------------------------- notebook helpers
def test_pretrained_or_loads_the_shipped_weights_and_says_what_they_are(trained, capsys):
    from srlearn.weights import FALLBACK, pretrained_or

    calls = []
    model = pretrained_or(EXP, "edsr-mini", lambda: calls.append(1), directory=trained["dest"])
    line = capsys.readouterr().out.strip()
    assert calls == [] and model.pretrained_info["steps"] == 2 and not model.training
    assert "\n" not in line and not line.startswith(FALLBACK)
    assert f"{EXP}/edsr-mini" in line and "2 steps on" in line
    assert f"trained on {model.pretrained_info['train_data']}" in line


def test_pretrained_or_falls_back_with_one_line(trained, tmp_path, capsys, monkeypatch):
    from srlearn.weights import FALLBACK, pretrained_or

    live = srlearn.models.build("edsr", "mini", scale=2).train()
    monkeypatch.setenv("SRLEARN_WEIGHTS", str(tmp_path))           # an empty folder: no manifest
    model = pretrained_or(EXP, "edsr-mini", live, what="the live run")
    out = capsys.readouterr().out
    assert model is live and model.pretrained_info is None and not model.training
    assert out.count("\n") == 1 and out.startswith(f"{FALLBACK} {EXP}/edsr-mini (FileNotFoundError")
    assert out.strip().endswith("using the live run instead")
    # an arm that is not in the manifest falls back too, and a function is called only then
    assert pretrained_or(EXP, "no-such-arm", lambda: live, directory=trained["dest"]) is live
    assert capsys.readouterr().out.startswith(f"{FALLBACK} {EXP}/no-such-arm (KeyError")
    assert pretrained_or(EXP, "edsr-mini", live, directory=trained["dest"], scale=4) is live   # shipped: x2
    assert capsys.readouterr().out.startswith(f"{FALLBACK} {EXP}/edsr-mini (ValueError: they are x2 weights")
    with pytest.raises(TypeError, match="fallback must be a model"):
        pretrained_or(EXP, "edsr-mini", lambda: None)


def test_shipped_results_read_like_a_run_with_the_package_verdicts(trained):
    from srlearn.experiments.report import results_rows
    from srlearn.weights import shipped_results

    res = shipped_results(EXP, directory=trained["dest"])
    live = trained["results"]
    (run,) = res["runs"]
    assert (run["arm"], run["seed"], run["steps"]) == ("edsr-mini", 0, 2)
    assert res["baseline"]["psnr"] == pytest.approx(live["baseline"]["psnr"])
    assert res["protocol"] == live["protocol"]
    assert [v["verdict"] for v in res["verdicts"]] == [v["verdict"] for v in live["verdicts"]]
    assert all(v["verdict"] == core.ONE_SEED for v in res["verdicts"]) and res["verdicts"]
    rows = results_rows(res)
    assert [r["arm"] for r in rows] == ["bicubic", "edsr-mini"]
    with pytest.raises(KeyError, match="no shipped weights for experiment 'san-attention'"):
        shipped_results("san-attention", directory=trained["dest"])
