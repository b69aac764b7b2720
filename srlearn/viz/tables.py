"""Results tables: per-arm mean ± std over seeds, the bicubic baseline, Δ vs the baseline, and what the
paper reports beside what we measured.

Input rows are plain dicts, one per (arm, seed) run, as the replications write them::

    {"arm": "edsr-mini", "seed": 0, "psnr": 31.2, "ssim": 0.91, "params": 120000}

``summarise`` groups them; ``results_table`` renders the summary as HTML (in a notebook) or Markdown
(in the README and reports). No pandas: a table of a handful of arms does not need it.
"""
from __future__ import annotations

import html
import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..data.refpairs import LEVEL_NAMES, LEVELS

#: Fields that tell repeats apart; never carried into a summary row even when constant in a group.
REPEAT_FIELDS = ("seed",)
#: Decimal places per metric (others get 3).
DIGITS = {"psnr": 2, "ssim": 4}
_DISPLAY = {"psnr": "PSNR (dB)", "ssim": "SSIM"}


def summarise(rows, by: str = "arm", metrics=("psnr", "ssim")) -> list[dict]:
    """Group ``rows`` by ``by`` and summarise each metric over the group.

    Returns one plain dict per group, in the order the groups first appear, with ``by``, ``n`` (the
    number of rows), ``<metric>_mean`` and ``<metric>_std`` for each metric, and every other field
    whose value is the same in all the group's rows (``params``, ``scale``, ...), except ``seed``.

    The std is the *sample* standard deviation (``ddof=1``): the seeds are a sample of the runs we
    could have made. With ``n = 1`` it is undefined and reported as ``nan``, not as 0.

    Raises:
        ValueError: when a row lacks ``by`` or one of the ``metrics``.
    """
    groups: OrderedDict = OrderedDict()
    for i, row in enumerate(rows):
        if by not in row:
            raise ValueError(f"row {i} has no {by!r} field to group by: {row}")
        missing = [m for m in metrics if row.get(m) is None]
        if missing:
            raise ValueError(f"row {i} ({by}={row[by]!r}) has no value for {missing}; fill it in or "
                             f"pass metrics= with the fields every row has")
        groups.setdefault(row[by], []).append(row)
    return [_summarise_group(by, key, group, metrics) for key, group in groups.items()]


def _summarise_group(by: str, key, group: list[dict], metrics) -> dict:
    """One summary row: the group key, n, mean/std per metric, then the constant fields."""
    out = {by: key, "n": len(group)}
    for m in metrics:
        values = [float(r[m]) for r in group]
        out[f"{m}_mean"] = _mean(values)
        out[f"{m}_std"] = _sample_std(values)
    skip = {by, *metrics, *REPEAT_FIELDS}
    for field in group[0]:
        if field not in skip and all(field in r and _same(r[field], group[0][field]) for r in group):
            out[field] = group[0][field]
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _sample_std(values: list[float]) -> float:
    """Standard deviation with ``ddof=1``; ``nan`` for fewer than two values."""
    if len(values) < 2:
        return math.nan
    mu = _mean(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1))


def _same(a, b) -> bool:
    """Equality that tolerates values (arrays, nan) whose ``==`` is not a plain bool."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def results_table(rows, baseline: str | None = "bicubic", paper: Mapping | None = None,
                  protocol: str | None = None, *, by: str = "arm", metrics=("psnr", "ssim"),
                  digits: Mapping | None = None) -> "ResultsTable":
    """The results table of a replication: one row per arm, the baseline first.

    Columns: the arm; mean ± std over seeds of each metric; n (seeds); parameters (when the rows have
    a ``params`` field); Δ of the first metric vs the ``baseline`` arm (PSNR by default; omitted when
    ``baseline=None``); and "paper says" when ``paper`` (a dict ``arm -> text``) is given. ``protocol``
    (e.g. ``"Set5 ×2, Y-channel, shave 2"``) becomes the caption.

    Raises:
        ValueError: when ``baseline`` names an arm that is not in the rows.
    """
    summary = summarise(rows, by=by, metrics=metrics)
    arms = [s[by] for s in summary]
    if baseline is not None:
        if baseline not in arms:
            raise ValueError(f"baseline arm {baseline!r} is not in the results (arms: {arms}); add its "
                             f"rows (every table needs the bicubic baseline) or pass baseline=None")
        summary.sort(key=lambda s: s[by] != baseline)  # stable: baseline first, the rest as given
    return ResultsTable(summary, by=by, metrics=tuple(metrics), baseline=baseline, paper=dict(paper or {}),
                        protocol=protocol, digits={**DIGITS, **(digits or {})})


class ResultsTable:
    """A rendered results table; shows itself as HTML in Jupyter, as Markdown elsewhere.

    ``.summary`` holds the ``summarise`` rows (baseline first); ``.columns`` and ``.cells()`` the text
    of the table; ``to_markdown()`` gives it for a README or report.
    """

    def __init__(self, summary, *, by, metrics, baseline, paper, protocol, digits):
        self.summary, self.by, self.metrics = summary, by, metrics
        self.baseline, self.paper, self.protocol, self.digits = baseline, paper, protocol, digits

    @property
    def columns(self) -> list[str]:
        """The header cells."""
        cols = [self.by] + [_DISPLAY.get(m, m) for m in self.metrics] + ["n"]
        if self._has_params():
            cols.append("params")
        if self.baseline is not None:
            cols.append(f"Δ {_DISPLAY.get(self.metrics[0], self.metrics[0]).split(' ')[0]} vs {self.baseline}")
        if self.paper:
            cols.append("paper says")
        return cols

    def cells(self) -> list[list[str]]:
        """The body of the table as text, one list per arm, aligned with ``columns``."""
        base = self._baseline_mean()
        body = []
        for s in self.summary:
            row = [str(s[self.by])]
            row += [self._mean_std(s, m) for m in self.metrics]
            row.append(str(s["n"]))
            if self._has_params():
                row.append(_params(s.get("params")))
            if self.baseline is not None:
                row.append(self._delta(s, base))
            if self.paper:
                row.append(str(self.paper.get(s[self.by], "")))
            body.append(row)
        return body

    def to_markdown(self) -> str:
        """The table in GitHub Markdown, with the protocol as an italic line under it."""
        numeric = len(self.columns) - (1 if self.paper else 0)  # all but the arm and the paper's text
        rule = ["---"] + ["---:"] * (numeric - 1) + [":---"] * (len(self.columns) - numeric)
        lines = ["| " + " | ".join(_md_escape(c) for c in self.columns) + " |", "|" + "|".join(rule) + "|"]
        lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in self.cells()]
        if self.protocol:
            lines += ["", f"*{_md_escape(self._caption())}*"]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.cells())
        caption = f"<caption>{html.escape(self._caption())}</caption>" if self.protocol else ""
        return (f'<table class="srlearn-results">{caption}<thead><tr>{head}</tr></thead>'
                f'<tbody>{body}</tbody></table>')

    def __repr__(self) -> str:
        return self.to_markdown()

    def _caption(self) -> str:
        return f"Protocol: {self.protocol}. Mean ± sample std over seeds (n per row)."

    def _has_params(self) -> bool:
        return any("params" in s for s in self.summary)

    def _fmt(self, metric: str, value: float) -> str:
        return f"{value:.{self.digits.get(metric, 3)}f}"

    def _mean_std(self, s: dict, metric: str) -> str:
        """``mean ± std``; the mean alone when std is undefined (one seed)."""
        mean, std = s[f"{metric}_mean"], s[f"{metric}_std"]
        if math.isnan(std):
            return self._fmt(metric, mean)
        return f"{self._fmt(metric, mean)} ± {self._fmt(metric, std)}"

    def _baseline_mean(self) -> float | None:
        if self.baseline is None:
            return None
        key = f"{self.metrics[0]}_mean"
        return next(s[key] for s in self.summary if s[self.by] == self.baseline)

    def _delta(self, s: dict, base: float) -> str:
        """Signed difference of the first metric's mean from the baseline's; '—' on the baseline row."""
        if s[self.by] == self.baseline:
            return "—"
        return f"{s[f'{self.metrics[0]}_mean'] - base:+.{self.digits.get(self.metrics[0], 3)}f}"


def _params(value) -> str:
    """A parameter count with thousands separators; '—' when the arm has none recorded."""
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, numbers.Integral) else str(value)


def _md_escape(text: str) -> str:
    """Escape the pipe, the one character that breaks a Markdown table cell."""
    return str(text).replace("|", "\\|")


# ------------------------------------------------------------------------------- by reference similarity
class LevelTable:
    """Mean ± std (over seeds) Y-PSNR per arm (rows) and similarity level (columns); Δ vs ``reference`` arm."""

    def __init__(self, rows: list[dict], reference: str = "sisr", protocol: str | None = None):
        self.rows, self.reference, self.protocol = rows, reference, protocol

    def cell(self, arm: str, level: str) -> tuple[float, float, int]:
        v = [r["psnr"] for r in self.rows if r["arm"] == arm and r["level"] == level]
        return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")), len(v)

    def to_markdown(self) -> str:
        arms = list(OrderedDict.fromkeys(r["arm"] for r in self.rows))
        head = "| arm | " + " | ".join(f"{lv} ({LEVEL_NAMES[lv]})" for lv in LEVELS) + " |"
        lines = [head, "|---" * (len(LEVELS) + 1) + "|"]
        for arm in arms:
            cells = []
            for lv in LEVELS:
                m, s, n = self.cell(arm, lv)
                txt = f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 else "")
                if arm != self.reference and any(r["arm"] == self.reference for r in self.rows):
                    txt += f" ({m - self.cell(self.reference, lv)[0]:+.2f})"
                cells.append(txt)
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        cap = f"Y-PSNR (dB) by reference similarity; in brackets: Δ vs {self.reference}."
        if self.protocol:
            cap += f" Protocol: {self.protocol}."
        return cap + "\n\n" + "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return self.to_markdown()


def level_table(results: dict, reference: str = "sisr") -> LevelTable:
    """The table by similarity level of a ``ssen-refsr`` run (a Markdown table in a notebook)."""
    from ..experiments.ssen import level_rows
    return LevelTable(level_rows(results), reference, results.get("protocol"))
