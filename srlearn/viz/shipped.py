"""The shipped weights in a notebook: load them or fall back in one printed line, and their results as a table.

    model = viz.pretrained_or("mirnet-fusion", "skff", fallback=lambda: load_model(...))   # prints one line
    viz.shipped_table("mirnet-fusion")        # arm, held-out PSNR, baseline, steps, device; verdicts as the package words them

Without shipped weights (no ``data/weights``, or ``SRLEARN_WEIGHTS`` pointing at an empty folder) both
still work: ``pretrained_or`` prints why and returns the fallback, ``shipped_table`` says that there are none.
"""
from __future__ import annotations

import html

from ..weights import load_pretrained, read_manifest

__all__ = ["weights_line", "pretrained_or", "shipped_entries", "shipped_table", "ShippedTable"]

#: what a missing, incomplete or corrupt weights folder raises (srlearn.weights gives each a clear message)
_MISSING = (FileNotFoundError, KeyError, ValueError, RuntimeError)


def weights_line(info: dict) -> str:
    """One line saying what a manifest entry is: experiment/arm, preset, steps, device, train data, PSNR."""
    try:
        base = info.get("baseline") or {}
        psnr = f"; held-out {info['psnr']:.2f} dB" if "psnr" in info else ""
        vs = f" vs {base['name']} {base['psnr']:.2f} dB" if psnr and "name" in base and "psnr" in base else ""
        return (f"shipped weights {info['experiment']}/{info['arm']} ({info.get('model', '?')} "
                f"'{info.get('preset', '?')}', seed {info.get('seed', 0)}): {info['steps']} steps on "
                f"{info['device']}, trained on {info['train_data']}{psnr}{vs}")
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a weights manifest entry (missing {e}); pass model.pretrained_info") from e


def pretrained_or(experiment: str, arm: str, fallback=None, *, directory=None, what: str = "the live run's model",
                  verbose: bool = True):
    """The shipped ``experiment/arm`` model, or ``fallback`` when the weights are not there; prints one line.

    ``fallback`` is a model or a function returning one (called only when needed). With no fallback the
    loader's error is raised. The returned model has ``pretrained_info`` (the manifest entry) when it is
    the shipped one; a fallback gets ``pretrained_info = None``. ``verbose=False`` prints only the fallback line.
    """
    try:
        model = load_pretrained(experiment, arm, directory=directory)
    except _MISSING as err:
        if fallback is None:
            raise
        model = fallback() if callable(fallback) and not hasattr(fallback, "state_dict") else fallback
        reason = str(err).split(":")[0]
        print(f"no shipped weights for {experiment}/{arm} ({type(err).__name__}: {reason}): using {what}")
        try:
            model.pretrained_info = None
        except AttributeError:
            pass
        return model
    if verbose:
        print(weights_line(model.pretrained_info))
    return model


def shipped_entries(experiment: str, directory=None) -> list[dict]:
    """The manifest entries of ``experiment``'s arms, in manifest order ([] when there are none)."""
    manifest = read_manifest(directory)
    return [e for e in manifest.get("weights", []) if e.get("experiment") == experiment]


def shipped_table(experiment: str, directory=None) -> "ShippedTable":
    """The shipped weights' held-out results of ``experiment``: one row per arm (PSNR, SSIM, Δ vs the
    baseline, steps, train seconds, device, seeds) and the registered comparisons' verdicts, computed by
    ``srlearn.experiments.verdict`` from the manifest's numbers (so worded exactly as the package words
    them: one seed gives no verdict). Without shipped weights the table says so instead of failing."""
    from ..experiments import get_experiment, verdict

    try:
        entries = shipped_entries(experiment, directory)
    except _MISSING as err:
        return ShippedTable(experiment, [], [], note=f"no shipped weights ({type(err).__name__}: {str(err).split(':')[0]})")
    if not entries:
        return ShippedTable(experiment, [], [], note="no shipped weights for this experiment in the manifest")
    exp = get_experiment(experiment)
    base = entries[0].get("baseline") or {}
    rows = [{"arm": e["arm"], "seed": e.get("seed", 0), "psnr": e["psnr"]} for e in entries]
    if "psnr" in base:
        rows.append({"arm": exp.baseline_name, "seed": 0, "psnr": base["psnr"]})
    arms = {e["arm"] for e in entries}
    verdicts = [verdict(rows, c, baseline=exp.baseline_name if "psnr" in base else None,
                        min_detectable=exp.min_detectable_db)
                for c in exp.comparisons if c.better in arms | {exp.baseline_name} and c.worse in arms | {exp.baseline_name}]
    return ShippedTable(experiment, entries, verdicts)


class ShippedTable:
    """The shipped weights' results, rendered as Markdown (``to_markdown``) or HTML in a notebook."""

    columns = ["arm", "held-out PSNR (dB)", "SSIM", "Δ vs baseline (dB)", "steps", "train s", "device", "seeds"]

    def __init__(self, experiment: str, entries: list[dict], verdicts: list[dict], note: str = ""):
        self.experiment, self.entries, self.verdicts, self.note = experiment, entries, verdicts, note

    @property
    def baseline(self) -> dict:
        return (self.entries[0].get("baseline") or {}) if self.entries else {}

    def cells(self) -> list[list[str]]:
        base = self.baseline
        body = []
        if "psnr" in base:
            body.append([f"{base.get('name', 'baseline')} (baseline)", f"{base['psnr']:.2f}",
                         f"{base['ssim']:.4f}" if "ssim" in base else "—", "—", "—", "—", "—", "—"])
        for e in self.entries:
            delta = f"{e['psnr'] - base['psnr']:+.2f}" if "psnr" in base else "—"
            body.append([e["arm"], f"{e['psnr']:.2f}", f"{e['ssim']:.4f}" if "ssim" in e else "—", delta,
                         str(e.get("steps", "?")), f"{e['train_seconds']:.0f}" if "train_seconds" in e else "?",
                         str(e.get("device", "?")), str(e.get("seeds_in_results", 1))])
        return body

    def caption(self) -> str:
        if not self.entries:
            return f"{self.experiment}: {self.note}."
        e = self.entries[0]
        return (f"{self.experiment}, the shipped weights (seed 0): protocol {e.get('protocol', '?')}; "
                f"tested on {e.get('test_data', '?')}; trained on {e.get('train_data', '?')}.")

    def verdict_lines(self) -> list[str]:
        return [f"{v['claim'] or v['better'] + ' > ' + v['worse']}: {v['better']} − {v['worse']} = "
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
