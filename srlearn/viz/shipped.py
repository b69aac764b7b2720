"""The shipped weights' results as one table: arm, held-out PSNR/SSIM, Δ vs the baseline, steps, train time,
device and seeds, with the registered comparisons' verdicts as the package words them.

    viz.shipped.shipped_table("mirnet-fusion")     # renders in a notebook; says "no shipped weights" when there are none

The numbers and verdicts come from :func:`srlearn.weights.shipped_results` (the manifest read as a results
dict, verdicts by ``srlearn.experiments.core.verdict``); loading a model with a fallback is
:func:`srlearn.weights.pretrained_or`.
"""
from __future__ import annotations

import html

from ..weights import read_manifest, shipped_results

__all__ = ["shipped_table", "ShippedTable"]

#: what a missing, incomplete or corrupt weights folder raises (srlearn.weights gives each a clear message)
_MISSING = (FileNotFoundError, KeyError, ValueError)


def shipped_table(experiment: str, directory=None) -> "ShippedTable":
    """The shipped weights' held-out results of ``experiment``: one row per arm and the verdicts (one seed
    gives "1 seed: no noise estimate, no verdict"). Without shipped weights the table says so instead of failing."""
    try:
        res = shipped_results(experiment, directory=directory)
        manifest = read_manifest(directory)
    except _MISSING as err:
        reason = str(err.args[0] if err.args else err).split(": ")[0]
        return ShippedTable(experiment, [], {}, note=f"no shipped weights ({type(err).__name__}: {reason})")
    entries = [e for e in manifest.get("weights", []) if e.get("experiment") == experiment]
    return ShippedTable(experiment, entries, res)


class ShippedTable:
    """The shipped weights' results, rendered as Markdown (``to_markdown``) or HTML in a notebook.

    ``entries``: the manifest entries (one per arm); ``results``: :func:`srlearn.weights.shipped_results`;
    ``verdicts``: its verdict dicts, unchanged."""

    columns = ["arm", "held-out PSNR (dB)", "SSIM", "Δ vs baseline (dB)", "steps", "train s", "device", "seeds"]

    def __init__(self, experiment: str, entries: list[dict], results: dict, note: str = ""):
        self.experiment, self.entries, self.results, self.note = experiment, entries, results, note
        self.verdicts = list(results.get("verdicts", []))

    def cells(self) -> list[list[str]]:
        if not self.entries:
            return []
        base = self.results["baseline"]
        body = [[f"{base['arm']} (baseline)", f"{base['psnr']:.2f}", f"{base['ssim']:.4f}", "—", "—", "—", "—", "—"]]
        for e in self.entries:
            body.append([e["arm"], f"{e['psnr']:.2f}", f"{e['ssim']:.4f}", f"{e['psnr'] - base['psnr']:+.2f}",
                         str(e.get("steps", "?")), f"{e['train_seconds']:.0f}" if "train_seconds" in e else "?",
                         str(e.get("device", "?")), str(e.get("seeds_in_results", 1))])
        return body

    def caption(self) -> str:
        if not self.entries:
            return f"{self.experiment}: {self.note}."
        r = self.results
        return (f"{self.experiment}, the shipped weights (seed 0, {r.get('mode')} mode): protocol {r.get('protocol')}; "
                f"tested on {r.get('test_data')}; trained on {r.get('train_data')}.")

    def verdict_lines(self) -> list[str]:
        return [f"{v.get('claim') or v['better'] + ' > ' + v['worse']}: {v['better']} − {v['worse']} = "
                f"{v['delta_psnr']:+.3f} dB -> {v['verdict']}" for v in self.verdicts]

    def to_markdown(self) -> str:
        if not self.entries:
            return f"*{self.caption()}*"
        lines = ["| " + " | ".join(self.columns) + " |", "|---|---:|---:|---:|---:|---:|---|---:|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.cells()]
        lines += ["", f"*{self.caption()}*"] + ([""] + [f"- {v}" for v in self.verdict_lines()] if self.verdicts else [])
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        if not self.entries:
            return f"<p><em>{html.escape(self.caption())}</em></p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.cells())
        verdicts = "".join(f"<li>{html.escape(v)}</li>" for v in self.verdict_lines())
        return (f'<table class="srlearn-shipped"><caption>{html.escape(self.caption())}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                + (f"<ul>{verdicts}</ul>" if verdicts else ""))

    def __repr__(self) -> str:
        return self.to_markdown()
