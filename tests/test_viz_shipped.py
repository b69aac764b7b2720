"""srlearn.viz.shipped: the shipped weights' results table (numbers and verdicts from srlearn.weights.shipped_results)."""
import pytest

from srlearn.experiments.core import ONE_SEED
from srlearn.viz import shipped
from srlearn.weights import read_manifest, shipped_results, weights_dir

needs_weights = pytest.mark.skipif(not (weights_dir() / "manifest.json").is_file(),
                                   reason="no shipped weights in this checkout")


def test_table_without_weights_says_so(tmp_path):
    table = shipped.shipped_table("mirnet-fusion", directory=tmp_path)
    assert table.entries == [] and table.cells() == [] and table.verdicts == []
    assert "no shipped weights (FileNotFoundError" in table.to_markdown()
    assert "no shipped weights" in table._repr_html_()


@needs_weights
def test_table_of_an_experiment_with_no_weights_says_so():
    table = shipped.shipped_table("no-such-experiment")
    assert table.entries == [] and "no shipped weights (KeyError" in table.to_markdown()


@needs_weights
def test_table_rows_and_verdicts_come_from_the_manifest():
    entries = [e for e in read_manifest()["weights"] if e["experiment"] == "srdensenet-variants"]
    table = shipped.shipped_table("srdensenet-variants")
    cells = table.cells()
    assert len(cells) == len(entries) + 1 and cells[0][0] == "bicubic (baseline)"
    assert cells[0][1] == f"{entries[0]['baseline']['psnr']:.2f}"
    for e, row in zip(entries, cells[1:]):
        assert row[0] == e["arm"] and row[1] == f"{e['psnr']:.2f}" and row[4] == str(e["steps"])
        assert row[3] == f"{e['psnr'] - e['baseline']['psnr']:+.2f}" and row[6] == e["device"]
    # the verdicts are shipped_results' own, worded by the package
    own = shipped_results("srdensenet-variants")["verdicts"]
    assert table.verdicts and [(v["better"], v["worse"], v["delta_psnr"], v["verdict"]) for v in table.verdicts] == \
        [(v["better"], v["worse"], v["delta_psnr"], v["verdict"]) for v in own]
    if all(e.get("seeds_in_results", 1) == 1 for e in entries):
        assert {v["verdict"] for v in table.verdicts} == {ONE_SEED}
    md = table.to_markdown()
    assert entries[0]["protocol"] in md and all(line in md for line in table.verdict_lines())
    html = table._repr_html_()
    assert html.count("<tr>") == len(entries) + 2 and 'class="srlearn-shipped"' in html   # header + baseline + arms
