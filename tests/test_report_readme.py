"""The README's results block: generated from results/*/results.json, quick-mode smoke runs left out."""
import json
from pathlib import Path

import pytest

from srlearn import cli
from srlearn.experiments import report

ROOT = Path(__file__).resolve().parents[1]


def _results(experiment, mode, psnrs, baseline=30.0, **extra):
    runs = [{"arm": arm, "seed": s, "psnr": p, "ssim": 0.9, "params": 10, "images": [],
             "history": {"last_step": 1000 + s}} for arm, ps in psnrs.items() for s, p in enumerate(ps)]
    return {"version": 1, "experiment": experiment, "mode": mode, "scale": 2, "seeds": len(next(iter(psnrs.values()))),
            "device": "cuda:NVIDIA H200", "protocol": "Y-BT601/shave=2/uint8/MATLAB-BI",
            "train_data": "DIV2K train HR (800 images)", "test_data": "Set5, Set14, B100, Urban100",
            "baseline": {"arm": "bicubic", "psnr": baseline, "ssim": 0.8, "images": []}, "runs": runs,
            "verdicts": [{"better": "a", "worse": "b", "claim": "a | b", "delta_psnr": 0.1, "stderr": 0.01,
                          "verdict": "reproduced"}], "budget": {"steps": 2000}, **extra}


def _write(root, folder, res):
    (root / folder).mkdir(parents=True)
    (root / folder / "results.json").write_text(json.dumps(res))


def test_results_markdown_lists_full_runs_and_leaves_out_quick_ones(tmp_path):
    _write(tmp_path, "zeta", _results("zeta", "full", {"a": [31.0, 31.2, 31.4], "b": [30.5, 30.6, 30.7]}))
    _write(tmp_path, "alpha-quick", _results("alpha", "quick", {"a": [25.0]}))
    _write(tmp_path, "beta", _results("beta", "full", {"a": [32.0, 32.0]}, rehearsal=True))
    (tmp_path / "not-a-run").mkdir()
    md = report.results_markdown(tmp_path)
    rows = [line for line in md.splitlines() if line.startswith("| zeta")]
    assert len(rows) == 1 and "alpha" not in md and "beta" not in md
    row = rows[0]
    assert "| zeta (full, ×2) | cuda:NVIDIA H200 | 3 | 1,000–1,002 |" in row
    assert "a 31.20 ± 0.20<br>b 30.60 ± 0.10" in row           # mean ± sample std over the seeds
    assert "| bicubic 30.00 |" in row and "a vs b: reproduced" in row
    assert "train: DIV2K train HR (800 images)<br>test: Set5, Set14, B100, Urban100" in row
    assert md.splitlines()[2].startswith("| experiment | device | seeds | steps | data | baseline")


def test_an_empty_folder_says_no_run_was_committed_and_bad_input_is_named(tmp_path):
    _write(tmp_path, "q", _results("q", "quick", {"a": [25.0]}))
    assert "No GPU or full-mode run has been committed yet" in report.results_markdown(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder of results"):
        report.results_markdown(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        report.results_markdown(tmp_path)


def test_write_readme_rewrites_only_the_block_and_check_detects_drift(tmp_path, capsys):
    results = tmp_path / "results"
    _write(results, "zeta", _results("zeta", "full", {"a": [31.0, 31.2], "b": [30.5, 30.6]}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{report.README_START}\nold table\n{report.README_END}\n\nafter\n")
    assert cli.main(["report", str(results), "--check", str(readme)]) == 1
    assert cli.main(["report", str(results), "--write-readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith(f"{report.README_END}\n\nafter\n")
    assert "old table" not in text and report.readme_block(readme) == report.results_markdown(results)
    assert report.write_readme(readme, results) is False            # idempotent
    assert cli.main(["report", str(results), "--check", str(readme)]) == 0
    capsys.readouterr()
    assert cli.main(["report", str(results), "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == report.results_markdown(results)
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="results:start"):
        report.write_readme(readme, results)


def test_the_readme_shows_what_results_holds():
    assert report.readme_block(ROOT / "README.md") == report.results_markdown(ROOT / "results"), (
        "README.md's results block is stale: run `srlearn report results/ --write-readme README.md`")
