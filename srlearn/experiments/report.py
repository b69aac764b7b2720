"""``report.md`` and its figures for a results dict written by :func:`srlearn.experiments.run`; the
README's results block generated from ``results/*/results.json`` (:func:`results_markdown`, :func:`write_readme`)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .. import _files

#: The README's generated block lies between these two lines.
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
#: Modes whose results are smoke tests, not results: never listed in the README.
EXCLUDED_MODES = ("quick",)


class ResultRows(list):
    """A list of result rows that also carries what they were trained and tested on (``.data``), which
    :func:`srlearn.viz.results_table` puts in the caption when it is given no ``data=`` of its own."""
    data: str | None = None


def results_rows(results: dict) -> ResultRows:
    """Per arm and seed rows (the baseline first), as :func:`srlearn.viz.results_table` takes them; ``.data``
    names the training and test data (so every table made from them says it)."""
    base = results["baseline"]
    rows = ResultRows([{"arm": base.get("arm", "bicubic"), "seed": 0, "psnr": base["psnr"], "ssim": base["ssim"],
                        "params": 0}])
    rows += [{k: r[k] for k in ("arm", "seed", "psnr", "ssim", "params")} for r in results["runs"]]
    rows.data = data_caption(results)
    return rows


def set_rows(results: dict, test_set: str) -> list[dict]:
    """Per arm and seed rows of one test set (the mean over its images ``"SET/stem"``), the baseline first."""
    def mean(images, key):
        chosen = [im[key] for im in images if im["name"].split("/", 1)[0] == test_set]
        if not chosen:
            raise ValueError(f"no image of test set {test_set!r} in the results (sets: {results.get('test_sets')})")
        return sum(chosen) / len(chosen)

    base = results["baseline"]
    rows = [{"arm": base.get("arm", "bicubic"), "seed": 0, "psnr": mean(base["images"], "psnr"),
             "ssim": mean(base["images"], "ssim"), "params": 0}]
    rows += [{"arm": r["arm"], "seed": r["seed"], "psnr": mean(r["images"], "psnr"), "ssim": mean(r["images"], "ssim"),
              "params": r["params"]} for r in results["runs"]]
    return rows


def set_tables(results: dict) -> list:
    """One results table per benchmark set of a full-mode run (none for the offline images), with the
    paper's published figure beside ours where the paper gives one (``results["published"]``)."""
    from ..viz.tables import results_table

    baseline = results["baseline"].get("arm", "bicubic")
    published = results.get("published") or {}
    tables = []
    for test_set in results.get("test_sets") or []:
        paper = {arm: figs[test_set] for arm, figs in published.items() if test_set in figs}
        tables.append((test_set, results_table(
            set_rows(results, test_set), baseline=baseline, paper=paper or None,
            protocol=f"{test_set} ×{results['scale']}, {results['protocol']}",
            data=data_caption(results) + ("; paper: the published full-size model (an upper reference, not a "
                                          "target)" if paper else ""))))
    return tables


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
    table = results_table(results_rows(results), baseline=baseline, protocol=results["protocol"])
    histories: dict[str, list[dict]] = {}
    for r in results["runs"]:
        if r.get("history"):
            histories.setdefault(r["arm"], []).append(r["history"])
    figures = []
    if histories:
        for metric, fname in (("loss", "curves_loss.png"), ("val_psnr", "curves_psnr.png")):
            # the curve is scored by the experiment's protocol, like the table: the baseline line is comparable
            psnr_label = "validation " + ("Y-PSNR (dB)" if results.get("scoring", {}).get("y_only", True)
                                          else "RGB PSNR (dB)")
            fig = plot_history(histories, metric=metric,
                               baseline=results["baseline"]["psnr"] if metric == "val_psnr" else None,
                               baseline_label=baseline, ylabel=psnr_label if metric == "val_psnr" else None)
            fig.savefig(out / fname, dpi=110, bbox_inches="tight")
            figures.append(fname)
    lines = [f"# {results['experiment']} ({results['mode']} mode)", "", results.get("description", ""), "",
             f"- device: {results['device']}; torch {results['torch']}; commit {results['commit']}",
             f"- seeds: {results['seeds']}; scale ×{results['scale']}; wall time {results['wall_seconds']:.0f} s",
             f"- protocol: {results['protocol']}; held-out images: {_held_out(results)}",
             f"- data: {data_caption(results)}",
             "", "## Results", "", table.to_markdown()]
    per_set = set_tables(results)
    if per_set:
        lines += ["", "## Per test set", "", "The table above averages every test image; the field reports each "
                  "set on its own:"]
        for test_set, t in per_set:
            lines += ["", f"### {test_set}", "", t.to_markdown()]
    lines += ["", "## Verdicts", "", "Each verdict compares the two arms' mean over all the held-out images.", "",
             verdict_table(results.get("verdicts") or [], results.get("min_detectable_db"), baseline,
                           data=data_caption(results)).to_markdown()]
    for f in figures:
        lines += ["", f"![{f}]({f})"]
    path = out / "report.md"
    _files.atomic_write(path, "\n".join(lines) + "\n")
    return path


def _held_out(results: dict) -> str:
    names = results.get("validation_images") or []
    if results.get("test_sets"):
        return f"{len(names)} images of {', '.join(results['test_sets'])}"
    return ", ".join(names)


# ------------------------------------------------------------------------------------------- the README block
def collect_results(root: str | os.PathLike) -> list[dict]:
    """The results of ``root/*/results.json`` that are results: quick-mode smoke runs (``EXCLUDED_MODES``)
    and rehearsals (``"rehearsal": true``) are left out. Sorted by experiment, then folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of results (expected {root}/NAME/results.json, as "
                                f"`srlearn replicate NAME --out {root}/NAME` writes them)")
    found = []
    for f in sorted(root.glob("*/results.json")):
        try:
            res = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f} is not valid JSON ({e}); rerun the experiment or remove the folder") from None
        for key in ("experiment", "mode", "runs", "baseline"):
            if key not in res:
                raise ValueError(f"{f} has no {key!r}: not a results.json written by srlearn.experiments.run")
        if res["mode"] in EXCLUDED_MODES or res.get("rehearsal"):
            continue
        found.append((res["experiment"], f.parent.name, res))
    return [r for *_, r in sorted(found, key=lambda t: t[:2])]


def _steps(res: dict) -> str:
    steps = set()
    for r in res["runs"]:
        h = r.get("history") or {}
        n = r.get("steps", h.get("last_step"))
        if n is None and h.get("step"):
            n = h["step"][-1]
        if n is None:
            n = (res.get("budget") or {}).get("steps")
        if n is not None:
            steps.add(int(n))
    if not steps:
        return "—"
    lo, hi = min(steps), max(steps)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def _mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.2f} ± {std:.2f}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def results_markdown(root: str | os.PathLike) -> str:
    """The README's results block for ``root/*/results.json``: one row per experiment with the device, seeds,
    steps, data, the baseline, each arm's mean ± std (sample std over seeds) and the verdicts."""
    results = collect_results(root)
    head = (f"Generated by `srlearn report {Path(root).name}/ --markdown` from `{Path(root).name}/*/results.json`; "
            "quick-mode smoke runs are not results and are not listed.")
    if not results:
        return (head + "\n\nNo GPU or full-mode run has been committed yet: every number srlearn has so far comes "
                "from quick-mode smoke runs (1 seed, minutes on a CPU), which test the code, not the papers.")
    lines = [head, "", "| experiment | device | seeds | steps | data | baseline (dB) | arms, mean ± std (dB) | verdicts |",
             "|---|---|---:|---:|---|---:|---|---|"]
    for res in results:
        by_arm: dict[str, list[float]] = {}
        for r in res["runs"]:
            by_arm.setdefault(r["arm"], []).append(float(r["psnr"]))
        base = res["baseline"]
        arms = "<br>".join(f"{_cell(a)} {_mean_std(v)}" for a, v in by_arm.items())
        verdicts = "<br>".join(f"{_cell(v['better'])} vs {_cell(v['worse'])}: {_cell(v['verdict'])}"
                               for v in res.get("verdicts") or []) or "—"
        data = (f"train: {_cell(res.get('train_data') or 'not recorded')}<br>test: "
                f"{_cell(res.get('test_data') or 'not recorded')}<br>protocol: {_cell(res.get('protocol', '?'))}")
        lines.append(f"| {_cell(res['experiment'])} ({_cell(res['mode'])}, ×{res.get('scale', '?')}) | "
                     f"{_cell(res.get('device', '?'))} | {res.get('seeds', '?')} | {_steps(res)} | {data} | "
                     f"{_cell(base.get('arm', 'bicubic'))} {float(base['psnr']):.2f} | {arms} | {verdicts} |")
    lines += ["", "*PSNR by each experiment's protocol, averaged over all its test images; the per-set tables, "
              "the learning curves and the paper's published figures are in each `report.md`.*"]
    return "\n".join(lines)


def readme_block(readme: str | os.PathLike) -> str:
    """The text between the README's ``README_START`` and ``README_END`` lines (stripped)."""
    text = Path(readme).read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no results block: add a line {README_START} and, below it, a line "
                         f"{README_END} where the generated results table belongs")
    return text[start + len(README_START):end].strip()


def write_readme(readme: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Rewrite the README's results block from ``root``; return True when the file changed. Atomic."""
    path = Path(readme)
    text = path.read_text()
    old = readme_block(path)
    new = results_markdown(root)
    if old == new:
        return False
    start, end = text.find(README_START), text.find(README_END)
    updated = text[:start + len(README_START)] + "\n" + new + "\n" + text[end:]
    _files.atomic_write(path, updated)
    return True
