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
                  digits: Mapping | None = None, data: str | None = None) -> "ResultsTable":
    """The results table of a replication: one row per arm, the baseline first.

    Columns: the arm; mean ± std over seeds of each metric; n (seeds); parameters (when the rows have
    a ``params`` field); Δ of the first metric vs the ``baseline`` arm (PSNR by default; omitted when
    ``baseline=None``); and "paper says" when ``paper`` (a dict ``arm -> text``) is given. ``protocol``
    (e.g. ``"Set5 ×2, Y-channel, shave 2"``) becomes the caption, and ``data`` (what the arms were trained
    and tested on, e.g. ``"trained on DIV2K HR 0001-0800; tested on Set5"``; default: the rows' ``.data``
    attribute, which :func:`srlearn.experiments.report.results_rows` sets) is added to it.

    Raises:
        ValueError: when ``baseline`` names an arm that is not in the rows.
    """
    if data is None:   # rows from srlearn.experiments.report.results_rows carry their data
        data = getattr(rows, "data", None)
    summary = summarise(rows, by=by, metrics=metrics)
    arms = [s[by] for s in summary]
    if baseline is not None:
        if baseline not in arms:
            raise ValueError(f"baseline arm {baseline!r} is not in the results (arms: {arms}); add its "
                             f"rows (every table needs the bicubic baseline) or pass baseline=None")
        summary.sort(key=lambda s: s[by] != baseline)  # stable: baseline first, the rest as given
    return ResultsTable(summary, by=by, metrics=tuple(metrics), baseline=baseline, paper=dict(paper or {}),
                        protocol=protocol, digits={**DIGITS, **(digits or {})}, data=data)


class ResultsTable:
    """A rendered results table; shows itself as HTML in Jupyter, as Markdown elsewhere.

    ``.summary`` holds the ``summarise`` rows (baseline first); ``.columns`` and ``.cells()`` the text
    of the table; ``to_markdown()`` gives it for a README or report.
    """

    def __init__(self, summary, *, by, metrics, baseline, paper, protocol, digits, data=None):
        self.summary, self.by, self.metrics = summary, by, metrics
        self.baseline, self.paper, self.protocol, self.digits = baseline, paper, protocol, digits
        self.data = data

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
        if self.protocol or self.data:
            lines += ["", f"*{_md_escape(self._caption())}*"]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.cells())
        caption = f"<caption>{html.escape(self._caption())}</caption>" if self.protocol or self.data else ""
        return (f'<table class="srlearn-results">{caption}<thead><tr>{head}</tr></thead>'
                f'<tbody>{body}</tbody></table>')

    def __repr__(self) -> str:
        return self.to_markdown()

    def _caption(self) -> str:
        parts = [f"Protocol: {self.protocol}." if self.protocol else "", f"{_sentence(self.data)}" if self.data else "",
                 "Mean ± sample std over seeds (n per row)."]
        return " ".join(p for p in parts if p)

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


def _sentence(text: str) -> str:
    text = str(text).strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


#: How :func:`srlearn.experiments.verdict` decides, for the caption of every verdict table.
VERDICT_RULES = ("Verdicts, in this order: one seed per arm gives no verdict (no noise estimate); a difference "
                 "below the minimum detectable difference ({mdd}) is no measurable difference; two arms that "
                 "both score below {baseline} are not testable; otherwise a gap beyond two standard errors of the "
                 "difference of means is reproduced (or reversed), a smaller one is within seed noise.")


def verdict_table(verdicts, min_detectable: float | None = None, baseline: str = "the baseline",
                  data: str | None = None) -> "VerdictTable":
    """The verdicts of a replication (dicts from :func:`srlearn.experiments.verdict`) as a table: claim,
    better, worse, Δ PSNR, ± standard error, seeds per arm, verdict — the verdict string itself, never a
    wording of its own. The caption states the rules, the minimum detectable difference (dB) and ``data``."""
    rows = list(verdicts)
    for i, v in enumerate(rows):
        missing = [k for k in ("better", "worse", "delta_psnr", "verdict") if k not in v]
        if missing:
            raise ValueError(f"verdict {i} lacks {missing}; pass the dicts srlearn.experiments.verdict returns")
    if min_detectable is None:
        found = {v.get("min_detectable") for v in rows} - {None}
        min_detectable = found.pop() if len(found) == 1 else None
    return VerdictTable(rows, min_detectable, baseline, data)


class VerdictTable:
    """Verdict rows rendered as Markdown (reports, README) or HTML (notebooks)."""

    columns = ["claim", "better", "worse", "Δ PSNR (dB)", "± s.e.", "seeds", "verdict"]

    def __init__(self, rows, min_detectable, baseline, data):
        self.rows, self.min_detectable, self.baseline, self.data = rows, min_detectable, baseline, data

    def cells(self) -> list[list[str]]:
        body = []
        for v in self.rows:
            se = v.get("stderr")
            n = v.get("n")
            body.append([str(v.get("claim", "")), str(v["better"]), str(v["worse"]), f"{v['delta_psnr']:+.3f}",
                         "—" if se is None or (isinstance(se, float) and math.isnan(se)) else f"{se:.3f}",
                         "/".join(map(str, n)) if isinstance(n, (list, tuple)) else "—", str(v["verdict"])])
        return body

    def caption(self) -> str:
        mdd = f"{self.min_detectable:g} dB" if self.min_detectable is not None else "the experiment's"
        text = VERDICT_RULES.format(mdd=mdd, baseline=self.baseline)
        return text + (f" {_sentence(self.data)}" if self.data else "")

    def to_markdown(self) -> str:
        if not self.rows:
            return "(no comparisons registered)"
        lines = ["| " + " | ".join(self.columns) + " |", "|---|---|---|---:|---:|---:|:---|"]
        lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in self.cells()]
        return "\n".join(lines + ["", f"*{_md_escape(self.caption())}*"])

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.cells())
        return (f'<table class="srlearn-verdicts"><caption>{html.escape(self.caption())}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def __repr__(self) -> str:
        return self.to_markdown()


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
