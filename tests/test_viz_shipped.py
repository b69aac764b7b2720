"""srlearn.viz.shipped: the shipped weights' results table (numbers and verdicts from srlearn.weights.shipped_results)."""
import pytest

from srlearn.experiments.core import ONE_SEED
from srlearn.viz import shipped
from srlearn.weights import read_manifest, shipped_results, weights_dir

needs_weights = pytest.mark.skipif(not (weights_dir() / "manifest.json").is_file(),
                                   reason="no shipped weights in this checkout")


def test_table_without_weights_says_so(tmp_path):
    table = shipped.shipped_table("mirnet-fusion", directory=tmp_path)
    assert table.entries == [] and table.table is None and table.verdicts == []
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
    cells = table.table.cells()                                   # the package's results table of the manifest
    assert len(cells) == len(entries) + 1 and cells[0][0] == "bicubic"
    assert cells[0][1].startswith(f"{entries[0]['baseline']['psnr']:.2f}")
    for e, row in zip(entries, cells[1:]):
        assert row[0] == e["arm"] and row[1].startswith(f"{e['psnr']:.2f}")
    made = table.made()                                            # how they were made: steps, device, seeds
    assert all(f"{e['arm']} {e['steps']} steps" in made for e in entries) and entries[0]["device"] in made
    # the verdicts are shipped_results' own, worded by the package
    own = shipped_results("srdensenet-variants")["verdicts"]
    assert table.verdicts and [(v["better"], v["worse"], v["delta_psnr"], v["verdict"]) for v in table.verdicts] == \
        [(v["better"], v["worse"], v["delta_psnr"], v["verdict"]) for v in own]
    if all(e.get("seeds_in_results", 1) == 1 for e in entries):
        assert {v["verdict"] for v in table.verdicts} == {ONE_SEED}
    md = table.to_markdown()
    assert entries[0]["protocol"] in md and all(v["verdict"] in md for v in table.verdicts)
    html = table._repr_html_()
    assert 'class="srlearn-shipped"' in html and "srlearn-verdicts" in html
    assert html.count("<tr>") >= len(entries) + 2                  # header + baseline + arms (+ the verdicts)
