"""``report.md`` and its figures for a results dict written by :func:`srlearn.experiments.run`."""
from __future__ import annotations

import os
from pathlib import Path


def results_rows(results: dict) -> list[dict]:
    """Per arm and seed rows (the baseline first), as :func:`srlearn.viz.results_table` takes them."""
    base = results["baseline"]
    rows = [{"arm": base.get("arm", "bicubic"), "seed": 0, "psnr": base["psnr"], "ssim": base["ssim"], "params": 0}]
    rows += [{k: r[k] for k in ("arm", "seed", "psnr", "ssim", "params")} for r in results["runs"]]
    return rows


def data_caption(results: dict) -> str:
    """"trained on X; tested on Y" from a results dict (older results without the keys: "not recorded")."""
    return (f"trained on {results.get('train_data') or 'data not recorded'}; "
            f"tested on {results.get('test_data') or 'data not recorded'}")


def write_report(results: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``report.md`` (table, verdicts, learning curves) into ``out_dir``; return its path."""
    from ..viz.plots import plot_history   # figures made without pyplot: no backend is touched
    from ..viz.tables import results_table, verdict_table

    out = Path(out_dir)
    baseline = results["baseline"].get("arm", "bicubic")
    table = results_table(results_rows(results), baseline=baseline, protocol=results["protocol"],
                          data=data_caption(results))
    histories: dict[str, list[dict]] = {}
    for r in results["runs"]:
        if r.get("history"):
            histories.setdefault(r["arm"], []).append(r["history"])
    figures = []
    if histories:
        for metric, fname in (("loss", "curves_loss.png"), ("val_psnr", "curves_psnr.png")):
            fig = plot_history(histories, metric=metric,
                               baseline=results["baseline"]["psnr"] if metric == "val_psnr" else None)
            fig.savefig(out / fname, dpi=110, bbox_inches="tight")
            figures.append(fname)
    lines = [f"# {results['experiment']} ({results['mode']} mode)", "", results.get("description", ""), "",
             f"- device: {results['device']}; torch {results['torch']}; commit {results['commit']}",
             f"- seeds: {results['seeds']}; scale ×{results['scale']}; wall time {results['wall_seconds']:.0f} s",
             f"- protocol: {results['protocol']}; held-out images: {', '.join(results['validation_images'])}",
             f"- data: {data_caption(results)}",
             "", "## Results", "", table.to_markdown(), "", "## Verdicts", "",
             verdict_table(results.get("verdicts") or [], results.get("min_detectable_db"), baseline,
                           data=data_caption(results)).to_markdown()]
    for f in figures:
        lines += ["", f"![{f}]({f})"]
    path = out / "report.md"
    tmp = path.with_name(f".report.md.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
