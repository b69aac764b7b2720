"""srlearn.viz.shipped: the notebooks' one-line loader with fallback, and the shipped weights' results table."""
import pytest
import torch

from srlearn.experiments.core import ONE_SEED
from srlearn.viz import shipped
from srlearn.weights import weights_dir


def _have_weights():
    return (weights_dir() / "manifest.json").is_file()


needs_weights = pytest.mark.skipif(not _have_weights(), reason="no shipped weights in this checkout")


def test_fallback_prints_one_line_and_returns_the_fallback(tmp_path, capsys):
    fallback = torch.nn.Conv2d(1, 1, 1)
    model = shipped.pretrained_or("mirnet-fusion", "skff", fallback, directory=tmp_path, what="the live model")
    assert model is fallback and model.pretrained_info is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no shipped weights for mirnet-fusion/skff" in out[0] and "the live model" in out[0]


def test_fallback_may_be_a_function_called_only_when_needed(tmp_path, capsys):
    calls = []
    model = shipped.pretrained_or("ssen-refsr", "ssen", lambda: calls.append(1) or torch.nn.Identity(), directory=tmp_path)
    assert calls == [1] and isinstance(model, torch.nn.Identity)


def test_without_fallback_the_loader_error_is_raised(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights manifest"):
        shipped.pretrained_or("mirnet-fusion", "skff", directory=tmp_path)


def test_table_without_weights_says_so(tmp_path):
    table = shipped.shipped_table("mirnet-fusion", directory=tmp_path)
    assert table.entries == [] and "no shipped weights" in table.to_markdown()
    assert "no shipped weights" in table._repr_html_()


def test_weights_line_names_steps_device_and_data():
    info = {"experiment": "e", "arm": "a", "model": "m", "preset": "tiny", "seed": 0, "steps": 123,
            "device": "cpu:x (2 cores)", "train_data": "offline images", "psnr": 24.5,
            "baseline": {"name": "bicubic", "psnr": 23.0}}
    line = shipped.weights_line(info)
    assert "e/a" in line and "123 steps" in line and "cpu:x (2 cores)" in line and "offline images" in line
    assert "24.50 dB vs bicubic 23.00 dB" in line
    with pytest.raises(ValueError, match="pretrained_info"):
        shipped.weights_line({"arm": "a"})


@needs_weights
def test_loads_the_shipped_model_and_prints_its_line(capsys):
    model = shipped.pretrained_or("mirnet-fusion", "skff", fallback=torch.nn.Identity())
    assert not isinstance(model, torch.nn.Identity) and not model.training
    assert capsys.readouterr().out.strip() == shipped.weights_line(model.pretrained_info)


@needs_weights
def test_table_rows_and_verdicts_come_from_the_manifest():
    entries = shipped.shipped_entries("srdensenet-variants")
    table = shipped.shipped_table("srdensenet-variants")
    cells = table.cells()
    assert len(cells) == len(entries) + 1 and cells[0][0].endswith("(baseline)")
    for e, row in zip(entries, cells[1:]):
        assert row[0] == e["arm"] and row[1] == f"{e['psnr']:.2f}"
        assert row[3] == f"{e['psnr'] - e['baseline']['psnr']:+.2f}" and row[4] == str(e["steps"])
    assert table.verdicts, "srdensenet-variants registers comparisons"
    if all(e.get("seeds_in_results", 1) == 1 for e in entries):
        assert {v["verdict"] for v in table.verdicts} == {ONE_SEED}
    md = table.to_markdown()
    assert entries[0]["protocol"] in md and ONE_SEED in md


@needs_weights
def test_quiet_load_prints_nothing_but_a_fallback_still_speaks(tmp_path, capsys):
    shipped.pretrained_or("mirnet-fusion", "sum", torch.nn.Identity(), verbose=False)
    assert capsys.readouterr().out == ""
    shipped.pretrained_or("mirnet-fusion", "sum", torch.nn.Identity(), directory=tmp_path, verbose=False)
    assert "no shipped weights" in capsys.readouterr().out
