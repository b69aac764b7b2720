"""The `srlearn` command: list, doctor, evaluate, replicate, bench (in-process and as a console script)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from srlearn import cli, data, metrics
from srlearn.experiments import core

from test_experiments import _micro


def run_cli(*args):
    return cli.main([str(a) for a in args])


def test_list_names_models_experiments_benchmarks_datasets(capsys):
    assert run_cli("list") == 0
    out = capsys.readouterr().out
    for word in ("edsr", "bicubic", "sr-basics", "soca", "DIV2K_train_HR", "Manga109"):
        assert word in out, word
    assert "attention kinds" in out and "none, se, soca" in out
    assert "fusion kinds" in out and "concat, skff, sum" in out


def test_list_json_parses_and_lists_every_registered_name(capsys):
    from srlearn import bench, experiments, models
    from srlearn.data import registry
    assert run_cli("list", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in doc["models"]] == models.list_models()
    assert [e["name"] for e in doc["experiments"]] == experiments.list_experiments()
    assert doc["benchmarks"] == bench.list_benches()
    assert [d["name"] for d in doc["datasets"]] == registry.list_datasets()
    edsr = next(m for m in doc["models"] if m["name"] == "edsr")
    assert set(edsr["presets"]) == set(models.get_spec("edsr").presets)
    assert edsr["params"]["paper"] == 40_729_603
    from srlearn.nn import ATTENTION, FUSION
    assert [a["name"] for a in doc["attention"]] == ATTENTION.names() and "soca" in ATTENTION.names()
    soca = next(a for a in doc["attention"] if a["name"] == "soca")
    assert soca["class"] == "srlearn.nn.attention.SOCA" and "iters" in soca["options"]
    assert [f["name"] for f in doc["fusion"]] == FUSION.names()
    for e in doc["experiments"]:
        exp = experiments.get_experiment(e["name"])
        assert [a["name"] for a in e["arms"]] == [a.name for a in exp.arms]
        assert e["controls"] == [a["name"] for a in e["arms"] if a["control"]]
        assert set(e["modes"]) == set(exp.budgets) and e["baseline"] == exp.baseline_name
    by_name = {e["name"]: e for e in doc["experiments"]}
    # the deliberate controls: a plain stack, a known-bad schedule, an arm without the paper's component
    assert by_name["srdensenet-variants"]["controls"] == ["plain", "residual"]
    assert by_name["san-schedule"]["controls"] == ["released-schedule"]
    assert by_name["ssen-refsr"]["controls"] == ["sisr"]
    assert by_name["sr-basics"]["controls"] == []


def test_doctor_reports_torch_device_and_torchvision(capsys):
    assert run_cli("doctor") == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device" in out and "torchvision" in out and "data cache" in out


@pytest.fixture
def hr_dir(tmp_path):
    d = tmp_path / "HR"
    d.mkdir()
    for k, kind in enumerate(("blobs", "glyphs")):
        data.save_image(d / f"img{k}.png", data.texture(kind, size=50, seed=k)[:50, :47])  # odd width: mod-crop
    return d


def test_evaluate_bicubic_matches_the_protocol_computed_directly(hr_dir, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    assert run_cli("evaluate", "--model", "bicubic", "--images", hr_dir, "--scale", 2, "--json", out_json) == 0
    doc = json.loads(out_json.read_text())
    assert [im["name"] for im in doc["images"]] == ["img0", "img1"]
    for im in doc["images"]:
        hr = data.modcrop(data.load_image(hr_dir / f"{im['name']}.png"), 2)
        lr = data.imresize(hr, 0.5, mode="uint8")
        sr = data.to_uint8(data.imresize_torch(data.to_tensor(lr)[None], 2))
        assert abs(im["psnr"] - metrics.psnr(sr, hr, crop=2)) < 1e-9
        assert abs(im["ssim"] - metrics.ssim(sr, hr, crop=2)) < 1e-9
    assert abs(doc["mean"]["psnr"] - sum(im["psnr"] for im in doc["images"]) / 2) < 1e-9
    table = capsys.readouterr().out
    assert "img0" in table and "mean" in table and "Y-BT601/shave=2" in table


def test_evaluate_with_given_lr_files_and_a_size_mismatch(hr_dir, tmp_path):
    lr_dir = tmp_path / "LR"
    lr_dir.mkdir()
    for f in sorted(hr_dir.iterdir()):
        hr = data.modcrop(data.load_image(f), 2)
        data.save_image(lr_dir / f"{f.stem}x2.png", data.imresize(hr, 0.5, mode="uint8"))
    out_json = tmp_path / "a.json"
    assert run_cli("evaluate", "--model", "bicubic", "--images", hr_dir, "--lr", lr_dir, "--scale", 2, "--json", out_json) == 0
    ref_json = tmp_path / "b.json"
    assert run_cli("evaluate", "--model", "bicubic", "--images", hr_dir, "--scale", 2, "--json", ref_json) == 0
    assert json.loads(out_json.read_text())["mean"] == json.loads(ref_json.read_text())["mean"]
    data.save_image(lr_dir / "img0x2.png", data.texture("blobs", size=20, seed=0))   # wrong size
    with pytest.raises(SystemExit, match="does not match"):
        run_cli("evaluate", "--model", "bicubic", "--images", hr_dir, "--lr", lr_dir, "--scale", 2)


def test_evaluate_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not a directory"):
        run_cli("evaluate", "--model", "bicubic", "--images", tmp_path / "missing", "--scale", 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no images"):
        run_cli("evaluate", "--model", "bicubic", "--images", tmp_path / "empty", "--scale", 2)
    assert run_cli("evaluate", "--model", "nosuchmodel", "--images", tmp_path / "empty", "--scale", 2) == 2
    assert "unknown model" in capsys.readouterr().err


def test_replicate_then_evaluate_the_checkpoint(tmp_path, monkeypatch, hr_dir, capsys):
    exp = _micro("micro-cli")
    monkeypatch.setitem(core._EXPERIMENTS, exp.name, exp)
    out = tmp_path / "run"
    assert run_cli("replicate", exp.name, "--mode", "quick", "--out", out, "--device", "cpu", "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "bicubic" in printed and "edsr-tiny" in printed and (out / "results.json").exists()
    ckpt = out / "checkpoints" / "edsr-tiny-seed0.pt"
    assert run_cli("evaluate", "--checkpoint", ckpt, "--images", hr_dir, "--scale", 2, "--json", tmp_path / "c.json") == 0
    assert len(json.loads((tmp_path / "c.json").read_text())["images"]) == 2
    with pytest.raises(SystemExit, match="×2 model"):
        run_cli("evaluate", "--checkpoint", ckpt, "--images", hr_dir, "--scale", 3)
    assert run_cli("replicate", "no-such-exp", "--out", out) == 2


def test_bench_prints_a_table(capsys):
    assert run_cli("bench", "soca", "--quick") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 3 and set(out[1].replace(" ", "")) == {"-"}


def test_console_script_is_installed():
    exe = shutil.which("srlearn", path=str(Path(sys.executable).parent))
    assert exe, "the `srlearn` console script is not installed next to this Python"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "replicate" in out.stdout and "evaluate" in out.stdout
