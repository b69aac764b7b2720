"""The shipped weights' results in a notebook: the package's results table and verdict table, made from the
manifest, under one line saying how the weights were made (steps, train time, device, seeds).

    viz.shipped.shipped_table("mirnet-fusion")     # renders in a notebook; says "no shipped weights" when there are none

The numbers and verdicts come from :func:`srlearn.weights.shipped_results` (the manifest read as a results
dict, verdicts by ``srlearn.experiments.core.verdict``); the tables are :func:`srlearn.viz.results_table` and
:func:`srlearn.viz.verdict_table`, as for a run; loading a model with a fallback is
:func:`srlearn.weights.pretrained_or`.
"""
from __future__ import annotations

import html

from ..experiments.report import results_rows
from ..weights import read_manifest, shipped_results
from .tables import results_table, verdict_table

__all__ = ["shipped_table", "ShippedTable"]

#: what a missing, incomplete or corrupt weights folder raises (srlearn.weights gives each a clear message)
_MISSING = (FileNotFoundError, KeyError, ValueError)


def shipped_table(experiment: str, directory=None) -> "ShippedTable":
    """The shipped weights' held-out results of ``experiment``: the results table (one row per arm, the baseline
    first) and the verdicts (one seed gives "1 seed: no noise estimate, no verdict"). Without shipped weights
    it says so instead of failing."""
    try:
        res = shipped_results(experiment, directory=directory)
        manifest = read_manifest(directory)
    except _MISSING as err:
        reason = str(err.args[0] if err.args else err).split(": ")[0]
        return ShippedTable(experiment, [], {}, note=f"no shipped weights ({type(err).__name__}: {reason})")
    entries = [e for e in manifest.get("weights", []) if e.get("experiment") == experiment]
    return ShippedTable(experiment, entries, res)


class ShippedTable:
    """A results table and a verdict table of the shipped weights, with the line that says how they were made.

    ``entries``: the manifest entries (one per arm); ``results``: :func:`srlearn.weights.shipped_results`;
    ``table`` / ``verdict_table``: the package's tables of them (None without weights); ``verdicts``: the
    verdict dicts, unchanged."""

    def __init__(self, experiment: str, entries: list[dict], results: dict, note: str = ""):
        self.experiment, self.entries, self.results, self.note = experiment, entries, results, note
        self.verdicts = list(results.get("verdicts", []))
        self.table = self.verdict_table = None
        if entries:
            base = results["baseline"]["arm"]
            self.table = results_table(results_rows(results), baseline=base, protocol=results.get("protocol"))
            self.verdict_table = verdict_table(self.verdicts, baseline=base)

    def made(self) -> str:
        """How the weights were made, one line: per arm its steps, train seconds, device; the seeds."""
        if not self.entries:
            return f"{self.experiment}: {self.note}."
        arms = "; ".join(f"{e['arm']} {e.get('steps', '?')} steps"
                         + (f" in {e['train_seconds']:.0f} s" if "train_seconds" in e else "") for e in self.entries)
        devices = sorted({str(e.get("device", "?")) for e in self.entries})
        seeds = max(int(e.get("seeds_in_results", 1)) for e in self.entries)
        return (f"{self.experiment}, the shipped weights (seed 0 of {seeds}, {self.results.get('mode')} mode, "
                f"on {', '.join(devices)}): {arms}.")

    def to_markdown(self) -> str:
        if not self.entries:
            return f"*{self.made()}*"
        return "\n\n".join([f"*{self.made()}*", self.table.to_markdown(), self.verdict_table.to_markdown()])

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        if not self.entries:
            return f"<p><em>{html.escape(self.made())}</em></p>"
        return (f'<div class="srlearn-shipped"><p><em>{html.escape(self.made())}</em></p>'
                f"{self.table._repr_html_()}{self.verdict_table._repr_html_()}</div>")

    def __repr__(self) -> str:
        return self.to_markdown()
