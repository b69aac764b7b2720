"""The papers' published figures (Y-PSNR, dB, BI degradation), shown beside ours in the per-set tables.

Every figure is copied from the project's reference notes with its tag (papers.md "How to read the tags":
[S] a named secondary source, [C] the official code, [M] recalled and unverified). A published figure is
for the paper's full-size model trained for days; the replications train mini models for minutes, so the
figure is an upper reference for the table, not a target the verdicts test.
"""
from __future__ import annotations

__all__ = ["BICUBIC", "SAN_X2", "SRDENSENET_ALL_X4", "figures"]

#: Bicubic, "published bicubic (commonly cited) [S]" row of sr-protocol.md §2.3 (Set5 and Set14 only).
BICUBIC = {
    2: {"Set5": "33.66 [S: sr-protocol.md §2.3]", "Set14": "30.24 [S: sr-protocol.md §2.3]"},
    3: {"Set5": "30.39 [S: sr-protocol.md §2.3]", "Set14": "27.55 [S: sr-protocol.md §2.3]"},
    4: {"Set5": "28.42 [S: sr-protocol.md §2.3]", "Set14": "26.00 [S: sr-protocol.md §2.3]"},
}

#: SAN ×2 (full model, paper), papers.md §1.9 [S: SwinIR Table 2].
SAN_X2 = {"Set5": "SAN 38.31 [S: papers.md §1.9]", "Set14": "SAN 34.07 [S: papers.md §1.9]",
          "B100": "SAN 32.42 [S: papers.md §1.9]", "Urban100": "SAN 33.10 [S: papers.md §1.9]"}

#: SRDenseNet_All ×4, papers.md §2.4 (Urban100 is [M]: recalled, unverified).
SRDENSENET_ALL_X4 = {"Set5": "SRDenseNet_All 32.02 [S: papers.md §2.4]",
                     "Set14": "SRDenseNet_All 28.50 [S: papers.md §2.4]",
                     "B100": "SRDenseNet_All 27.53 [S: papers.md §2.4]",
                     "Urban100": "SRDenseNet_All 26.05 [M: recalled from the paper, unverified; papers.md §2.4]"}


def figures(scale: int, arms: dict | None = None, baseline: str = "bicubic") -> dict:
    """``Experiment.published`` for a ×``scale`` experiment: the bicubic figures under ``baseline`` and
    ``arms`` (arm name -> {set: text}) for the arms whose paper model has published figures."""
    out = {baseline: dict(BICUBIC.get(scale, {}))}
    out.update({name: dict(f) for name, f in (arms or {}).items()})
    return {k: v for k, v in out.items() if v}
